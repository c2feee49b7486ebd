"""A chat prompt optimized end to end: the system message is rewritten, the user message and its
variables are kept, and the winner is a chat prompt plain MLflow reads."""

import mlflow
import pytest
from helpers import governed

from flows.optimize import optimize_prompt
from promptyard.errors import TemplateError
from promptyard.runtime import get_settings

SEED = [{"role": "system", "content": "Classify the sentiment of the review as positive or negative."},
        {"role": "user", "content": "Review: {{text}}"}]


def run(dataset):
    return optimize_prompt(prompt="review@production", dataset=str(dataset),
                           optimizer={"name": "copro", "breadth": 2, "depth": 1, "train_size": 8,
                                      "max_candidates": 1})


def test_a_chat_prompt_is_optimized_and_registered_as_a_chat_prompt(fake_llm, tiny_dataset, registry):
    version = governed(registry).register("review", SEED)
    governed(registry).set_alias("review", "production", int(version.version))
    summary = run(tiny_dataset)

    # the proposer was asked to rewrite the system message, and every task request was a chat
    proposer = fake_llm.chat_requests("proposer")[0]["messages"][-1]["content"]
    assert f"Basic instruction: {SEED[0]['content']}" in proposer
    assert {tuple(m["role"] for m in r["messages"]) for r in fake_llm.chat_requests("task")} == {("system", "user")}
    assert summary.registered_version == 2 and summary.test.candidate == 1.0
    registered = registry.template(registry.get("review@candidate"))
    assert registered == [{"role": "system", "content": "Read the review carefully. Answer positive or negative."},
                          SEED[1]]
    mlflow.set_tracking_uri(get_settings().tracking_uri)
    loaded = mlflow.genai.load_prompt("prompts:/review@candidate")
    assert loaded.format(text="good")[1] == {"role": "user", "content": "Review: good"}

    client = mlflow.MlflowClient(get_settings().tracking_uri)
    report = open(client.download_artifacts(summary.parent_run_id, "report.md")).read()
    assert "-Classify the sentiment of the review as positive or negative.\n+Read the review carefully." in report
    assert client.get_run(summary.parent_run_id).data.params["seed_template"].startswith("[system]\n")


def test_variables_in_the_system_message_are_refused_before_any_call(fake_llm, tiny_dataset, registry):
    governed(registry).register("review", [{"role": "system", "content": "Judge {{text}}."},
                                           {"role": "user", "content": "Review: {{text}}"}])
    governed(registry).set_alias("review", "production", 1)
    with pytest.raises(TemplateError, match="move the variables into the last user message"):
        run(tiny_dataset)
    assert fake_llm.requests == []
