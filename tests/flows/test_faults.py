"""Faults never change a decision: rate limits, server errors, hangs and broken bodies from a real
(fake) OpenAI-compatible server; failures past their retries; a judge that is rate limited."""

import mlflow
import pytest
from fake_llm import FAULT_KINDS, Faults
from helpers import SEED_TEMPLATE, governed

from flows.optimize import optimize_prompt
from promptyard.evaluation import load_dataset
from promptyard.runtime import get_settings

SMALL = {"name": "copro", "breadth": 2, "depth": 1, "train_size": 8, "max_candidates": 2}


@pytest.fixture
def seeded(registry):
    governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).set_alias("sentiment", "production", 1)
    return registry


@pytest.fixture
def quick_client(monkeypatch):
    """Hang faults give up after a second, not the default minute."""
    monkeypatch.setenv("PROMPTYARD_LM_TIMEOUT", "1")
    get_settings.cache_clear()


def run(dataset, **kwargs):
    return optimize_prompt(prompt="sentiment@production", dataset=str(dataset), optimizer=SMALL, **kwargs)


def test_a_fifth_of_requests_failing_changes_no_decision(fake_llm, tiny_dataset, seeded, quick_client):
    clean = run(tiny_dataset)
    governed(seeded).registry.get("sentiment/2")  # the clean run registered v2
    fake_llm.faults = Faults(rate=0.2, seed=3, hang_s=2.0)
    served = len(fake_llm.requests)
    faulty = run(tiny_dataset)
    assert faulty.decision.replace("found the same template already registered as", "registered") == clean.decision
    assert (faulty.test.baseline, faulty.test.candidate, faulty.test.n) == (clean.test.baseline, clean.test.candidate,
                                                                           clean.test.n)
    assert [c.validation for c in faulty.candidates] == [c.validation for c in clean.candidates]
    assert not any(c.failed or c.errors for c in faulty.candidates)  # no candidate lost, no answer lost
    assert set(fake_llm.faults_served) == set(FAULT_KINDS) and sum(fake_llm.faults_served.values()) > 20
    # every HTTP attempt, retries included, was charged to the run's budget
    assert faulty.budget.calls == len(fake_llm.requests) - served


def test_a_burst_of_429s_is_waited_out_and_a_longer_one_decides_nothing(fake_llm, tiny_dataset, seeded):
    from promptyard.errors import TooManyErrorsError

    fake_llm.faults = Faults(rate=0.0, retry_after_s=0.2)
    fake_llm.burst("429", 60)  # more than 4 concurrent requests x 6 attempts: some requests fail for good
    with pytest.raises(TooManyErrorsError, match="The seed on validation: .* requests failed after their retries"):
        run(tiny_dataset)  # before: failed requests scored 0 for the seed and manufactured a gain
    assert [int(v.version) for v in seeded.versions("sentiment")] == [1]
    fake_llm.burst("429", 12)  # within the retries: waited out, Retry-After honoured
    summary = run(tiny_dataset)
    assert fake_llm.faults_served["429"] == 72
    assert summary.registered_version == 2 and summary.test.low > 0


def test_a_candidate_that_keeps_failing_is_a_failed_child_run_and_the_run_goes_on(fake_llm, tiny_dataset, seeded,
                                                                                  monkeypatch):
    monkeypatch.setenv("PROMPTYARD_LM_ATTEMPTS", "2")
    get_settings.cache_clear()

    def proposal_on_validation(request):  # the proposed instruction, without the output constraint, on validation
        text = request["messages"][-1]["content"]
        return "500" if "carefully" in text and not request.get("response_format") and _validation(request) else None

    fake_llm.fail_when = proposal_on_validation
    summary = run(tiny_dataset)
    failed = [c for c in summary.candidates if c.failed]
    assert [c.index for c in failed] == [1] and "requests in a row failed after their retries" in failed[0].error
    assert len(summary.candidates) == 5  # every proposal ends scored or failed: 1 proposal + 3 seed formats + 1 twin
    child = mlflow.MlflowClient(get_settings().tracking_uri).get_run(failed[0].run_id)
    assert child.info.status == "FAILED" and "requests in a row failed" in child.data.tags["promptyard.failure"]
    assert child.data.tags["mlflow.parentRunId"] == summary.parent_run_id
    assert summary.best_candidate != 1 and summary.registered_version == 2  # its constrained twin still won


VALIDATION_TEXTS: set[str] = set()


def _validation(request) -> bool:
    text = request["messages"][-1]["content"].rsplit("Review: ", 1)[-1]
    return text in VALIDATION_TEXTS


@pytest.fixture(autouse=True)
def validation_texts(tiny_dataset):
    VALIDATION_TEXTS.clear()
    VALIDATION_TEXTS.update(r["text"] for r in load_dataset(tiny_dataset).rows("validation"))


def test_too_many_errors_on_the_test_split_refuses_to_decide(fake_llm, tiny_dataset, seeded, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_LM_ATTEMPTS", "2")
    get_settings.cache_clear()
    test_rows = [r["text"] for r in load_dataset(tiny_dataset).rows("test")][:3]  # 3 of 40 examples: 7.5% > 2%
    fake_llm.fail_when = lambda r: "500" if r["messages"][-1]["content"].rsplit("Review: ", 1)[-1] in test_rows \
        else None
    summary = run(tiny_dataset)
    assert summary.decision.startswith("refused to decide: The test split: 3 of 40 requests failed after their "
                                       "retries (7.5% > 2%")
    assert "Nothing registered." in summary.decision and summary.registered_version is None
    assert [int(v.version) for v in seeded.versions("sentiment")] == [1]


def test_a_failed_request_counts_against_the_candidate(fake_llm, tiny_dataset, seeded, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_LM_ATTEMPTS", "1")
    monkeypatch.setenv("PROMPTYARD_MAX_ERROR_RATE", "0.05")
    get_settings.cache_clear()
    first = load_dataset(tiny_dataset).rows("test")[0]["text"]
    fake_llm.fail_when = lambda r: "500" if r["messages"][-1]["content"].endswith(first) and \
        "carefully" in r["messages"][-1]["content"] else None
    summary = run(tiny_dataset)
    assert summary.test.n == 40  # every example: the one the candidate could not answer is a wrong answer for it
    assert summary.test.candidate == 39 / 40 and summary.registered_version == 2


def test_a_resumed_run_does_not_replay_an_outage(fake_llm, tiny_dataset, seeded, monkeypatch, tmp_path):
    """Scores with too many failed requests are never cached: the same command on a healthy endpoint
    scores afresh (with resume on) instead of refusing again from the cache."""
    monkeypatch.setenv("PROMPTYARD_RESUME", "true")
    monkeypatch.setenv("PROMPTYARD_LM_ATTEMPTS", "2")
    get_settings.cache_clear()
    test_rows = [r["text"] for r in load_dataset(tiny_dataset).rows("test")][:4]
    fake_llm.fail_when = lambda r: "500" if r["messages"][-1]["content"].rsplit("Review: ", 1)[-1] in test_rows \
        else None
    assert run(tiny_dataset).decision.startswith("refused to decide: The test split: 4 of 40 requests failed")
    fake_llm.fail_when = None
    served = len(fake_llm.requests)
    again = run(tiny_dataset)
    assert again.registered_version == 2, again.decision
    assert len(fake_llm.requests) - served == 80  # the test split scored again; the rest came from the cache


def test_empty_replies_are_retried_and_never_scored(fake_llm, tiny_dataset, seeded, monkeypatch):
    """A 200 with no answer in it (empty or null content, no choices) is a failed request: retried past
    DSPy's cache, and when it persists an error, not a wrong answer that would sink the seed."""
    monkeypatch.setenv("PROMPTYARD_LM_ATTEMPTS", "2")
    get_settings.cache_clear()
    test_rows = [r["text"] for r in load_dataset(tiny_dataset).rows("test")][:3]
    fake_llm.fail_when = lambda r: "empty" if r["messages"][-1]["content"].rsplit("Review: ", 1)[-1] in test_rows \
        and "carefully" not in r["messages"][-1]["content"] else None
    summary = run(tiny_dataset)
    assert summary.decision.startswith("refused to decide: The test split: 3 of 40 requests failed"), summary.decision
    assert "answered 200 with no" in summary.decision and summary.registered_version is None
    fake_llm.fail_when = None
    monkeypatch.setenv("PROMPTYARD_LM_ATTEMPTS", "6")
    get_settings.cache_clear()
    fake_llm.burst("empty", 6)  # within the retries: the answers come on a later attempt
    assert run(tiny_dataset).registered_version == 2


def test_a_programming_error_fails_at_once_and_is_not_retried(fake_llm, tiny_dataset, seeded, monkeypatch):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from promptyard.errors import UserError

    monkeypatch.setenv("PROMPTYARD_METRIC_ALLOWLIST", "helpers")
    get_settings.cache_clear()
    card = tiny_dataset / "README.md"
    card.write_text(card.read_text().replace("metric: exact_label", "metric: helpers:broken_metric"))
    with pytest.raises(UserError, match="Metric 'helpers:broken_metric' raised ValueError: this metric is broken"):
        run(tiny_dataset)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_runs(limit=1, sort="START_TIME_DESC")[0]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(str(flow_run.id))])))
    baseline = next(t for t in tasks if t.name == "score baseline · validation")
    assert baseline.run_count == 1 and baseline.state.is_failed()  # no retry with delays for a bug
    assert len(fake_llm.chat_requests()) < 20  # stopped at the bug, not after scoring all 20 examples (and again)
