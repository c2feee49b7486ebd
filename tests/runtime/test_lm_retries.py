"""The LM client's retries against a real (fake) OpenAI-compatible server: a wait the time budget
cannot afford ends the request at once, and an empty 200 is retried past DSPy's cache."""

import time

import pytest
from fake_llm import FakeLLM, Faults

from promptyard.errors import BudgetExhausted
from promptyard.runtime import Budget, Endpoint, make_lm

MESSAGES = [{"role": "user", "content": "Classify: a good film"}]


def _lm(fake, budget, cache=False):
    from pydantic import SecretStr

    return make_lm(Endpoint(fake.base_url, "fake", SecretStr("key")), cache=cache, budget=budget, attempts=6)


def test_a_retry_after_longer_than_the_time_left_stops_the_request_now():
    with FakeLLM(faults=Faults(rate=0.0, retry_after_s=30)) as fake:
        fake.burst("429", 1)
        budget = Budget(max_seconds=3)
        started = time.monotonic()
        with pytest.raises(BudgetExhausted, match="asked to wait 30 s"):
            _lm(fake, budget).forward(messages=MESSAGES)
        assert time.monotonic() - started < 2  # not 30 s, not past the budget
        assert budget.calls == 1


def test_an_empty_answer_is_retried_past_the_cache(tmp_path, monkeypatch):
    with FakeLLM() as fake:
        fake.burst("empty", 1)
        budget = Budget()
        response = _lm(fake, budget, cache=True).forward(messages=MESSAGES)
        assert response.choices[0].message.content == "positive."
        assert budget.calls == 2 and len(fake.requests) == 2
        fake.burst("empty", 3)  # no choices, empty content, null content: each one retried
        for _ in range(3):
            assert _lm(fake, Budget(), cache=False).forward(messages=MESSAGES).choices[0].message.content


def test_the_remembered_model_lookup_answers_as_dspy_does_and_each_caller_gets_its_own_copy():
    from dspy.clients import capabilities, costs, model_metadata

    from promptyard.runtime.endpoint import _metered_lm_class

    _metered_lm_class()
    assert costs.model_info is capabilities.model_info is not model_metadata.model_info
    for provider, model, namespaces in [("openai-chat", "gpt-4o-mini", None), ("openai-chat", "SmolLM2-135M", None),
                                        ("vllm", "meta-llama/Llama-3.1-8B-Instruct", ("hosted_vllm",)),
                                        ("openai-chat", "gpt-4o", ["openai"])]:
        expected = model_metadata.model_info(provider, model, namespaces=namespaces)
        first = costs.model_info(provider, model, namespaces=namespaces)
        assert first == expected
        first["input_cost_per_token"] = -1.0  # a caller that changes its copy changes nobody else's
        assert costs.model_info(provider, model, namespaces=namespaces) == expected
    assert costs.model_info("openai-chat", "gpt-4o-mini")["input_cost_per_token"] > 0
