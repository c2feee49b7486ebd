from helpers import SEED_TEMPLATE, tiny_rows

from optimizers import OptimizationTask, get_optimizer
from optimizers.metaprompt import meta_prompt
from promptyard.runtime import Endpoint, make_lm
from promptyard.evaluation import get_metric
from promptyard.runtime import get_settings
from promptyard.registry import Template


def test_meta_prompt_shows_scored_history():
    assert meta_prompt([("A", 0.5), ("B", 0.75)]) == (
        "Here are instructions for a task and the score each one got (out of 100).\n\n"
        "Instruction: A\nScore: 50\n\nInstruction: B\nScore: 75\n\n"
        "Write one new instruction that will get a higher score. Keep the list of allowed answers. "
        "Reply with the instruction only.\n\nNew instruction:")


def test_proposals_happen_and_are_scored(fake_llm):
    fake_llm.proposal = "Instruction: Read the review carefully and answer positive or negative.\nScore: 100"
    task = OptimizationTask(seed=Template.parse(SEED_TEMPLATE), trainset=tiny_rows(10), input_fields=["text"],
                            label_field="label", metric=get_metric("exact_label", ["positive", "negative"]))
    lm = make_lm(Endpoint.from_settings(get_settings()), cache=False, max_tokens=64)
    candidates = get_optimizer("metaprompt", rounds=2, proposals_per_round=2, train_size=10).propose(
        task, task_lm=lm, proposer_lm=lm)

    proposer = [r for r in fake_llm.chat_requests() if r["messages"][-1]["content"].startswith("Here are instructions")]
    assert len(proposer) == 4
    assert "Instruction: Classify the sentiment of the review as positive or negative.\nScore: 50" in \
        proposer[0]["messages"][-1]["content"]
    assert [(c.template, c.train_score, c.source) for c in candidates] == [
        ("Read the review carefully and answer positive or negative.\n\nReview: {{text}}", 1.0, "metaprompt")]
    assert "Score: 100" in proposer[-1]["messages"][-1]["content"]  # later rounds see the scored proposal
