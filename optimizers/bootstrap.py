"""Few-shot demos (DSPy's BootstrapFewShotWithRandomSearch), rendered into the template."""

from __future__ import annotations

from typing import Any

from dspy.teleprompt import BootstrapFewShotWithRandomSearch

from optimizers.base import Candidate, OptimizationTask, Optimizer
from optimizers.program import candidates_from_programs, dspy_metric, dspy_session, program_for, sample_trainset

__all__ = ["BootstrapFewShotOptimizer"]


class BootstrapFewShotOptimizer(Optimizer):
    """Random search over sets of labelled and bootstrapped demos, scored on the train sample.

    The chosen demos are written into the template (after the instruction, in the body's own
    format), so the registered version alone reproduces the candidate.
    """

    name = "bootstrap"
    min_train = 4
    defaults = {
        "max_bootstrapped_demos": 3,  # demos taken from the model's own correct answers
        "max_labeled_demos": 4,  # demos taken from the training labels
        "num_candidate_programs": 4,  # random demo sets tried (plus zero-shot, labelled-only, unshuffled)
        "train_size": 30,  # training examples to draw demos from and to score on
        "num_threads": 4,
    }

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        s = self.settings
        teleprompter = BootstrapFewShotWithRandomSearch(
            metric=dspy_metric(task),
            max_bootstrapped_demos=int(s["max_bootstrapped_demos"]),
            max_labeled_demos=int(s["max_labeled_demos"]),
            num_candidate_programs=int(s["num_candidate_programs"]),
            num_threads=int(s["num_threads"]),
        )
        with dspy_session(task, task_lm, self.name):
            best = teleprompter.compile(program_for(task), trainset=sample_trainset(task, s["train_size"]))
        return candidates_from_programs(best.candidate_programs, task, self.name)  # best first
