"""MIPROv2 through DSPy against the fake server: instructions are proposed and trials scored."""

from helpers import SEED_TEMPLATE, tiny_rows

from optimizers import OptimizationTask, get_optimizer
from promptyard.runtime import Endpoint, make_lm
from promptyard.evaluation import get_metric
from promptyard.runtime import get_settings
from promptyard.registry import Template


def test_mipro_proposes_instructions_and_scores_trials(fake_llm):
    task = OptimizationTask(seed=Template.parse(SEED_TEMPLATE), trainset=tiny_rows(16), input_fields=["text"],
                            label_field="label", metric=get_metric("exact_label", ["positive", "negative"]))
    lm = make_lm(Endpoint.from_settings(get_settings()), cache=False, max_tokens=64)
    candidates = get_optimizer("mipro", num_candidates=2, num_trials=3, train_size=16,
                               constrain_labels=False).propose(task, task_lm=lm, proposer_lm=lm)

    proposer_prompts = [r["messages"][-1]["content"] for r in fake_llm.chat_requests()
                        if "Review:" not in r["messages"][-1]["content"]]
    assert proposer_prompts, "MIPROv2 never called its proposer"
    assert candidates and all(c.source == "mipro" for c in candidates)
    assert all(Template.parse(c.template).body == "Review: {{text}}" for c in candidates)
    assert all(0.0 <= c.train_score <= 1.0 for c in candidates)
    # the proposed instruction won the trials (the fake answers right only with it)
    assert candidates[0].template.startswith("Read the review carefully. Answer positive or negative.")
    assert candidates[0].train_score == 1.0
