"""GEPA through DSPy with the plain-text proposer: proposals really happen and are scored."""

from helpers import SEED_TEMPLATE, tiny_rows

from optimizers import OptimizationTask, get_optimizer
from optimizers.gepa import reflection_prompt
from promptyard.runtime import Endpoint, make_lm
from promptyard.evaluation import get_metric
from promptyard.runtime import get_settings
from promptyard.registry import Template


def test_reflection_prompt_is_short_plain_text():
    records = [{"Inputs": {"text": "bad film"}, "Generated Outputs": {"prompt_output": "positive."},
                "Feedback": "Wrong: the right answer is negative."}] * 5
    prompt = reflection_prompt("Classify.", records)
    assert prompt.startswith("Improve the instruction below.")
    assert prompt.count("Input: bad film") == 3
    assert "Answer given: positive.\nWrong: the right answer is negative." in prompt
    assert prompt.endswith("Reply with the instruction only.\n\nNew instruction:")


def test_gepa_proposes_and_scores(fake_llm):
    task = OptimizationTask(seed=Template.parse(SEED_TEMPLATE), trainset=tiny_rows(12), input_fields=["text"],
                            label_field="label", metric=get_metric("exact_label", ["positive", "negative"]))
    lm = make_lm(Endpoint.from_settings(get_settings()), cache=False, max_tokens=64)
    candidates = get_optimizer("gepa", max_metric_calls=40, train_size=12, constrain_labels=False).propose(
        task, task_lm=lm, proposer_lm=lm)

    reflections = fake_llm.chat_requests("proposer")
    assert reflections, "GEPA never asked for a proposal"
    assert "Wrong: the right answer is negative" in reflections[0]["messages"][-1]["content"]
    assert [c.template for c in candidates] == [
        "Read the review carefully. Answer positive or negative.\n\nReview: {{text}}"]
    assert candidates[0].train_score == 1.0 and candidates[0].source == "gepa"
