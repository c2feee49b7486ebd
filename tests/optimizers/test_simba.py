"""SIMBA through DSPy against the fake OpenAI-compatible server."""

import pytest
from test_copro import lms, make_task

from optimizers import available_optimizers, get_optimizer
from promptyard.errors import OptimizerError


def test_simba_writes_rules_from_disagreeing_samples(fake_llm):
    fake_llm.proposal = "Read the review carefully before answering."  # the fake scores it 1.0
    task_lm, proposer_lm = lms()
    optimizer = get_optimizer("simba", bsize=8, num_candidates=3, max_steps=2, train_size=16, constrain_labels=False)
    candidates = optimizer.propose(make_task(), task_lm=task_lm, proposer_lm=proposer_lm)

    feedback = fake_llm.chat_requests("proposer")
    assert feedback, "SIMBA asked the proposer for no rule"
    assert "Worse answer" in feedback[0]["messages"][-1]["content"] or \
        "Worse program outputs" in feedback[0]["messages"][-1]["content"]
    ruled = [c for c in candidates if "Read the review carefully before answering." in c.template]
    assert ruled and all(c.source == "simba" for c in candidates)
    assert all(c.template.endswith("Review: {{text}}") for c in candidates)


def test_simba_needs_a_mini_batch_of_training_examples(fake_llm):
    task_lm, proposer_lm = lms()
    optimizer = get_optimizer("simba", bsize=12)
    with pytest.raises(OptimizerError, match="needs at least 12 training examples; the train split has 10"):
        optimizer.propose(make_task(trainset=make_task().trainset[:10]), task_lm=task_lm, proposer_lm=proposer_lm)
    assert fake_llm.chat_requests() == []


def test_registered_by_entry_point():
    assert "simba" in available_optimizers()
