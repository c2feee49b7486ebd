"""COPRO through DSPy against the fake OpenAI-compatible server."""

import pytest
from helpers import SEED_TEMPLATE, tiny_rows

from optimizers import OptimizationTask, available_optimizers, get_optimizer
from optimizers import label_response_format
from promptyard.errors import OptimizerError, TemplateError
from promptyard.runtime import Endpoint, make_lm
from promptyard.evaluation import get_metric
from promptyard.runtime import get_settings
from promptyard.registry import Template


def make_task(**kwargs):
    defaults = dict(seed=Template.parse(SEED_TEMPLATE), trainset=tiny_rows(20), input_fields=["text"],
                    label_field="label", metric=get_metric("exact_label", ["positive", "negative"]),
                    labels=["positive", "negative"])
    return OptimizationTask(**{**defaults, **kwargs})


def lms():
    endpoint = Endpoint.from_settings(get_settings())
    return make_lm(endpoint, cache=False, max_tokens=16), make_lm(endpoint, cache=False, max_tokens=64)


def test_copro_proposes_and_scores_on_train(fake_llm):
    task_lm, proposer_lm = lms()
    optimizer = get_optimizer("copro", breadth=3, depth=2, train_size=10, constrain_labels=False)
    candidates = optimizer.propose(make_task(), task_lm=task_lm, proposer_lm=proposer_lm)

    # depth 1 asks for breadth - 1 proposals, depth 2 for breadth more (DSPy sends one request each)
    assert len(fake_llm.chat_requests("proposer")) == 2 + 3
    assert [c.template for c in candidates] == [
        "Read the review carefully. Answer positive or negative.\n\nReview: {{text}}"]
    assert candidates[0].train_score == 1.0 and candidates[0].source == "copro"
    # every train example was really sent with the proposed instruction
    proposed = [r for r in fake_llm.chat_requests("task") if "carefully" in r["messages"][-1]["content"]]
    assert len(proposed) >= 10


def test_label_constrained_twins(fake_llm):
    task_lm, proposer_lm = lms()
    task = make_task()
    candidates = get_optimizer("copro", breadth=2, depth=1, train_size=4).propose(
        task, task_lm=task_lm, proposer_lm=proposer_lm)
    assert [(c.source, c.details.get("output_format")) for c in candidates] == [
        ("copro", None), ("seed", "label_json:label"), ("seed", "label_json:sentiment"), ("seed", "label_json:review"),
        ("copro", "label_json:label")]
    assert candidates[1].template == SEED_TEMPLATE
    assert candidates[4].generation.response_format == label_response_format(task)
    schema = candidates[2].generation.response_format["json_schema"]["schema"]
    assert schema["required"] == ["sentiment"] and schema["properties"]["sentiment"]["enum"] == ["positive", "negative"]


def test_registered_by_entry_point():
    assert "copro" in available_optimizers()


def test_unknown_optimizer_and_setting():
    with pytest.raises(OptimizerError, match="Unknown optimizer 'nope': choose one of .*copro"):
        get_optimizer("nope")
    with pytest.raises(OptimizerError, match="does not accept widht; it accepts: .*breadth \\(default 4\\)"):
        get_optimizer("copro", widht=3)


def test_train_split_too_small(fake_llm):
    task_lm, proposer_lm = lms()
    with pytest.raises(OptimizerError, match="needs at least 4 training examples; the train split has 2"):
        get_optimizer("copro").propose(make_task(trainset=tiny_rows(2)), task_lm=task_lm, proposer_lm=proposer_lm)
    assert fake_llm.requests == []


def test_template_without_instruction():
    with pytest.raises(TemplateError, match="no instruction before its first"):
        make_task(seed=Template.parse("Review: {{text}}"))
