"""SIMBA (DSPy): mini-batches where sampled answers disagree; the proposer writes a rule from a
worse and a better answer, or a good answer becomes a demo. Rules and demos end up in the template."""

from __future__ import annotations

import logging
from typing import Any

from dspy.teleprompt import SIMBA

from optimizers.base import Candidate, OptimizationTask, Optimizer
from optimizers.program import candidates_from_programs, dspy_metric, dspy_session, program_for, sample_trainset

__all__ = ["SimbaOptimizer"]

log = logging.getLogger(__name__)


class SimbaOptimizer(Optimizer):
    name = "simba"
    min_train = 8
    defaults = {
        "bsize": 8,  # mini-batch size (the train split needs at least this many examples)
        "num_candidates": 4,  # sampled answers per example, and new programs per step
        "max_steps": 2,  # mini-batches
        "max_demos": 2,  # demos a predictor may collect
        "train_size": 32,  # training examples SIMBA draws its mini-batches from
        "num_threads": 4,
    }

    def check(self, task: OptimizationTask) -> None:
        self.min_train = max(type(self).min_train, int(self.settings["bsize"]))
        super().check(task)

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        s = self.settings
        trainset = sample_trainset(task, max(int(s["train_size"]), int(s["bsize"])))
        teleprompter = SIMBA(
            metric=dspy_metric(task), bsize=int(s["bsize"]), num_candidates=int(s["num_candidates"]),
            max_steps=int(s["max_steps"]), max_demos=int(s["max_demos"]), prompt_model=proposer_lm,
            num_threads=int(s["num_threads"]),
        )
        with dspy_session(task, task_lm, self.name):
            best = teleprompter.compile(program_for(task), trainset=trainset, seed=task.random_seed)
        entries = sorted(getattr(best, "candidate_programs", []), key=lambda e: e["score"], reverse=True)
        candidates = candidates_from_programs(entries, task, self.name)
        log.info("SIMBA kept %d distinct programs", len(candidates))
        return candidates
