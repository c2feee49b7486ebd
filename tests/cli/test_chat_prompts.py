"""Chat prompts from the command line: register, show, score, compare."""

import json

from click.testing import CliRunner
from helpers import SEED_TEMPLATE, governed

from promptyard.cli import cli


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


def test_register_and_show_a_chat_prompt(tmp_path):
    assert invoke("prompts", "register", "review", "--system", "Read the review carefully.",
                  "--template", "Review: {{text}}") == "registered review version 1\n"
    shown = invoke("prompts", "show", "review/1")
    assert shown.endswith("---\n[system]\nRead the review carefully.\n\n[user]\nReview: {{text}}\n")
    data = json.loads(invoke("prompts", "show", "review/1", "--json"))
    assert data["template"] == [{"role": "system", "content": "Read the review carefully."},
                                {"role": "user", "content": "Review: {{text}}"}]
    assert data["variables"] == ["text"]
    chat = tmp_path / "review.yaml"
    chat.write_text("- role: system\n  content: Be brief.\n- role: user\n  content: 'Review: {{text}}'\n")
    assert invoke("prompts", "register", "review", "--file", str(chat)) == "registered review version 2\n"
    assert invoke("prompts", "diff", "review", "1", "2").splitlines()[3:6] == [
        " [system]", "-Read the review carefully.", "+Be brief."]


def test_bad_chat_input_is_one_message_before_any_service(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    from promptyard.runtime import get_settings

    get_settings.cache_clear()
    chat = tmp_path / "bad.yaml"
    chat.write_text("- role: bot\n  content: 'Hi {{text}}'\n")
    out = invoke("prompts", "register", "review", "--file", str(chat), code=1)
    assert out == "Error: Message 1 of the chat template has role 'bot': use one of system, user, assistant.\n"
    out = invoke("prompts", "register", "review", "--file", str(chat), "--system", "x", code=1)
    assert "holds chat messages already" in out
    out = invoke("prompts", "register", "review", "--system", " ", "--template", "Q {{q}}", code=1)
    assert out.startswith("Error: --system is empty")


def test_eval_and_offline_ab_score_a_chat_prompt(fake_llm, tiny_dataset, registry):
    governed(registry).register("sentiment", SEED_TEMPLATE)  # the fake answers "positive" to it
    governed(registry).register("sentiment", [
        {"role": "system", "content": "Read the review carefully: positive or negative?"},
        {"role": "user", "content": "Review: {{text}}"}])
    result = json.loads(invoke("eval", "sentiment/2", "--dataset", str(tiny_dataset), "--json"))
    assert (result["score"], result["n"]) == (1.0, 40)  # the instruction in the system message is followed
    sent = fake_llm.chat_requests("task")[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"] and sent[1]["content"].startswith("Review: The film")
    result = json.loads(invoke("ab", "offline", "sentiment/1", "sentiment/2", "--dataset", str(tiny_dataset),
                               "--json"))
    assert result["b_score"] == 1.0 and result["verdict"] == "sentiment/2 is better than sentiment/1"
