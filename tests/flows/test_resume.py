"""Resume after `kill -9`: the same command again re-scores nothing that finished, makes one child run
per candidate across both attempts, and marks the killed attempt's parent run failed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

import mlflow
import pytest
from helpers import SEED_TEMPLATE, governed

from promptyard.runtime import get_settings


@pytest.fixture
def prefect_api(monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    return PREFECT_API_URL.value()


def _command(dataset: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "promptyard"), "optimize", "sentiment@production", "--dataset",
            str(dataset), "--max-candidates", "4", "--set", "breadth=4", "--set", "depth=1", "--set", "train_size=8",
            "--json"]


def _children(client: mlflow.MlflowClient) -> list:
    experiment = client.get_experiment_by_name(get_settings().experiment)
    if experiment is None:
        return []
    return [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
            if "promptyard.candidate_key" in r.data.tags]


def _body(request: dict) -> str:
    return json.dumps(request, sort_keys=True)


def test_a_killed_optimization_resumes_where_it_stopped(fake_llm, tiny_dataset, registry, prefect_api, tmp_path):
    from prefect.client.orchestration import get_client

    governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).set_alias("sentiment", "production", 1)
    fake_llm.latency_s = 0.05  # slow enough to be killed in the middle of the candidates
    env = {**os.environ, "PROMPTYARD_RESUME": "true", "PROMPTYARD_LM_CACHE": "true",
           "DSPY_CACHEDIR": str(tmp_path / "lm-cache")}
    client = mlflow.MlflowClient(get_settings().tracking_uri)

    first = subprocess.Popen(_command(tiny_dataset), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    deadline = time.monotonic() + 300
    while len(finished := [r for r in _children(client) if r.info.status == "FINISHED"]) < 2:
        if first.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the first attempt ended before two candidates finished: {first.stderr.read()[-3000:]}")
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # kill -9, the flow process and anything it started
    first.wait()
    killed_parent = finished[0].data.tags["mlflow.parentRunId"]
    finished_at_kill = {r.data.tags["promptyard.candidate_key"]: r.info.run_id for r in finished}
    served_first = [_body(r) for r in fake_llm.requests]

    second = subprocess.run(_command(tiny_dataset), env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout)
    served_second = [_body(r) for r in fake_llm.requests[len(served_first):]]

    # one child run per candidate across both attempts; the finished ones are the same runs, untouched
    children = _children(client)
    keys = Counter(r.data.tags["promptyard.candidate_key"] for r in children)
    assert keys and max(keys.values()) == 1, keys
    for key, run_id in finished_at_kill.items():
        assert next(r for r in children if r.data.tags["promptyard.candidate_key"] == key).info.run_id == run_id
    assert len(summary["candidates"]) == len(children)
    assert all(r.info.status in ("FINISHED", "FAILED") for r in children)

    # the killed attempt's parent run is failed, and says why
    killed = client.get_run(killed_parent)
    assert killed.info.status == "FAILED"
    assert "resumed by run" in killed.data.tags["promptyard.failure"], killed.data.tags
    assert summary["parent_run_id"] != killed_parent

    # nothing that finished was scored again: Prefect served those tasks from their cache...
    with get_client(sync_client=True) as prefect:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        runs = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[
            UUID(summary["flow_run_id"])])))
    cached = [r for r in runs if r.state and r.state.name == "Cached"]
    assert len([r for r in cached if r.name.startswith("candidate")]) >= len(finished_at_kill), \
        sorted((r.name, r.state.name) for r in runs)
    # ... and the endpoint saw again only what was in flight when the process died (the LM cache kept the rest)
    redone = sum((Counter(served_first) & Counter(served_second)).values())
    total = len(set(served_first) | set(served_second))
    print(f"\nrequests: first attempt {len(served_first)}, second {len(served_second)}, re-done {redone} "
          f"({redone / total:.1%} of {total})")
    assert redone <= max(4, 0.05 * total)
