"""MIPROv2 (DSPy): instruction and few-shot demo candidates, searched jointly with Optuna."""

from __future__ import annotations

import logging
from typing import Any

from dspy.teleprompt import MIPROv2

from optimizers.base import Candidate, OptimizationTask, Optimizer
from optimizers.program import candidates_from_programs, dspy_metric, dspy_session, program_for, sample_trainset

__all__ = ["MiproOptimizer"]

log = logging.getLogger(__name__)


class MiproOptimizer(Optimizer):
    """DSPy's MIPROv2. Proposer calls go through the plain-text adapter for small models; the chosen
    demos are written into the template like every other few-shot candidate."""

    name = "mipro"
    min_train = 8
    defaults = {
        "num_candidates": 3,  # instruction candidates and demo sets proposed
        "num_trials": 6,  # Bayesian-optimisation trials over (instruction, demos)
        "max_bootstrapped_demos": 2,
        "max_labeled_demos": 2,
        "init_temperature": 0.9,
        "train_size": 30,  # half proposes and bootstraps, half scores the trials
        "num_threads": 4,
        "data_aware_proposer": False,  # a dataset summary costs several long proposer calls
        "program_aware_proposer": False,  # a program description is long for small context windows
    }

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        s = self.settings
        examples = sample_trainset(task, s["train_size"])
        half = max(1, len(examples) // 2)
        teleprompter = MIPROv2(
            metric=dspy_metric(task), prompt_model=proposer_lm, task_model=task_lm, auto=None,
            num_candidates=int(s["num_candidates"]), max_bootstrapped_demos=int(s["max_bootstrapped_demos"]),
            max_labeled_demos=int(s["max_labeled_demos"]), init_temperature=float(s["init_temperature"]),
            num_threads=int(s["num_threads"]), seed=task.random_seed, verbose=False,
        )
        with dspy_session(task, task_lm, self.name):
            best = teleprompter.compile(
                program_for(task), trainset=examples[:half], valset=examples[half:] or examples,
                num_trials=int(s["num_trials"]), minibatch=False,
                data_aware_proposer=bool(s["data_aware_proposer"]),
                program_aware_proposer=bool(s["program_aware_proposer"]),
            )
        candidates = candidates_from_programs(best.candidate_programs, task, self.name)  # best first
        log.info("MIPROv2 returned %d distinct candidates", len(candidates))
        return candidates
