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
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # an earlier command in this process set it
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


PROMPTS = """
schedule: {cron: "0 3 * * *", timezone: UTC}
prompts:
  - prompt: intent@production
    dataset: intent_recognition
    optimizer: {name: copro, max_candidates: 4}
  - prompt: support/3
    dataset: rotten_tomatoes
    cron: "30 2 * * *"
"""


def test_deploy_a_nightly_optimization_per_listed_prompt(prefect_server, monkeypatch, tmp_path):
    _use(monkeypatch, prefect_server)
    (tmp_path / "nightly.yaml").write_text(PROMPTS)
    code, out = _run("deploy", "--prompts", str(tmp_path / "nightly.yaml"))
    assert code == 0, out
    assert "2 deployments (optimize-intent-production, optimize-support-3)" in out
    api = prefect_server.prefect_url
    first = httpx.get(f"{api}/deployments/name/optimize-prompt/optimize-intent-production", timeout=10).json()
    second = httpx.get(f"{api}/deployments/name/optimize-prompt/optimize-support-3", timeout=10).json()
    assert first["parameters"] == {"prompt": "intent@production", "dataset": "intent_recognition",
                                   "optimizer": {"name": "copro", "max_candidates": 4}}
    assert first["work_pool_name"] == "promptyard-local"
    assert [s["schedule"]["cron"] for s in first["schedules"]] == ["0 3 * * *"]
    assert [s["schedule"]["cron"] for s in second["schedules"]] == ["30 2 * * *"]


def test_a_bad_prompts_file_is_refused_before_any_service(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTYARD_PREFECT_PORT", "9")  # nothing answers there: it must not be reached
    get_settings.cache_clear()
    bad = tmp_path / "bad.yaml"
    for text, message in [
        ("prompts: [{prompt: intent@production}]", "entry 1 needs `prompt` (NAME@ALIAS or NAME/VERSION) and `dataset`"),
        ("prompts: [{prompt: a@b, dataset: d, cron: 'every night'}]", "cron 'every night' is not a cron expression"),
        ("prompts: [{prompt: a@b, dataset: d, scheduel: x}]", "unknown key(s) scheduel"),
        ("prompts: []", "needs a non-empty list under `prompts:`"),
    ]:
        bad.write_text(text)
        result = CliRunner().invoke(cli, ["deploy", "--prompts", str(bad)])
        assert result.exit_code == 1 and message in result.output, (text, result.output)
