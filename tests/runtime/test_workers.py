"""`promptyard up` and `promptyard worker` keep Prefect process workers on the deployments' pool: a
deployment run is picked up and finished, and the workers stop cleanly when asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from click.testing import CliRunner

from promptyard.cli import cli
from promptyard.runtime import get_settings

FLOW = '''
from prefect import flow

@flow(name="tiny")
def tiny(x: int = 1) -> int:
    return x + 1
'''

PREFECT_YAML = '''
name: tiny
prefect-version: 3.8.8
build: null
push: null
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{directory}"
deployments:
  - name: tiny
    entrypoint: tiny_flow.py:tiny
    work_pool: {{name: {pool}}}
'''


def _use(monkeypatch, settings) -> None:
    monkeypatch.setenv("PROMPTYARD_HOME", str(settings.home_dir))
    monkeypatch.setenv("PROMPTYARD_PREFECT_PORT", str(settings.prefect_port))
    get_settings.cache_clear()


def _run(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _flow_run_state(api: str, run_id: str) -> str:
    return httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"]["type"]


def test_workers_run_a_deployment_and_stop_cleanly(prefect_server, monkeypatch, tmp_path):
    _use(monkeypatch, prefect_server)
    api = prefect_server.prefect_url
    code, out = _run("worker", "--count", "2", "--limit", "1")
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith("worker-")]
    assert [line.split()[:2] for line in lines][-2:] == [["worker-1", "up"], ["worker-2", "up"]], out
    assert "pool promptyard-local, limit 1" in lines[-1]
    pids = [json.loads((prefect_server.home_dir / "run" / f"worker-{i}.pid").read_text())["pid"] for i in (1, 2)]

    (tmp_path / "tiny_flow.py").write_text(FLOW)
    (tmp_path / "prefect.yaml").write_text(PREFECT_YAML.format(directory=tmp_path, pool="promptyard-local"))
    env = {**os.environ, "PREFECT_API_URL": api}
    prefect = str(Path(sys.executable).parent / "prefect")
    deployed = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployment = httpx.get(f"{api}/deployments/name/tiny/tiny", timeout=10).json()
    run = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={"parameters": {"x": 41}},
                     timeout=10).json()
    deadline = time.monotonic() + 120
    while (state := _flow_run_state(api, run["id"])) not in ("COMPLETED", "FAILED", "CRASHED"):
        assert time.monotonic() < deadline, f"no worker finished the run (state {state})"
        time.sleep(1)
    assert state == "COMPLETED"
    assert httpx.get(f"{api}/deployments/{deployment['id']}", timeout=10).json()["status"] == "READY"

    code, out = _run("status")
    assert "worker-1  up" in out and "worker-2  up" in out, out

    started = time.monotonic()
    code, out = _run("worker", "--count", "0")
    assert code == 0 and out.strip() == "stopped: worker-1, worker-2", out
    assert time.monotonic() - started < 30
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not list((prefect_server.home_dir / "run").glob("worker-*.pid"))
