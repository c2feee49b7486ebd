import pytest
from fake_llm import FakeLLM
from helpers import SEED_TEMPLATE, tiny_rows

from promptyard.errors import EndpointUnreachableError
from promptyard.runtime import Endpoint, check_endpoint, make_lm
from promptyard.registry import GenerationConfig
from promptyard.evaluation import get_metric
from promptyard.evaluation import score_template

METRIC = get_metric("exact_label", ["positive", "negative"])


def score(base_url, template=SEED_TEMPLATE, rows=None, **kwargs):
    lm = make_lm(Endpoint(base_url, "fake"), cache=False)
    return score_template(template, rows or tiny_rows(10), lm=lm, metric=METRIC, input_fields=["text"],
                          label_field="label", **kwargs)


def test_scores_in_row_order_with_usage():
    with FakeLLM() as fake:
        seen = []
        result = score(fake.base_url, template="Answer carefully.\n\nReview: {{text}}", concurrency=3,
                       on_example=seen.append)
    assert result.accuracy == 1.0 and len(seen) == 10
    assert [e.gold for e in result.examples] == [r["label"] for r in tiny_rows(10)]
    assert result.lm_calls == 10 and result.errors == 0
    assert result.prompt_tokens == sum(len(r["messages"][-1]["content"].split()) for r in fake.requests)
    assert result.completion_tokens == 10
    assert set(result.table()) == {"inputs", "gold", "reply", "prediction", "score", "latency_s", "error"}
    sent = sorted(r["messages"][-1]["content"] for r in fake.requests)
    assert sent[0] == "Answer carefully.\n\nReview: The film was bad, take 0."
    assert all(len(r["messages"]) == 1 and r["messages"][0]["role"] == "user" for r in fake.requests)


def test_generation_settings_are_sent():
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    with FakeLLM() as fake:
        result = score(fake.base_url, rows=tiny_rows(2), generation=GenerationConfig(max_tokens=7, response_format=fmt))
    assert fake.requests[0]["response_format"] == fmt
    assert result.examples[0].reply == '{"label": "positive"}'


def test_a_failed_request_scores_zero_and_is_recorded():
    with FakeLLM(fail_status=400) as fake:
        result = score(fake.base_url, rows=tiny_rows(3))
    assert result.accuracy == 0.0 and result.errors == 3
    assert result.examples[0].error


def test_dead_endpoint_stops_the_run():
    with pytest.raises(EndpointUnreachableError, match="stopped answering while scoring"):
        score("http://127.0.0.1:9/v1", rows=tiny_rows(2))
    with pytest.raises(EndpointUnreachableError, match="No LLM answers at http://127.0.0.1:9/v1"):
        check_endpoint(Endpoint("http://127.0.0.1:9/v1", "fake"))


def test_a_raising_metric_stops_with_a_clear_error(monkeypatch):
    from promptyard.errors import UserError
    from promptyard.runtime import get_settings

    monkeypatch.setenv("PROMPTYARD_METRIC_ALLOWLIST", "helpers")
    get_settings.cache_clear()
    with FakeLLM() as fake:
        lm = make_lm(Endpoint(fake.base_url, "fake"), cache=False)
        with pytest.raises(UserError, match="Metric 'helpers:broken_metric' raised ValueError: this metric is broken"):
            score_template(SEED_TEMPLATE, tiny_rows(2), lm=lm, metric=get_metric("helpers:broken_metric"),
                           input_fields=["text"], label_field="label")


def test_failures_on_the_candidates_hard_examples_cannot_make_a_gain():
    """The seed is right and the candidate wrong on 8 of 400 examples; if exactly those requests of the
    candidate fail, dropping them would turn a tie into a significant gain. Counted against the
    candidate, they cannot."""
    from promptyard.evaluation import ExampleResult, ScoreResult, paired_bootstrap, paired_scores

    def result(scores):
        return ScoreResult(template="t", examples=[ExampleResult({}, "", "", "", s, 0.0, error="" if s is not None
                                                                 else "500") for s in scores])

    seed = [1.0] * 8 + [1.0, 0.0] * 196
    candidate = [0.0] * 8 + [1.0, 1.0] * 196  # better elsewhere, worse on the first 8
    failed = [None] * 8 + candidate[8:]
    dropped = paired_bootstrap(seed[8:], candidate[8:], confidence=0.95, seed=0)
    assert dropped.low > 0  # what dropping the failed examples from both arms would conclude
    before, after = paired_scores(result(seed), result(failed))
    assert (before, after) == (seed, candidate)  # every example, the failures as wrong answers of the candidate
    before, after = paired_scores(result([None] * 8 + seed[8:]), result(candidate))
    assert before == seed  # and the seed's failures as right answers of the seed
