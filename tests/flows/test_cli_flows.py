"""`promptyard optimize` and `promptyard deploy` against a real temporary Prefect API."""

import json

import pytest
from click.testing import CliRunner
from helpers import SEED_TEMPLATE, governed

from promptyard.cli import cli


@pytest.fixture
def prefect_api(monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    return PREFECT_API_URL.value()


def test_optimize_prints_json_only(fake_llm, tiny_dataset, registry, prefect_api):
    version = governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).set_alias("sentiment", "production", int(version.version))
    result = CliRunner().invoke(cli, [
        "optimize", "sentiment@production", "--dataset", str(tiny_dataset), "--max-candidates", "1",
        "--set", "breadth=2", "--set", "depth=1", "--set", "train_size=8", "--set", "constrain_labels=false",
        "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["registered_version"] == 2
    assert summary["prefect_url"] == f"{prefect_api.removesuffix('/api')}/runs/flow-run/{summary['flow_run_id']}"
    assert len(summary["candidates"]) == 1


def test_optimize_human_summary(fake_llm, tiny_dataset, registry, prefect_api):
    governed(registry).register("sentiment", SEED_TEMPLATE)
    fake_llm.proposal = "Say what you think."
    result = CliRunner().invoke(cli, [
        "optimize", "sentiment", "--dataset", str(tiny_dataset), "--max-candidates", "1",
        "--set", "breadth=2", "--set", "depth=1", "--set", "train_size=8", "--set", "constrain_labels=false"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "prompt sentiment/1 on tiny with copro" in lines
    assert any(line.startswith("  no version registered: no candidate beat the seed on validation") for line in lines)
    assert any(line.startswith("MLflow run: run ") for line in lines)
    assert any(line.startswith("Prefect flow run: http://127.0.0.1:") for line in lines)


def test_deploy_registers_the_nightly_deployment(prefect_api):
    result = CliRunner().invoke(cli, ["deploy"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("optimize-prompt/nightly-intent")
    assert deployment.entrypoint == "flows/optimize.py:optimize_prompt"
    assert deployment.work_pool_name == "promptyard-local"
    assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
    assert deployment.parameters["prompt"] == "intent@production"
    assert deployment.parameters["optimizer"] == {"name": "copro", "max_candidates": 4}
    # the deployment form describes every parameter group and each optimizer's settings
    schema = deployment.parameter_openapi_schema
    assert schema["properties"]["budget"]["description"] == "Caps on LM calls, tokens and seconds for the whole run."
    copro = schema["definitions"]["CoproSettings"]["properties"]
    assert copro["breadth"]["description"] == "New instructions per round (COPRO needs at least 2)."
    assert {"exclusiveMinimum": 0, "type": "integer"} in schema["definitions"]["BudgetLimits"]["properties"]["calls"]["anyOf"]
    assert set(schema["properties"]["optimizer"]["discriminator"]["mapping"]) == {
        "bootstrap", "copro", "gepa", "metaprompt", "mipro", "simba", "plugin"}
    with get_client(sync_client=True) as client:
        ab = client.read_deployment_by_name("ab-analysis/hourly-ab-intent")
    assert ab.entrypoint == "flows/ab_analysis.py:analyze_experiment"
    assert [s.schedule.cron for s in ab.schedules] == ["15 * * * *"]


def test_the_command_line_runs_the_flow_on_the_configured_prefect_server(fake_llm, tiny_dataset, registry,
                                                                          prefect_api, isolated):
    """As a user runs it: a new process with only PROMPTYARD_PREFECT_PORT set. The flow run must be
    on that server (not on a throwaway one), so the printed URL opens it."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    from urllib.parse import urlparse
    from uuid import UUID

    from prefect.client.orchestration import get_client

    governed(registry).register("sentiment", SEED_TEMPLATE)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL" and not k.startswith("PREFECT_HOME")}
    env["PROMPTYARD_PREFECT_PORT"] = str(urlparse(prefect_api).port)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "promptyard"), "optimize", "sentiment", "--dataset", str(tiny_dataset),
         "--max-candidates", "1", "--set", "breadth=2", "--set", "depth=1", "--set", "train_size=8",
         "--set", "constrain_labels=false", "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert "Starting temporary server" not in done.stderr
    assert summary["prefect_url"] == f"{prefect_api.removesuffix('/api')}/runs/flow-run/{summary['flow_run_id']}"
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(UUID(summary["flow_run_id"])).state.is_completed()
