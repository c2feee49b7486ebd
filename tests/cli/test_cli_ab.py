"""`promptyard ab ...`: offline comparison, and bad input that leaves everything as it was."""

import json
import re

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
    # 25 of 40 paired differences are 1, 15 are 0: sd 0.490; (1.960 + 0.842)² · 0.490² / 0.05² ≈ 755 examples
    assert round(result["sd_diff"], 4) == 0.4903 and result["examples_needed"] == 755
    assert result["power"] == ("examples needed to detect +0.05 at 95% with 80% power: 755 (have 40; from the "
                               "spread of the paired differences, sd 0.490)")
    text = invoke("offline", "sentiment/2", "sentiment/1", "--dataset", str(tiny_dataset), "--limit", "10",
                  "--lift", "0.5").stdout
    assert "B − A -0.900" in text and "sentiment/1 is worse than sentiment/2" in text
    assert "examples needed to detect +0.5 at 95% with 80% power: 4 (have 10" in text


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


def test_start_states_the_units_needed_from_a_declared_or_observed_base_rate(support, tmp_path):
    from promptyard.serving import PromptClient

    declared = invoke("start", "support@production", "--split", "1=0.5", "--split", "2=0.5", "--lift", "0.05",
                      "--base-rate", "0.25").stdout
    assert "design: family-wise alpha 0.05 over 1 treatment" in declared
    assert "plan: needs ≈" in declared and "to detect +0.05 over a base of 0.25 (declared) with 80% power at " \
                                            "alpha 0.04" in declared
    app = PromptClient(snapshot_dir=tmp_path / "snap")
    for unit in range(200):
        for repeat in range(2):
            app.record_outcome(app.assign("support@production", f"u{unit}"), (unit + repeat) % 4 == 0)
    app.close()
    status = invoke("status", "support@production").stdout
    assert "plan: needs ≈" in status and "(observed: " in status and "so far" in status
    invoke("stop", "support@production")
    observed = invoke("start", "support@production", "--split", "1=0.5", "--split", "2=0.5").stdout
    assert re.search(r"over a base of 0\.\d+ \(observed: \d{2,3} units of v1 in the event store\)", observed)
    assert "--base-rate -1.0 is not valid" in invoke("start", "support@staging", "--split", "1=1",
                                                     "--base-rate", "-1", code=1).output


def test_start_status_stop(support):
    started = json.loads(invoke("start", "support@production", "--split", "1=0.9", "--split", "2=0.1",
                                "--guardrail", "latency_ms=0.5", "--json").stdout)
    assert started["control"] == 1
    assert started["levels"] == {"value": 0.04, "latency_ms": 0.01}  # the guardrails given replace the default
    assert started["plan"]["units"] > 10_000 and started["plan"]["source"].startswith("assumed")
    status = invoke("status", "support@production").stdout
    assert "v1    weight   90%  exposures      0  units      0" in status
    assert "design: family-wise alpha 0.05 over 1 treatment × (quality + latency_ms), Bonferroni: " \
           "quality 0.04, latency_ms 0.01 per treatment" in status
    assert "waiting for data" in status
    assert "--guardrail takes METRIC=SHARE" in invoke("start", "support@staging", "--split", "1=1",
                                                       "--guardrail", "cost=lots", code=1).output
    refused = invoke("stop", "support@production", "--promote", "2", code=1).output
    assert "cannot take support@production; failed: evidence" in refused
    stopped = invoke("stop", "support@production").stdout
    assert stopped.startswith(f"stopped {started['experiment']}; support@production → v1")
    assert int(support.get("support@production").version) == 1
