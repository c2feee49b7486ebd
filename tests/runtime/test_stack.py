"""The local stack stops only what it started, and leaves no server behind when interrupted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
from helpers import free_port
import pytest

from promptyard.runtime import Settings, stack



def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stranger():
    """A program promptyard did not start, in its own session (as a service would be)."""
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize("recorded", ["legacy", "reused"])
def test_down_never_kills_a_pid_that_is_not_ours(tmp_path, stranger, recorded):
    settings = Settings(home=tmp_path / "home", mlflow_port=free_port())
    run = settings.home_dir / "run"
    run.mkdir(parents=True)
    if recorded == "legacy":  # a bare pid, as older versions wrote: nothing proves it is ours
        (run / "mlflow.pid").write_text(str(stranger.pid))
    else:  # our server died and the kernel handed its pid to another program
        ours = {"pid": stranger.pid, "started": psutil.Process(stranger.pid).create_time() - 3600,
                "cmdline": [sys.executable, "-m", "mlflow", "server"]}
        (run / "mlflow.pid").write_text(json.dumps(ours))
    notes: list[str] = []

    assert [s.note for s in stack.status(settings) if s.name == "mlflow"][0].startswith("stale pid file")
    assert stack.down(settings, ("mlflow",), echo=notes.append) == []

    assert stranger.poll() is None, "down killed a process promptyard did not start"
    assert notes == ["mlflow: its recorded process is gone or is now another program's; left that pid alone"]
    assert not (run / "mlflow.pid").exists()


_SERVE = """
import signal, sys, time
from pathlib import Path
from promptyard.runtime import Settings, stack
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C live, as in a terminal (a job started in the
settings = Settings(home=Path(sys.argv[1]), mlflow_port=int(sys.argv[2]))  # background inherits it ignored)
with stack.running(settings, ("mlflow",), echo=lambda line: None):
    print("ready", flush=True)
    time.sleep(600)
"""


def _service_pid(home: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(json.loads((home / "run" / "mlflow.pid").read_text())["pid"])
        except (FileNotFoundError, ValueError, KeyError):
            time.sleep(0.05)
    raise TimeoutError("the service never started")


def _assert_gone(pid: int, port: int) -> None:
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        if time.monotonic() > deadline:
            pytest.fail(f"the MLflow server (pid {pid}) outlived the interrupted command")
        time.sleep(0.1)
    assert not _port_open(port), "something still listens on the server's port"


@pytest.mark.parametrize(("sig", "when"), [
    (signal.SIGTERM, "serving"), (signal.SIGINT, "serving"), (signal.SIGTERM, "starting"),
])
def test_an_interrupted_command_leaves_no_server_behind(tmp_path, sig, when):
    home, port = tmp_path / "home", free_port()
    command = subprocess.Popen([sys.executable, "-c", _SERVE, str(home), str(port)], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        server = _service_pid(home)
        if when == "serving":
            assert command.stdout.readline().strip() == "ready"
            assert _port_open(port)
        command.send_signal(sig)
        command.wait(timeout=60)
    finally:
        command.kill()
    assert command.returncode != 0
    _assert_gone(server, port)
