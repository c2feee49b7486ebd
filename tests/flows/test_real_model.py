"""The bundled SmolLM2-135M, served by `promptyard up --only llm`, through the whole flow: a text prompt,
then a chat prompt whose system message the 135M model rewrites. One server for the file, and one file,
so the two never compete for the cores."""

import mlflow
import pytest
from helpers import free_port, governed

from flows.optimize import optimize_prompt
from optimizers.proposals import usable_proposal
from promptyard.cli.optimize import DEMO_TEMPLATE
from promptyard.registry import Template
from promptyard.runtime import Settings, get_settings, stack

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def bundled_llm(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("stack"), llm_port=free_port())
    statuses = stack.up(settings, ("llm",), echo=lambda _: None)
    assert [s.healthy for s in statuses if s.name == "llm"] == [True]
    yield settings
    assert stack.down(settings, ("llm",)) == ["llm"]
    assert not [s for s in stack.status(settings) if s.name == "llm" and s.healthy]


def test_up_is_idempotent(bundled_llm):
    pid = next(s.pid for s in stack.status(bundled_llm) if s.name == "llm")
    stack.up(bundled_llm, ("llm",), echo=lambda _: None)
    assert next(s.pid for s in stack.status(bundled_llm) if s.name == "llm") == pid


def test_flow_on_the_real_model(bundled_llm, registry, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_LLM_PORT", str(bundled_llm.llm_port))
    monkeypatch.delenv("PROMPTYARD_LM_BASE_URL", raising=False)
    get_settings.cache_clear()
    assert get_settings().plain_proposer  # the bundled model gets the plain-text proposer

    version = governed(registry).register("intent", DEMO_TEMPLATE)
    governed(registry).set_alias("intent", "production", int(version.version))
    summary = optimize_prompt(
        prompt="intent@production", dataset="intent_recognition",
        optimizer={"name": "copro", "max_candidates": 1, "breadth": 2, "depth": 1, "train_size": 6},
        search={"limit_validation": 12, "limit_test": 20},
    )

    # the 135M model really proposed an instruction, and every candidate was scored
    proposals = [c for c in summary.candidates if c.train_score is not None]
    assert len(proposals) == 1
    client = mlflow.MlflowClient(get_settings().tracking_uri)
    children = client.search_runs(
        [client.get_run(summary.parent_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{summary.parent_run_id}'")
    templates = {c.data.params["template"] for c in children}
    assert len(children) == 5 and len(templates) == 2 and DEMO_TEMPLATE in templates  # + 3 seed, 1 proposal format twins
    assert all(c.data.metrics["validation_lm_calls"] == 12 for c in children)
    assert summary.test.n == 20
    assert (summary.registered_version is not None) == (summary.test.low > 0)


SEED = [{"role": "system", "content": "Classify the sentiment of the movie review as positive or negative. "
                                      "Answer with one word."},
        {"role": "user", "content": "Review: {{text}}"}]


def test_a_chat_prompt_on_the_real_model(bundled_llm, registry, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_LLM_PORT", str(bundled_llm.llm_port))
    monkeypatch.delenv("PROMPTYARD_LM_BASE_URL", raising=False)
    get_settings.cache_clear()
    version = governed(registry).register("review", SEED)
    governed(registry).set_alias("review", "production", int(version.version))
    summary = optimize_prompt(
        prompt="review@production", dataset="rotten_tomatoes",
        optimizer={"name": "copro", "max_candidates": 1, "breadth": 2, "depth": 1, "train_size": 6},
        search={"limit_validation": 20, "limit_test": 40})

    # the 135M model proposed a readable system message; every candidate is a chat prompt with the same user message
    client = mlflow.MlflowClient(get_settings().tracking_uri)
    children = client.search_runs([client.get_run(summary.parent_run_id).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{summary.parent_run_id}'")
    assert len(children) == len(summary.candidates) >= 1
    texts = {c.data.params["template"] for c in children}
    assert all(t.startswith("[system]\n") and t.endswith("\n\n[user]\nReview: {{text}}") for t in texts)
    proposed = [c for c in summary.candidates if c.train_score is not None]
    for candidate in proposed:
        text = next(c.data.params["template"] for c in children if c.info.run_id == candidate.run_id)
        system = text.removeprefix("[system]\n").split("\n\n[user]\n")[0]
        assert usable_proposal(system) == system  # no meta-text left in what a reviewer would read
    assert summary.reference_validation.labels == 2 and summary.reference_validation.n == 20
    if summary.test is None:
        assert summary.registered_version is None
        return
    assert summary.test.n == 40 and summary.reference_test.n == 40
    assert (summary.registered_version is not None) == (summary.test.low > 0)
    if summary.registered_version is not None:
        mlflow.set_tracking_uri(get_settings().tracking_uri)
        loaded = mlflow.genai.load_prompt(f"prompts:/review/{summary.registered_version}")
        assert not loaded.is_text_prompt and loaded.template[-1] == SEED[-1]
        Template.of(loaded.template).check_optimizable()
