"""MIPROv2 (DSPy): instruction and few-shot demo candidates, searched jointly with Optuna."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field

from optimizers.base import Candidate, OptimizationTask, Optimizer, OptimizerSettings

__all__ = ["MiproOptimizer", "MiproSettings"]

log = logging.getLogger(__name__)


class MiproSettings(OptimizerSettings):
    """MIPROv2: instructions and demo sets proposed, then searched jointly (Bayesian optimisation)."""

    name: Literal["mipro"] = "mipro"
    num_candidates: int = Field(3, ge=1, le=32, description="Instruction candidates and demo sets proposed.")
    num_trials: int = Field(6, ge=1, le=200, description="Bayesian-optimisation trials over (instruction, demos).")
    max_bootstrapped_demos: int = Field(2, ge=0, le=16, description="Demos taken from the model's own correct answers.")
    max_labeled_demos: int = Field(2, ge=0, le=16, description="Demos taken from the training labels.")
    init_temperature: float = Field(0.9, ge=0, le=2, description="Proposer sampling temperature.")
    train_size: int = Field(30, ge=2, description="Training examples: half proposes and bootstraps, half scores.")
    num_threads: int = Field(4, ge=1, le=64, description="Concurrent requests while scoring.")
    data_aware_proposer: bool = Field(False, description="Summarise the dataset for the proposer (several long calls).")
    program_aware_proposer: bool = Field(
        False, description="Describe the program to the proposer (long for small context windows).")


class MiproOptimizer(Optimizer):
    """DSPy's MIPROv2. Proposer calls go through the plain-text adapter for small models; the chosen
    demos are written into the template like every other few-shot candidate."""

    name = "mipro"
    Settings = MiproSettings
    min_train = 8
    settings: MiproSettings

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        from dspy.teleprompt import MIPROv2

        from optimizers.program import candidates_from_programs, dspy_metric, dspy_session, program_for, sample_trainset

        s = self.settings
        examples = sample_trainset(task, s.train_size)
        half = max(1, len(examples) // 2)
        teleprompter = MIPROv2(
            metric=dspy_metric(task), prompt_model=proposer_lm, task_model=task_lm, auto=None,
            num_candidates=s.num_candidates, max_bootstrapped_demos=s.max_bootstrapped_demos,
            max_labeled_demos=s.max_labeled_demos, init_temperature=s.init_temperature,
            num_threads=s.num_threads, seed=task.random_seed, verbose=False,
        )
        with dspy_session(task, task_lm, self.name):
            best = teleprompter.compile(
                program_for(task), trainset=examples[:half], valset=examples[half:] or examples,
                num_trials=s.num_trials, minibatch=False, data_aware_proposer=s.data_aware_proposer,
                program_aware_proposer=s.program_aware_proposer,
            )
        candidates = candidates_from_programs(best.candidate_programs, task, self.name)  # best first
        log.info("MIPROv2 returned %d distinct candidates", len(candidates))
        return candidates
