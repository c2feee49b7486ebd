"""The A/B analysis flow on a real Prefect API and MLflow store, fed by real client traffic."""

import json
import random

import mlflow
import pytest
from click.testing import CliRunner

from flows.ab_analysis import analyze_experiment
from promptyard.cli import cli
from promptyard.serving import Experiments
from promptyard.serving import PromptClient


def serve(units, rates, *, latency=None, seed=0):
    """App traffic: assign each unit, record a success with the version's true rate."""
    rng = random.Random(seed)
    client = PromptClient(ttl_seconds=60)
    for unit in range(units):
        assignment = client.assign("support@production", f"user-{unit}")
        client.record_outcome(assignment, rng.random() < rates[assignment.version],
                              latency_ms=(latency or {}).get(assignment.version, 100.0) + rng.random())
    client.close()


def test_flow_promotes_the_winner_and_logs_a_plot(support):
    experiments = Experiments(support)
    experiment = experiments.start("support@production", {1: 0.5, 2: 0.5}, min_samples=30)
    serve(600, {1: 0.2, 2: 0.6})
    result = analyze_experiment(prompt="support@production")
    assert (result["decision"], result["winner"]) == ("promote", 2)
    assert int(support.get("support@production").version) == 2
    assert experiments.get("support@production") is None
    last = experiments.last_result("support@production")
    assert (last["experiment"], last["decision"], last["previous"], last["analysis_run_id"]) == \
        (experiment.id, "promote", 1, result["run_id"])
    run = mlflow.MlflowClient(support.tracking_uri).get_run(result["run_id"])
    assert run.data.tags["promptyard.ab.decision"] == "promote"
    assert run.data.metrics["v2_mean"] > run.data.metrics["v1_mean"]
    assert run.data.metrics["v2_vs_control_value_p_value"] < 0.05
    artifacts = {a.path for a in mlflow.MlflowClient(support.tracking_uri).list_artifacts(result["run_id"])}
    assert {"metric_over_time.png", "analysis.json"} <= artifacts


def test_flow_rolls_back_on_a_latency_regression(support):
    Experiments(support).start("support@production", {1: 0.5, 2: 0.5}, min_samples=30)
    serve(600, {1: 0.3, 2: 0.3}, latency={1: 100.0, 2: 400.0})
    result = analyze_experiment(prompt="support@production")
    assert (result["decision"], result["winner"]) == ("rollback", 1)
    assert int(support.get("support@production").version) == 1
    assert "latency_ms" in result["reason"]


def test_flow_keeps_running_and_reallocates_with_thompson(support):
    experiments = Experiments(support)
    experiments.start("support@production", {1: 0.5, 2: 0.5}, min_samples=30, thompson=True)
    serve(80, {1: 0.3, 2: 0.3})
    result = analyze_experiment(prompt="support@production")
    assert result["decision"] == "continue" and result["applied"]["decision"] == "reallocate"
    updated = experiments.get("support@production")
    assert updated.epoch == 1 and sum(updated.weights.values()) == pytest.approx(1.0)


def test_dry_run_and_no_experiment_change_nothing(support):
    experiments = Experiments(support)
    experiments.start("support@production", {1: 0.5, 2: 0.5}, min_samples=30)
    serve(600, {1: 0.1, 2: 0.7})
    result = analyze_experiment(prompt="support@production", apply=False)
    assert result["decision"] == "promote" and result["applied"] == {"decision": "dry-run"}
    assert int(support.get("support@production").version) == 1 and experiments.get("support@production")
    experiments.stop("support@production")
    assert analyze_experiment(prompt="support@production")["decision"] == "none"


def test_ab_cli_round_trip(support, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    runner = CliRunner()

    def invoke(*args, code=0):
        result = runner.invoke(cli, ["ab", *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    assert invoke("start", "support@production", "--split", "1=50%", "--split", "2=50%", "--min-samples", "30") \
        .stdout.startswith("started support@production#")
    refused = invoke("start", "support@production", "--split", "1=0.5", "--split", "2=0.5", code=1)
    assert "already runs experiment" in refused.output
    serve(600, {1: 0.2, 2: 0.6})
    status = invoke("status", "support@production").stdout
    assert "decision now: promote" in status and "always-valid interval" in status
    analyzed = json.loads(invoke("analyze", "support@production", "--json").stdout)
    assert analyzed["applied"]["version"] == 2
    assert "the last one" in invoke("status", "support@production").stdout
    assert "No experiment runs" in invoke("stop", "support@production", code=1).output
