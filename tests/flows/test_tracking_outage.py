"""MLflow stops in the middle of an optimization: the run waits and retries within a bound, then
fails with one clear message, registers nothing half way, and the same command finishes it later."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from helpers import SEED_TEMPLATE, free_port, governed

from promptyard.runtime import Settings, get_settings, stack



@pytest.fixture
def mlflow_server(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMPTYARD_MLFLOW_TRACKING_URI")  # the test's SQLite store: this test needs a server
    settings = Settings(home=tmp_path / "server", mlflow_port=free_port())
    assert settings.tracking_uri.startswith("http://127.0.0.1:")
    with stack.running(settings, ("mlflow",), echo=lambda _: None):
        monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", settings.tracking_uri)
        get_settings.cache_clear()
        yield settings


@pytest.fixture
def prefect_api(monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())


def _command(dataset: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "promptyard"), "optimize", "sentiment@production", "--dataset",
            str(dataset), "--max-candidates", "3", "--set", "breadth=3", "--set", "depth=1", "--set", "train_size=8",
            "--json"]


def test_mlflow_stopped_mid_run_fails_clearly_within_a_bound_and_resumes(fake_llm, tiny_dataset, mlflow_server,
                                                                         prefect_api, tmp_path):
    from promptyard.registry import Registry

    registry = Registry(mlflow_server.tracking_uri)
    governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).set_alias("sentiment", "production", 1)
    fake_llm.latency_s = 0.05
    env = {**os.environ, "PROMPTYARD_RESUME": "true", "DSPY_CACHEDIR": str(tmp_path / "lm-cache")}
    client = mlflow.MlflowClient(mlflow_server.tracking_uri)

    run = subprocess.Popen(_command(tiny_dataset), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not [r for r in client.search_runs(["0", *[e.experiment_id for e in client.search_experiments()]])
               if "promptyard.candidate_key" in r.data.tags]:
        if run.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run ended before any candidate was logged: {run.stderr.read()[-3000:]}")
        time.sleep(0.05)
    stack.down(mlflow_server, ("mlflow",))  # the real server process stops
    stopped = time.monotonic()
    out, err = run.communicate(timeout=600)
    waited = time.monotonic() - stopped

    assert run.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-6000:]
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"Error: MLflow at {mlflow_server.tracking_uri} stopped answering"), err[-2000:]
    assert "run the same command again" in message
    assert waited < 240, f"waited {waited:.0f} s for a server that was gone"
    print(f"\nMLflow stopped: the run gave up after {waited:.0f} s")

    stack.up(mlflow_server, ("mlflow",), echo=lambda _: None)
    assert [int(v.version) for v in registry.versions("sentiment")] == [1]  # nothing half registered
    again = subprocess.run(_command(tiny_dataset), env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["registered_version"] == 2
    assert sorted(int(v.version) for v in registry.versions("sentiment")) == [1, 2]
