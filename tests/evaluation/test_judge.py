"""LLM-as-judge metric against the fake OpenAI-compatible server."""

import pytest
from helpers import SEED_TEMPLATE, tiny_rows, write_dataset

from promptyard.evaluation import load_dataset
from promptyard.errors import UserError
from promptyard.runtime import Endpoint, make_lm
from promptyard.evaluation import get_metric
from promptyard.evaluation import score_template


def test_judge_scores_with_the_rubric(fake_llm):
    judge = get_metric("llm_judge", rubric="Is the sentiment right?", scale=5)
    assert judge.score("positive", "positive") == 1.0
    assert judge.score("negative", "positive") == 0.0
    prompt = fake_llm.chat_requests()[0]["messages"][-1]["content"]
    assert "Rubric: Is the sentiment right?" in prompt and "from 1 (worst) to 5 (best)" in prompt


def test_a_dataset_card_can_name_the_judge(fake_llm, tmp_path):
    folder = write_dataset(tmp_path / "judged", tiny_rows())
    card = (folder / "README.md").read_text().replace(
        "metric: exact_label", "metric: llm_judge\nmetric_options: {rubric: \"Same sentiment as the reference?\", scale: 3}")
    (folder / "README.md").write_text(card)
    data = load_dataset(str(folder))
    result = score_template(SEED_TEMPLATE.replace("Classify", "Read carefully and classify"), data.rows("test", 6),
                            lm=make_lm(Endpoint.from_settings(), cache=False), metric=data.metric(),
                            input_fields=["text"], label_field="label")
    assert result.scores == [1.0] * 6
    assert sum(r["messages"][-1]["content"].startswith("You grade") for r in fake_llm.chat_requests()) == 6


@pytest.mark.parametrize("options, message", [
    ({}, "needs a rubric"),
    ({"rubric": "ok?", "scale": 1}, "scale must be an integer"),
    ({"rubric": "ok?", "temperature": 1}, "takes rubric, scale and model"),
])
def test_bad_judge_options(options, message):
    with pytest.raises(UserError, match=message):
        get_metric("llm_judge", **options)


def test_a_rate_limited_judge_is_an_error_not_a_broken_metric(fake_llm, tmp_path, monkeypatch):
    """The judge's 429s are retried; one that stays limited leaves that example unscored (never 'fix the metric')."""
    from promptyard.runtime import Budget, get_settings

    monkeypatch.setenv("PROMPTYARD_LM_ATTEMPTS", "2")
    get_settings.cache_clear()
    folder = write_dataset(tmp_path / "judged", tiny_rows())
    card = (folder / "README.md").read_text().replace(
        "metric: exact_label", "metric: llm_judge\nmetric_options: {rubric: \"Same sentiment as the reference?\"}")
    (folder / "README.md").write_text(card)
    data = load_dataset(str(folder))
    rows = data.rows("test", 6)
    limited = rows[0]["label"]  # the judge stays rate limited whenever it grades this label
    fake_llm.fail_when = lambda r: "429" if r["messages"][-1]["content"].startswith("You grade") and \
        f"Reference answer: {limited}\n" in r["messages"][-1]["content"] else None
    budget = Budget()
    result = score_template(SEED_TEMPLATE.replace("Classify", "Read carefully and classify"), rows,
                            lm=make_lm(Endpoint.from_settings(), cache=False, budget=budget),
                            metric=data.card.make_metric(budget=budget), input_fields=["text"], label_field="label",
                            concurrency=1)
    judged_errors = [e for e in result.examples if e.score is None]
    assert judged_errors and all(e.error.startswith("judge: LMRateLimitError") for e in judged_errors)
    assert all(e.score == 1.0 for e in result.examples if e.score is not None)
    assert budget.calls == len(fake_llm.chat_requests())  # task, judge and retried judge requests: all charged
