"""A proposer endpoint of its own: rewrites come from it, and its calls are budgeted and costed apart."""

import mlflow
import pytest
from fake_llm import FakeLLM
from helpers import SEED_TEMPLATE, governed

from flows.optimize import optimize_prompt
from promptyard.errors import EndpointUnreachableError, UserError
from promptyard.runtime import get_settings


@pytest.fixture
def seeded(registry):
    version = governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).set_alias("sentiment", "production", int(version.version))


def run(dataset, **budget):
    return optimize_prompt(prompt="sentiment@production", dataset=str(dataset), budget=budget,
                           optimizer={"name": "copro", "breadth": 2, "depth": 2, "train_size": 8, "max_candidates": 2,
                                      "constrain_labels": False})


def test_rewrites_come_from_the_proposer_endpoint_and_are_counted_apart(fake_llm, tiny_dataset, seeded, monkeypatch):
    with FakeLLM(proposal="Read the review carefully. Answer positive or negative.") as strong:
        monkeypatch.setenv("PROMPTYARD_PROPOSER_BASE_URL", strong.base_url)
        monkeypatch.setenv("PROMPTYARD_PROPOSER_MODEL", "strong")
        monkeypatch.setenv("PROMPTYARD_PROPOSER_API_KEY", "proposer-key-1234")
        monkeypatch.setenv("PROMPTYARD_PRICES", '{"strong": [1000000, 2000000]}')  # $1 per prompt token, $2 out
        get_settings.cache_clear()
        fake_llm.proposal = "Say what you think."  # the task model would propose nothing useful
        summary = run(tiny_dataset)

        asked = strong.chat_requests()
        assert asked and all(strong.kind(r) == "proposer" and r["model"] == "strong" for r in asked)
        assert {r["_authorization"] for r in asked} == {"Bearer proposer-key-1234"}
        assert fake_llm.chat_requests("proposer") == []  # the task endpoint never proposed
        p = summary.proposer
        assert (p.own, p.model, p.base_url, p.calls) == (True, "strong", strong.base_url, len(asked))
        tokens_in = sum(len(r["messages"][-1]["content"].split()) for r in asked)
        tokens_out = len(asked) * len(strong.proposal.split())
        assert p.tokens == tokens_in + tokens_out and p.cost_usd == tokens_in + 2 * tokens_out
        assert summary.budget.calls == len(fake_llm.chat_requests())  # the run's budget holds the task's calls only
        assert summary.cost_usd == p.cost_usd  # the task model costs nothing here
        assert summary.registered_version == 2  # the strong model's rewrite won

        client = mlflow.MlflowClient(get_settings().tracking_uri)
        parent = client.get_run(summary.parent_run_id).data
        assert (parent.params["proposer_base_url"], parent.params["proposer_model"]) == (strong.base_url, "strong")
        assert parent.metrics["proposer_calls"] == len(asked) and parent.metrics["proposer_cost_usd"] == p.cost_usd
        assert "proposer-key-1234" not in str(parent.params) + str(parent.tags)


def test_the_proposer_has_its_own_call_budget(fake_llm, tiny_dataset, seeded, monkeypatch):
    with FakeLLM() as strong:
        monkeypatch.setenv("PROMPTYARD_PROPOSER_BASE_URL", strong.base_url)
        get_settings.cache_clear()
        summary = run(tiny_dataset, proposer_calls=1)  # COPRO's second round cannot ask again
        assert len(strong.chat_requests()) == 1 and summary.proposer.calls == 1
        assert "copro stopped early (proposer budget spent: 1 of 1 LM calls used)" in summary.decision


def test_with_the_task_model_as_proposer_its_calls_count_in_both(fake_llm, tiny_dataset, seeded):
    summary = run(tiny_dataset, proposer_calls=1)
    p = summary.proposer
    assert not p.own and p.calls == len(fake_llm.chat_requests("proposer")) == 1
    assert summary.budget.calls == len(fake_llm.chat_requests())  # proposer calls included
    assert "copro stopped early (proposer budget spent: 1 of 1 LM calls used)" in summary.decision


def test_a_proposer_url_that_is_no_url_is_refused_before_anything(fake_llm, tiny_dataset, seeded, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_PROPOSER_BASE_URL", "api.openai.com/v1")
    get_settings.cache_clear()
    with pytest.raises(UserError, match=r"PROMPTYARD_PROPOSER_BASE_URL='api.openai.com/v1' is not a URL"):
        run(tiny_dataset)
    monkeypatch.setenv("PROMPTYARD_PROPOSER_BASE_URL", "http://127.0.0.1:9/v1")
    get_settings.cache_clear()
    with pytest.raises(EndpointUnreachableError, match=r"^The proposer endpoint \(PROMPTYARD_PROPOSER_BASE_URL\)"):
        run(tiny_dataset)
    assert fake_llm.requests == []
