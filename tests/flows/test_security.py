"""Credentials never land in what a run writes: MLflow params, tags, metrics, artifacts, state files, logs."""

import logging
from pathlib import Path

import mlflow
from helpers import SEED_TEMPLATE, governed

from flows.optimize import optimize_prompt
from promptyard.runtime import get_settings

API_KEY = "sk-test-PromptyardSecretValue0123456789"


def test_an_optimization_writes_the_api_key_nowhere(fake_llm, tiny_dataset, registry, monkeypatch, caplog, capfd,
                                                    isolated):
    monkeypatch.setenv("PROMPTYARD_LM_API_KEY", API_KEY)
    get_settings.cache_clear()
    governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).set_alias("sentiment", "production", 1)
    caplog.set_level(logging.DEBUG)
    summary = optimize_prompt(prompt="sentiment@production", dataset=str(tiny_dataset),
                              optimizer={"name": "copro", "max_candidates": 2, "breadth": 2, "depth": 1, "train_size": 8})
    assert summary.registered_version == 2  # a full run: children, registration, report, plot

    auth = {r.get("_authorization") for r in fake_llm.requests}
    assert auth == {f"Bearer {API_KEY}"}  # the endpoint did receive it...

    client = mlflow.MlflowClient(get_settings().tracking_uri)
    run = client.get_run(summary.parent_run_id)
    children = client.search_runs([run.info.experiment_id])
    for r in [run, *children]:
        for text in (*r.data.params.values(), *r.data.tags.values(), *r.data.metrics.keys()):
            assert API_KEY not in text
    written = [p for p in Path(isolated).rglob("*") if p.is_file()]
    assert any(p.name == "report.md" for p in written) and any(p.suffix == ".db" for p in written)
    leaks = [str(p) for p in written if API_KEY.encode() in p.read_bytes()]
    assert leaks == []  # ...and nothing under the state dir, MLflow's database or its artifacts holds it
    out, err = capfd.readouterr()
    assert API_KEY not in out + err + caplog.text
