import json
import socket

import pytest
from helpers import governed
from click.testing import CliRunner

from promptyard.cli import cli
from promptyard.evaluation import load_dataset
from promptyard.runtime import get_settings


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout


def test_prompts_commands(monkeypatch):
    monkeypatch.setenv("PROMPTYARD_USER", "alice")
    assert invoke("prompts", "register", "support", "--template", "Be kind.\\n\\nQ: {{question}}", "--message",
                  "first", "--tag", "team=cx", "--alias", "production") == \
        "registered support version 1 (aliases: production)\n"
    assert invoke("prompts", "register", "support", "--template", "Be brief.\\n\\nQ: {{question}}") == \
        "registered support version 2\n"
    assert invoke("prompts", "list") == "support\n"
    assert invoke("prompts", "show", "support@production") == (
        "support version 1  aliases: production\nvariables: question\ntag promptyard.author=alice\ntag team=cx\n---\n"
        "Be kind.\n\nQ: {{question}}\n")
    assert invoke("prompts", "alias", "support", "staging", "2") == "support@staging -> version 2\n"
    lines = invoke("prompts", "versions", "support").splitlines()
    assert [line.split()[:2] for line in lines] == [["v2", "staging"], ["v1", "production"]]
    shown = json.loads(invoke("prompts", "show", "support/2", "--json"))
    assert shown["version"] == 2 and shown["uri"] == "prompts:/support/2" and shown["aliases"] == ["staging"]


def test_register_checks_variables_against_a_dataset():
    out = CliRunner().invoke(cli, ["prompts", "register", "intent", "--template", "Classify.\\n\\nQ: {{query}}",
                                   "--dataset", "intent_recognition"])
    assert out.exit_code == 1
    assert out.output.startswith("Error: Template variable(s) {{query}} are not provided by the dataset")
    assert invoke("prompts", "list") == "no prompts yet\n"


def test_unknown_prompt_is_a_clean_error():
    out = CliRunner().invoke(cli, ["prompts", "show", "nope@production"])
    assert out.exit_code == 1 and out.output.startswith("Error: No prompt named 'nope'")


def test_template_source_is_required():
    out = CliRunner().invoke(cli, ["prompts", "register", "x"])
    assert out.exit_code == 1
    assert "exactly one of --template TEXT or --file PATH" in out.output


def test_optimize_needs_prefect(fake_llm, tiny_dataset, registry, monkeypatch):
    governed(registry).register("sentiment", "Classify.\n\nReview: {{text}}")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    out = CliRunner().invoke(cli, ["optimize", "sentiment", "--dataset", str(tiny_dataset)])
    assert out.exit_code == 1
    assert out.output.startswith("Error: The Prefect server at http://127.0.0.1:9/api does not answer")
    assert "promptyard up" in out.output
    assert fake_llm.chat_requests() == []
    assert len(registry.versions("sentiment")) == 1


def test_optimize_bad_setting_syntax(fake_llm, tiny_dataset):
    out = CliRunner().invoke(cli, ["optimize", "x", "--dataset", str(tiny_dataset), "--set", "breadth"])
    assert out.exit_code == 1 and "--set takes KEY=VALUE, got 'breadth'" in out.output


def test_status_json_when_nothing_runs(monkeypatch):
    for name in ("LLM", "MLFLOW", "PREFECT"):
        monkeypatch.setenv(f"PROMPTYARD_{name}_PORT", "9")
    get_settings.cache_clear()
    out = CliRunner().invoke(cli, ["status", "--json"])
    assert out.exit_code == 3
    assert [(s["name"], s["healthy"]) for s in json.loads(out.output)] == [
        ("llm", False), ("mlflow", False), ("prefect", False)]


def test_up_refuses_a_taken_port(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("PROMPTYARD_MLFLOW_PORT", str(port))
        get_settings.cache_clear()
        out = CliRunner().invoke(cli, ["up", "--only", "mlflow"])
    assert out.exit_code == 1
    assert f"Port {port} is taken by another program" in out.output
    assert "PROMPTYARD_MLFLOW_PORT" in out.output


def test_optimizers_list_shows_each_setting_with_type_default_and_description():
    lines = invoke("optimizers", "list").splitlines()
    heads = [line.split(":")[0] for line in lines if not line.startswith(" ")]
    assert heads == ["bootstrap", "copro", "gepa", "metaprompt", "mipro", "simba"]
    copro = lines[lines.index(next(line for line in lines if line.startswith("copro:"))):]
    assert copro[1].split() == ["max_candidates=4", "(int)", "Proposals", "returned", "to", "the", "flow,", "best",
                                "first."]
    assert copro[3].startswith("  breadth=4") and "New instructions per round" in copro[3]
    listed = json.loads(invoke("optimizers", "list", "--json"))
    assert {s["name"]: s["default"] for s in listed["gepa"]["settings"]}["max_metric_calls"] == 120
    assert all(s["description"] for o in listed.values() for s in o["settings"])


@pytest.mark.parametrize("command", [["up"], ["down"], ["status"], ["optimize"], ["demo"], ["deploy"],
                                     ["prompts", "register"], ["prompts", "show"], ["optimizers", "list"],
                                     ["prompts", "promote"], ["prompts", "approve"], ["prompts", "reject"],
                                     ["prompts", "rollback"], ["prompts", "contract"], ["prompts", "search"],
                                     ["prompts", "diff"], ["prompts", "export"], ["prompts", "import"],
                                     ["audit", "log"], ["audit", "verify"], ["audit", "head"], ["audit", "export"],
                                     ["policy", "show"], ["policy", "check"], ["policy", "apply"],
                                     ["ab", "start"], ["ab", "status"], ["ab", "analyze"], ["ab", "stop"],
                                     ["ab", "offline"]])
def test_every_command_has_an_example(command):
    assert "Example:" in invoke(*command, "--help")


def test_eval_scores_a_version_with_an_interval(fake_llm, tiny_dataset, registry):
    governed(registry).register("sentiment", "Answer carefully.\n\nReview: {{text}}")
    out = invoke("eval", "sentiment", "--dataset", str(tiny_dataset), "--split", "validation", "--json")
    result = json.loads(out)
    assert (result["prompt"], result["n"], result["score"], result["low"], result["high"]) == (
        "sentiment/1", 20, 1.0, 1.0, 1.0)
    assert len(fake_llm.chat_requests()) == 20
    majority = result["reference"]["majority_label"]
    assert result["reference"]["n"] == 20 and result["reference"]["random"] == 0.5
    assert result["versus_majority"][0]["significant"] and result["versus_majority"][0]["losses"] == 0
    text = invoke("eval", "sentiment", "--dataset", str(tiny_dataset), "--limit", "4").splitlines()
    assert text[0].startswith("sentiment/1 on tiny test (n=4): exact_label 1.000 [1.000, 1.000] 95% interval")
    points = result["reference"]
    assert text[1].startswith(f"reference points: majority label {majority!r} ")
    assert text[1].endswith(", uniform random over 2 labels 0.500")
    assert text[2].startswith(f"sentiment/1 1.000 is NOT significantly above always answering {majority!r}")
    assert points["majority"] == sum(r["label"] == majority for r in load_dataset(tiny_dataset).rows("validation")) / 20


@pytest.mark.parametrize("args, message", [
    (["--budget-calls", "0"], "budget.calls=0 is not valid: Input should be greater than 0"),
    (["--optimizer", "nope"], "Unknown optimizer 'nope': choose one of bootstrap, copro"),
    (["--set", "breadth=many"], "Optimizer 'copro' setting breadth='many' is not valid"),
    (["--set", "widht=3"], "Optimizer 'copro' does not accept widht"),
    (["--max-cost", "-1"], "selection.max_cost_per_example=-1.0 is not valid"),
    (["--limit-test", "0"], "search.limit_test=0 is not valid"),
    (["--also-on", "smollm2"], "--also-on 'smollm2' is not ENDPOINT/MODEL"),
    (["--budget-proposer-calls", "0"], "budget.proposer_calls=0 is not valid"),
])
def test_optimize_checks_inputs_before_any_service(tiny_dataset, monkeypatch, args, message):
    """Nothing answers on these ports: the input is refused first, with one message and no traceback."""
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("PROMPTYARD_LM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    get_settings.cache_clear()
    out = CliRunner().invoke(cli, ["optimize", "support", "--dataset", str(tiny_dataset), *args])
    assert out.exit_code == 1 and out.output.startswith("Error: ") and message in out.output, out.output
    assert "Traceback" not in out.output


def test_optimize_names_a_missing_dataset_before_any_service(monkeypatch):
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    get_settings.cache_clear()
    out = CliRunner().invoke(cli, ["optimize", "support", "--dataset", "nowhere"])
    assert out.exit_code == 1 and "Dataset 'nowhere' not found" in out.output
