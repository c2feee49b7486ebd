"""The run budget: enforced at every request, the best so far kept, the test split always affordable."""

import mlflow
import pytest
from helpers import SEED_TEMPLATE, governed

from flows.optimize import optimize_prompt
from promptyard.errors import BudgetExhausted
from promptyard.runtime import Budget
from promptyard.errors import UserError
from promptyard.runtime import get_settings

# tiny dataset: 40 test, 20 validation; the seed and the first candidate need 2*20 + 2*40 = 120 calls
BIG_SEARCH = {"breadth": 6, "depth": 3, "train_size": 16}


@pytest.fixture
def seeded(registry):
    governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).set_alias("sentiment", "production", 1)
    return registry


def run(dataset, settings=BIG_SEARCH, max_candidates=4, **groups):
    return optimize_prompt(prompt="sentiment@production", dataset=str(dataset),
                           optimizer={"name": "copro", **settings, "max_candidates": max_candidates}, **groups)


def test_the_call_budget_stops_the_search_keeps_proposals_and_still_gates_on_test(fake_llm, tiny_dataset, seeded):
    summary = run(tiny_dataset, budget={"calls": 200})
    assert len(fake_llm.chat_requests()) == summary.budget.calls <= 200
    assert "copro stopped early (" in summary.decision and "kept the" in summary.decision
    assert summary.test.n == 40  # the 80 test calls were held back for the gate
    assert summary.registered_version == 2  # the proposal kept ("... carefully ...") earned its place
    run_metrics = mlflow.MlflowClient(get_settings().tracking_uri).get_run(summary.parent_run_id).data.metrics
    assert run_metrics["lm_calls"] == summary.budget.calls
    assert run_metrics["lm_tokens"] == summary.budget.prompt_tokens + summary.budget.completion_tokens > 0


def test_without_a_budget_the_same_search_makes_more_calls(fake_llm, tiny_dataset, seeded):
    summary = run(tiny_dataset)
    assert summary.budget.calls > 260 and summary.budget.max_calls is None
    assert "stopped early" not in summary.decision


def test_a_rerun_costs_nothing_from_the_cache(fake_llm, tiny_dataset, seeded, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_LM_CACHE", "true")
    get_settings.cache_clear()
    first = run(tiny_dataset, settings={"breadth": 2, "depth": 1, "train_size": 8}, max_candidates=1,
                budget={"calls": 400})
    made = len(fake_llm.chat_requests())
    second = run(tiny_dataset, settings={"breadth": 2, "depth": 1, "train_size": 8}, max_candidates=1,
                 budget={"calls": 400})
    assert len(fake_llm.chat_requests()) == made  # zero new requests
    total = first.budget.calls + first.budget.cached  # other tests may have filled the cache already
    assert second.budget.calls == 0 and second.budget.cached == total


@pytest.mark.parametrize("budget, message", [
    ({"calls": 0}, r"budget.calls=0 is not valid: Input should be greater than 0 \(Most LM calls"),
    ({"tokens": -5}, "budget.tokens=-5 is not valid: Input should be greater than 0"),
    ({"seconds": 0}, "budget.seconds=0 is not valid: Input should be greater than 0"),
])
def test_bad_budgets_fail_before_any_call(fake_llm, tiny_dataset, seeded, budget, message):
    from flows.optimize import check_request
    from optimizers import CoproSettings

    with pytest.raises(UserError, match=message):
        check_request("sentiment@production", str(tiny_dataset), CoproSettings(), {}, {}, budget)
    with pytest.raises(Exception, match="budget.* Input should be greater than 0"):
        run(tiny_dataset, budget=budget)  # the flow's own parameter validation
    assert fake_llm.chat_requests() == [] and len(seeded.versions("sentiment")) == 1


def test_a_budget_too_small_for_one_candidate_fails_before_any_call(fake_llm, tiny_dataset, seeded):
    with pytest.raises(UserError, match="budget_calls=100 cannot cover one candidate: .* take 120 calls"):
        run(tiny_dataset, budget={"calls": 100})
    assert fake_llm.chat_requests() == [] and len(seeded.versions("sentiment")) == 1


def test_token_and_time_budgets():
    budget = Budget(max_tokens=100)
    budget.start_call()
    budget.end_call(cached=False, tokens=120)
    with pytest.raises(BudgetExhausted, match="120 of 100 tokens used"):
        budget.start_call()
    late = Budget(max_seconds=0.01)
    late.started -= 1
    with pytest.raises(BudgetExhausted, match="seconds used"):
        late.start_call()
    held = Budget(max_calls=10)
    held.reserve(8)
    for _ in range(2):
        held.start_call()
        held.end_call(cached=False, tokens=1)
    with pytest.raises(BudgetExhausted, match="2 of 10 LM calls used, 8 held back"):
        held.start_call()
    held.release()
    held.start_call()


def test_a_token_budget_holds_back_the_test_split_like_calls_do(fake_llm, tiny_dataset, seeded):
    """The search stops for tokens, and the tokens both prompts need on the test split are still there."""
    summary = run(tiny_dataset, budget={"tokens": 6000})
    assert "copro stopped early (" in summary.decision and "tokens used" in summary.decision
    assert summary.test.n == 40 and summary.registered_version == 2
    assert summary.budget.tokens <= 6000
