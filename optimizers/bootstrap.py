"""Few-shot demos (DSPy's BootstrapFewShotWithRandomSearch), rendered into the template."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from optimizers.base import Candidate, OptimizationTask, Optimizer, OptimizerSettings

__all__ = ["BootstrapFewShotOptimizer", "BootstrapSettings"]


class BootstrapSettings(OptimizerSettings):
    """Few-shot demos: random search over sets of labelled and bootstrapped demos."""

    name: Literal["bootstrap"] = "bootstrap"
    max_bootstrapped_demos: int = Field(3, ge=0, le=16, description="Demos taken from the model's own correct answers.")
    max_labeled_demos: int = Field(4, ge=0, le=16, description="Demos taken from the training labels.")
    num_candidate_programs: int = Field(
        4, ge=1, le=64, description="Random demo sets tried (plus zero-shot, labelled-only, unshuffled).")
    train_size: int = Field(30, ge=1, description="Training examples to draw demos from and to score on.")
    num_threads: int = Field(4, ge=1, le=64, description="Concurrent requests while scoring on train.")


class BootstrapFewShotOptimizer(Optimizer):
    """Random search over sets of labelled and bootstrapped demos, scored on the train sample.

    The chosen demos are written into the template (after the instruction, in the body's own
    format), so the registered version alone reproduces the candidate.
    """

    name = "bootstrap"
    Settings = BootstrapSettings
    min_train = 4
    settings: BootstrapSettings

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        from dspy.teleprompt import BootstrapFewShotWithRandomSearch

        from optimizers.program import candidates_from_programs, dspy_metric, dspy_session, program_for, sample_trainset

        s = self.settings
        teleprompter = BootstrapFewShotWithRandomSearch(
            metric=dspy_metric(task), max_bootstrapped_demos=s.max_bootstrapped_demos,
            max_labeled_demos=s.max_labeled_demos, num_candidate_programs=s.num_candidate_programs,
            num_threads=s.num_threads)
        with dspy_session(task, task_lm, self.name):
            best = teleprompter.compile(program_for(task), trainset=sample_trainset(task, s.train_size))
        return candidates_from_programs(best.candidate_programs, task, self.name)  # best first
