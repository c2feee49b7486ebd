"""The optimize flow's decisions, from numbers alone: no Prefect, no MLflow, no LM."""

import json
from pathlib import Path

import pytest

from promptyard.errors import UserError
from promptyard.evaluation import DatasetCard, LoadedDataset, Objectives, PairedComparison
from promptyard.optimization import (
    BudgetLimits,
    BudgetPlan,
    OptimizationResult,
    SelectionOptions,
    checked,
    choose_on_validation,
    commit_message,
    decide_on_test,
    evidence,
    registered_reason,
    version_tags,
)
from promptyard.runtime import BudgetUsage

QUALITY = SelectionOptions()


def points(*qualities, cost=0.0, latency=0.1):
    return [Objectives(q, cost, latency) for q in qualities]


def choose(baseline, candidates, selection=QUALITY, proposed=None, stopped=False, test_affordable=True):
    return choose_on_validation(baseline, candidates, selection, proposed=len(candidates) if proposed is None else
                                proposed, budget_stopped=stopped, test_affordable=test_affordable)


def comparison(low, high, baseline=0.5, candidate=0.6):
    return PairedComparison(baseline, candidate, candidate - baseline, low, high, 0.95, 200)


def test_the_best_candidate_above_the_seed_goes_to_the_test_split():
    verdict = choose(0.5, points(0.55, 0.7, 0.6))
    assert (verdict.best, verdict.goes_to_test, verdict.reason) == (1, True, "")


@pytest.mark.parametrize("kwargs, reason", [
    (dict(baseline=0.5, candidates=[], proposed=3, stopped=True),
     "the budget left no calls to score a candidate on validation; nothing registered"),
    (dict(baseline=0.5, candidates=[], proposed=0),
     "the optimizer returned no candidate (none of its proposals survived its own search); nothing registered"),
    (dict(baseline=0.5, candidates=points(0.9, cost=2.0), selection=SelectionOptions(max_cost_per_example=1.0)),
     "no candidate fits the cost/latency budgets; nothing registered"),
    (dict(baseline=0.5, candidates=points(0.5, 0.45)),
     "no version registered: no candidate beat the seed on validation (best 0.500 vs 0.500); the test split was "
     "left untouched"),
    (dict(baseline=0.5, candidates=points(0.8), test_affordable=False),
     "budget spent before the test split could be scored; nothing registered"),
])
def test_every_way_of_not_going_to_the_test_split_has_its_reason(kwargs, reason):
    verdict = choose(**kwargs)
    assert not verdict.goes_to_test and verdict.reason == reason


def test_weighted_selection_trades_quality_for_cost():
    candidates = [Objectives(0.80, 1.0, 0.1), Objectives(0.78, 0.1, 0.1)]
    assert choose(0.5, candidates).best == 0
    assert choose(0.5, candidates, SelectionOptions(policy="weighted", weights={"cost": 0.5})).best == 1


def test_register_only_when_the_whole_interval_lies_above_zero():
    win = decide_on_test(comparison(0.01, 0.19))
    assert win.register and win.reason == "test 0.500 -> 0.600, 95% interval [+0.010, +0.190]"
    tie = decide_on_test(comparison(-0.01, 0.21))
    assert not tie.register and tie.reason == ("no version registered: the best candidate scored 0.600 vs baseline "
                                               "0.500 on test, 95% interval [-0.010, +0.210] does not lie above 0")
    assert not decide_on_test(comparison(0.0, 0.2)).register  # touching zero is not above it
    assert registered_reason("intent", 3, False, win).startswith(
        "found the same template already registered as intent version 3 and moved alias 'candidate' to it: test")


def test_the_budget_plan_pays_for_the_test_split_first():
    plan = BudgetPlan(max_calls=1000, validation=100, test=200)
    plan.check()
    assert plan.minimum_calls == 600
    assert plan.held_during_search == 2 * 200 + 2 * 100  # room for two candidates on validation
    assert BudgetPlan(650, 100, 200).held_during_search == 2 * 200 + 100  # room for one
    assert plan.held_for_test == 400
    assert plan.affordable_candidates(calls_used=300, proposed=5) == 3  # (1000 - 400 - 300) // 100
    assert plan.affordable_candidates(calls_used=700, proposed=5) == 0
    assert BudgetPlan(None, 100, 200).affordable_candidates(10**6, 5) == 5
    with pytest.raises(UserError, match="budget_calls=599 cannot cover one candidate: .* take 600 calls"):
        BudgetPlan(599, 100, 200).check()


@pytest.mark.parametrize("value, message", [
    ({"calls": 0}, "budget.calls=0 is not valid: Input should be greater than 0 (Most LM calls"),
    ({"calls": "many"}, "budget.calls='many' is not valid: Input should be a valid integer"),
    ({"minutes": 5}, "budget.minutes=5 is not valid: Extra inputs are not permitted"),
])
def test_parameter_groups_name_the_bad_value(value, message):
    with pytest.raises(UserError) as refused:
        checked(BudgetLimits, value, "budget")
    assert str(refused.value).startswith(message)


def test_provenance_and_evidence_of_a_registered_version():
    c = comparison(0.02, 0.18)
    tags = version_tags(parent_version=1, optimizer="copro", dataset="intent", dataset_digest="abc", seed=7,
                        parent_run_id="p", candidate_run_id="c", comparison=c)
    assert tags == {"promptyard.parent_version": "1", "promptyard.optimizer": "copro", "promptyard.dataset": "intent",
                    "promptyard.dataset_digest": "abc", "promptyard.seed": "7", "promptyard.parent_run_id": "p",
                    "promptyard.candidate_run_id": "c", "promptyard.test_baseline": "0.5000",
                    "promptyard.test_score": "0.6000", "promptyard.test_diff_low": "0.0200"}
    assert commit_message("copro", "intent", c) == "copro on intent: test 0.500 -> 0.600 (95% interval [+0.020, +0.180])"
    data = LoadedDataset(DatasetCard("intent", ["text"], "label"), Path("/data/intent/data.jsonl"), "abc", {})
    record = evidence("intent", 1, 2, data, c)
    assert (record.split, record.dataset, record.dataset_digest, record.n, record.low) == ("test", "intent", "abc", 200,
                                                                                           0.02)
    assert record.dataset_path == "/data/intent" and record.tags()["promptyard.evidence.candidate"] == "2"


def test_the_result_is_plain_data():
    usage = BudgetUsage(10, 100, 80, 20, 2, 1.5, None, None, None)
    result = OptimizationResult("intent/1", "intent", "copro", 0.4, [], "nothing registered", usage, 0.0, 2.0, "r",
                                "url", "f", test=comparison(0.01, 0.2))
    assert json.loads(json.dumps(result.to_dict()))["test"]["low"] == 0.01


def test_a_winner_not_above_the_majority_label_is_said_so():
    from promptyard.evaluation import ConstantTest, ReferencePoints
    from promptyard.optimization import reference_notes

    reference = ReferencePoints("negative", 0.5, 0.5, 2, 100)
    seed = ConstantTest("negative", 0.43, 0.5, 10, 17, 0.94, 0.05)
    weak = ConstantTest("negative", 0.54, 0.5, 12, 8, 0.2517, 0.05)
    strong = ConstantTest("negative", 0.80, 0.5, 35, 5, 1e-6, 0.05)
    assert reference_notes(reference, [seed, weak]) == [
        "the best candidate (0.540 on test) is not significantly above always answering 'negative' (0.500; exact "
        "one-sided sign test p = 0.252): on these examples a constant answer that never reads the input does as well"]
    assert reference_notes(reference, [seed, strong]) == []
    assert reference_notes(None, []) == []
    usage = BudgetUsage(10, 100, 80, 20, 2, 1.5, None, None, None)
    result = OptimizationResult("s/1", "d", "copro", 0.4, [], "x", usage, 0.0, 2.0, "r", "url", "f",
                                reference_test=reference, versus_majority=[seed, weak])
    plain = json.loads(json.dumps(result.to_dict()))
    assert plain["reference_test"]["majority_label"] == "negative"
    assert [v["significant"] for v in plain["versus_majority"]] == [False, False]


def test_a_flaky_endpoint_gets_room_for_its_retries_on_the_test_split():
    import math

    plan = BudgetPlan(max_calls=2000, validation=100, test=200)
    assert plan.test_reserve["calls"] == 400  # a clean endpoint: one attempt per request
    flaky = plan.measured(100, 5000, 10.0, attempts_per_request=1.25)  # a fifth of attempts failing
    assert flaky.test_reserve["calls"] == math.ceil(400 * 1.25 * (1 + BudgetPlan.RETRY_HEADROOM))
    assert flaky.held_for_test == flaky.test_reserve["calls"]
    assert flaky.affordable_candidates(0, 50) < plan.affordable_candidates(0, 50)
