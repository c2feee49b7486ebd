"""`promptyard ab ...`: offline comparison, and bad input that leaves everything as it was."""

import json

import mlflow
import pytest
from click.testing import CliRunner
from helpers import SEED_TEMPLATE, governed

from promptyard.cli import cli
from promptyard.serving import Experiments


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, ["ab", *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def test_offline_ab_compares_two_versions_on_the_same_examples(fake_llm, tiny_dataset, registry):
    governed(registry).register("sentiment", SEED_TEMPLATE)  # the fake always answers "positive": right on positives only
    governed(registry).register("sentiment", SEED_TEMPLATE.replace("Classify", "Read carefully and classify"))
    result = json.loads(invoke("offline", "sentiment/1", "sentiment/2", "--dataset", str(tiny_dataset),
                               "--json").stdout)
    assert (result["n"], result["a_score"], result["b_score"]) == (40, 0.375, 1.0)  # 15 of 40 are positive
    assert result["low"] > 0 and result["verdict"] == "sentiment/2 is better than sentiment/1"
    assert (result["fixed"], result["broken"]) == (25, 0) and result["mcnemar_p_value"] < 1e-6
    assert len(fake_llm.chat_requests("task")) == 80
    run = mlflow.MlflowClient(registry.tracking_uri).get_run(result["run_id"])
    assert run.data.metrics["diff_low"] == result["low"]
    text = invoke("offline", "sentiment/2", "sentiment/1", "--dataset", str(tiny_dataset), "--limit", "10").stdout
    assert "B − A -0.900" in text and "sentiment/1 is worse than sentiment/2" in text


def test_offline_ab_bad_input(fake_llm, tiny_dataset, registry):
    governed(registry).register("sentiment", SEED_TEMPLATE)
    assert "are the same version" in invoke("offline", "sentiment/1", "sentiment", "--dataset", str(tiny_dataset),
                                            code=1).output
    assert "has no version 7" in invoke("offline", "sentiment/1", "sentiment/7", "--dataset", str(tiny_dataset),
                                        code=1).output
    assert fake_llm.chat_requests() == []


@pytest.mark.parametrize("splits, message", [
    (["1=0.7", "2=0.2"], "Weights sum to 0.9, not 1"),
    (["1=0.5", "5=0.5"], "has no version 5"),
    (["1=half", "2=0.5"], "--split takes VERSION=WEIGHT"),
    (["1=0.5", "1=0.5"], "Version 1 appears twice"),
])
def test_start_refuses_bad_splits(support, splits, message):
    args = [a for s in splits for a in ("--split", s)]
    assert message in invoke("start", "support@production", *args, code=1).output
    assert Experiments(support).get("support@production") is None


def test_start_status_stop(support):
    started = json.loads(invoke("start", "support@production", "--split", "1=0.9", "--split", "2=0.1",
                                "--guardrail", "latency_ms=0.5", "--json").stdout)
    assert started["control"] == 1
    status = invoke("status", "support@production").stdout
    assert "v1    weight   90%  exposures      0" in status
    assert "waiting for data" in status
    assert "--guardrail takes METRIC=SHARE" in invoke("start", "support@staging", "--split", "1=1",
                                                       "--guardrail", "cost=lots", code=1).output
    refused = invoke("stop", "support@production", "--promote", "2", code=1).output
    assert "cannot take support@production; failed: evidence" in refused
    stopped = invoke("stop", "support@production").stdout
    assert stopped.startswith(f"stopped {started['experiment']}; support@production → v1")
    assert int(support.get("support@production").version) == 1
