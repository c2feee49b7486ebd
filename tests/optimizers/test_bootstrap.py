"""Few-shot demos chosen by DSPy end up in the template, which alone reproduces the score."""

from helpers import SEED_TEMPLATE, tiny_rows

from optimizers import OptimizationTask, get_optimizer
from promptyard.runtime import Endpoint, make_lm
from promptyard.evaluation import get_metric
from promptyard.evaluation import score_template
from promptyard.runtime import get_settings
from promptyard.registry import Template

METRIC = get_metric("exact_label", ["positive", "negative"])


def test_demos_are_rendered_into_a_template_that_reproduces_the_score(fake_llm):
    fake_llm.magic_word = "Examples:"  # the fake answers right only when it sees demos
    rows = tiny_rows(12)
    task = OptimizationTask(seed=Template.parse(SEED_TEMPLATE), trainset=rows, input_fields=["text"],
                            label_field="label", metric=METRIC, labels=["positive", "negative"])
    lm = make_lm(Endpoint.from_settings(get_settings()), cache=False, max_tokens=16)
    optimizer = get_optimizer("bootstrap", num_candidate_programs=1, train_size=12, constrain_labels=False,
                              max_labeled_demos=2, max_bootstrapped_demos=1)
    candidates = optimizer.propose(task, task_lm=lm, proposer_lm=lm)

    best = candidates[0]
    assert best.source == "bootstrap" and best.details["demos"] >= 1
    parsed = Template.parse(best.template)
    assert parsed.body == "Review: {{text}}"
    assert parsed.instruction.startswith("Classify the sentiment of the review as positive or negative.\n\nExamples:\n\n")
    assert "\nAnswer: positive" in parsed.instruction or "\nAnswer: negative" in parsed.instruction
    assert best.train_score == 1.0

    registered_alone = score_template(best.template, rows, lm=lm, metric=METRIC, input_fields=["text"],
                                      label_field="label")
    assert registered_alone.accuracy == best.train_score
    # the zero-shot seed itself is not returned as a candidate
    assert SEED_TEMPLATE not in [c.template for c in candidates]


def test_demos_of_a_chat_prompt_become_user_and_assistant_turns(fake_llm):
    fake_llm.magic_word = "assistant:"  # the fake answers right only after an assistant turn (a demo)
    rows = tiny_rows(12)
    seed = [{"role": "system", "content": "Classify the sentiment of the review as positive or negative."},
            {"role": "user", "content": "Review: {{text}}"}]
    task = OptimizationTask(seed=Template.of(seed), trainset=rows, input_fields=["text"], label_field="label",
                            metric=METRIC, labels=["positive", "negative"])
    lm = make_lm(Endpoint.from_settings(get_settings()), cache=False, max_tokens=16)
    optimizer = get_optimizer("bootstrap", num_candidate_programs=1, train_size=12, constrain_labels=False,
                              max_labeled_demos=2, max_bootstrapped_demos=1)
    best = optimizer.propose(task, task_lm=lm, proposer_lm=lm)[0]

    assert best.details["demos"] >= 1 and best.train_score == 1.0
    messages = best.template
    assert messages[0] == seed[0] and messages[-1] == seed[1]  # the system message and the body are kept
    turns = messages[1:-1]
    assert [m["role"] for m in turns] == ["user", "assistant"] * best.details["demos"]
    assert all(t["content"].startswith("Review: The film was") for t in turns[::2])
    assert all(t["content"] in ("positive", "negative") for t in turns[1::2])
    registered_alone = score_template(messages, rows, lm=lm, metric=METRIC, input_fields=["text"],
                                      label_field="label")
    assert registered_alone.accuracy == best.train_score
