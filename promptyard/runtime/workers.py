"""Prefect process workers for the deployments' work pool, so scheduled runs actually run.

`start(s, count)` keeps `count` workers (`prefect worker start --pool P --type process --limit L`)
running, each in its own process group with its log under `$PROMPTYARD_HOME/logs/worker-N.log` and
its pid recorded as the stack records its services (start time and command line), and waits until
each has told the Prefect server it is online. `stop` stops them the way a Prefect worker needs:
TERM, a grace period, then INT (the worker then ends itself), then KILL for whatever is left of its
process group (the flow runs it started). `status` shows each worker with what the server knows of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from promptyard.errors import PermissionDeniedError, ServiceError
from promptyard.runtime import stack
from promptyard.runtime.limits import prefect_headers, refuse_if_unauthorized
from promptyard.runtime.settings import Settings

__all__ = ["start", "stop", "status", "worker_names", "online_workers"]

PREFIX = "worker-"


def worker_names(s: Settings) -> list[str]:
    """Names of the workers promptyard recorded (running or not), in order."""
    run = s.home_dir / "run"
    names = [p.stem for p in run.glob(f"{PREFIX}*.pid")] if run.is_dir() else []
    return sorted(names, key=lambda n: int(n.removeprefix(PREFIX)) if n.removeprefix(PREFIX).isdigit() else 0)


def _worker_env(s: Settings) -> dict[str, str]:
    env = stack._child_env(s)
    env["PREFECT_API_URL"] = s.prefect_url  # the worker polls this server; its flow runs report to it
    for server_only in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_PASSWORD",
                        "MLFLOW_FLASK_SERVER_SECRET_KEY", "PREFECT_API_DATABASE_CONNECTION_URL",
                        "PREFECT_SERVER_API_AUTH_STRING"):
        env.pop(server_only, None)  # flow runs are clients: they sign in as MLFLOW_TRACKING_USERNAME
    if s.team_mode:
        from promptyard.runtime.postgres import prefect_auth

        if auth := prefect_auth(s):
            env.setdefault("PREFECT_API_AUTH_STRING", auth)  # the team's Prefect API wants it
    return env


def _command(s: Settings, name: str, limit: int) -> list[str]:
    return [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", s.work_pool, "--type",
            "process", "--limit", str(limit), "--name", f"{_prefix(s)}{name}"]


def _prefix(s: Settings) -> str:
    """Worker names on the server: unique per state directory, so two checkouts sharing a server differ."""
    return f"promptyard-{hashlib.sha256(str(s.home_dir).encode()).hexdigest()[:6]}-"


def online_workers(s: Settings) -> dict[str, dict]:
    """What the Prefect server knows of this state directory's workers: name -> {status, last heartbeat}."""
    try:
        response = httpx.post(f"{s.prefect_url.rstrip('/')}/work_pools/{s.work_pool}/workers/filter", json={},
                              headers=prefect_headers(), timeout=5)
    except httpx.HTTPError:
        return {}
    refuse_if_unauthorized(s.prefect_url, response)
    if response.status_code != 200:
        return {}
    prefix = _prefix(s)
    return {w["name"].removeprefix(prefix): {"status": w.get("status"), "heartbeat": w.get("last_heartbeat_time")}
            for w in response.json() if w["name"].startswith(prefix)}


def _check_server(s: Settings) -> None:
    try:
        ok = httpx.get(f"{s.prefect_url.rstrip('/')}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        ok = False
    if not ok:
        raise ServiceError(f"No Prefect server answers at {s.prefect_url}, so no worker can poll it: start it with "
                           "`promptyard up`, or set PROMPTYARD_PREFECT_API_URL to a running Prefect API.")


def start(s: Settings, count: int, limit: int | None = None, echo: Callable[[str], None] = print,
          timeout: float = 90.0) -> list[str]:
    """Keep exactly `count` workers running (start the missing ones, stop the extra ones), each taking at
    most `limit` flow runs at once; wait until each new one is online. Returns the names started."""
    limit = limit or s.worker_limit
    _check_server(s)
    running = [n for n in worker_names(s) if stack._read_pid(s, n) is not None]
    extra = [n for n in running if int(n.removeprefix(PREFIX)) > count]
    if extra:
        stop(s, tuple(extra), echo)
    started: dict[str, subprocess.Popen] = {}
    try:
        for i in range(1, count + 1):
            name = f"{PREFIX}{i}"
            if name in running:
                continue
            service = stack.Service(name, 0, s.prefect_url, "", timeout, lambda s, n=name: _command(s, n, limit))
            echo(f"{name}: starting a process worker for pool {s.work_pool} (limit {limit}; log: "
                 f"{stack._log_file(s, name)})")
            started[name] = _spawn(s, service)
        _wait_online(s, started, timeout)
    except BaseException:
        stop(s, tuple(started))
        raise
    return list(started)


def _spawn(s: Settings, service: stack.Service) -> subprocess.Popen:
    return stack._start(s, service, env=_worker_env(s))


def _wait_online(s: Settings, started: dict[str, subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(started)
    while waiting:
        online = online_workers(s)
        for name, process in list(waiting.items()):
            if online.get(name, {}).get("status") == "ONLINE":
                waiting.pop(name)  # our child, so its identity now is the one to record
                stack._pid_file(s, name).write_text(json.dumps(stack._identity(process.pid)))
            elif process.poll() is not None:
                log = stack._log_file(s, name)
                raise ServiceError(f"The Prefect worker {name} exited with code {process.returncode} while starting. "
                                   f"Last log lines ({log}):\n{stack._tail(log)}")
        if waiting and time.monotonic() > deadline:
            log = stack._log_file(s, next(iter(waiting)))
            raise ServiceError(f"The Prefect workers {', '.join(waiting)} did not come online at {s.prefect_url} "
                               f"within {timeout:.0f} s; they were stopped. See {log}.")
        if waiting:
            time.sleep(0.5)


def stop(s: Settings, names: tuple[str, ...] | None = None, echo: Callable[[str], None] = lambda _: None,
         grace: float = 10.0) -> list[str]:
    """Stop the workers promptyard started: TERM, wait `grace` s, then INT, wait, then KILL the group."""
    stopped = []
    for name in names if names is not None else tuple(worker_names(s)):
        pid = stack._read_pid(s, name)
        if pid is not None:
            _stop_worker(pid, grace)
            stopped.append(name)
        elif stack._pid_file(s, name).exists():
            echo(f"{name}: its recorded process is gone or is now another program's; left that pid alone")
        stack._pid_file(s, name).unlink(missing_ok=True)
    return stopped


def _stop_worker(pid: int, grace: float) -> None:
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGINT, grace / 2)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if _gone(pid, wait):
            break
    if group == pid:  # the worker leads its own group: end what is left of it (flow runs it started)
        stack._stop_group(pid, timeout=grace / 2)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _gone(pid: int, timeout: float) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
        return True
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False


def status(s: Settings) -> list[stack.ServiceStatus]:
    """One line per recorded worker: alive, and online at the server."""
    try:
        online, refused = (online_workers(s) if worker_names(s) else {}), None
    except PermissionDeniedError as exc:
        online, refused = {}, str(exc)
    result = []
    for name in worker_names(s):
        pid = stack._read_pid(s, name)
        seen = online.get(name, {})
        healthy = pid is not None and seen.get("status") == "ONLINE"
        note = f"pool {s.work_pool}, limit {_recorded_limit(s, name)}" if healthy else (
            "stale pid file; `promptyard down` removes it" if pid is None else
            refused or f"process alive, server reports {seen.get('status') or 'nothing'}")
        result.append(stack.ServiceStatus(name, s.prefect_url, healthy, pid, note))
    return result


def _recorded_limit(s: Settings, name: str) -> str:
    try:
        command = json.loads(stack._pid_file(s, name).read_text())["cmdline"]
        return command[command.index("--limit") + 1]
    except (OSError, ValueError, KeyError, IndexError):
        return "?"
