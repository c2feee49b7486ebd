"""SIMBA (DSPy): mini-batches where sampled answers disagree; the proposer writes a rule from a
worse and a better answer, or a good answer becomes a demo. Rules and demos end up in the template."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field

from optimizers.base import Candidate, OptimizationTask, Optimizer, OptimizerSettings

__all__ = ["SimbaOptimizer", "SimbaSettings"]

log = logging.getLogger(__name__)


class SimbaSettings(OptimizerSettings):
    """SIMBA: rules written from a worse and a better sampled answer, and demos."""

    name: Literal["simba"] = "simba"
    bsize: int = Field(8, ge=2, le=256, description="Mini-batch size (the train split needs at least this many).")
    num_candidates: int = Field(4, ge=2, le=32, description="Sampled answers per example, and new programs per step.")
    max_steps: int = Field(2, ge=1, le=50, description="Mini-batches.")
    max_demos: int = Field(2, ge=0, le=16, description="Demos a predictor may collect.")
    train_size: int = Field(32, ge=2, description="Training examples SIMBA draws its mini-batches from.")
    num_threads: int = Field(4, ge=1, le=64, description="Concurrent requests while scoring.")


class SimbaOptimizer(Optimizer):
    name = "simba"
    Settings = SimbaSettings
    min_train = 8
    settings: SimbaSettings

    def check(self, task: OptimizationTask) -> None:
        self.min_train = max(type(self).min_train, self.settings.bsize)
        super().check(task)

    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        from dspy.teleprompt import SIMBA

        from optimizers.program import candidates_from_programs, dspy_metric, dspy_session, program_for, sample_trainset

        s = self.settings
        trainset = sample_trainset(task, max(s.train_size, s.bsize))
        teleprompter = SIMBA(metric=dspy_metric(task), bsize=s.bsize, num_candidates=s.num_candidates,
                             max_steps=s.max_steps, max_demos=s.max_demos, prompt_model=proposer_lm,
                             num_threads=s.num_threads)
        with dspy_session(task, task_lm, self.name):
            best = teleprompter.compile(program_for(task), trainset=trainset, seed=task.random_seed)
        entries = sorted(getattr(best, "candidate_programs", []), key=lambda e: e["score"], reverse=True)
        candidates = candidates_from_programs(entries, task, self.name)
        log.info("SIMBA kept %d distinct programs", len(candidates))
        return candidates
