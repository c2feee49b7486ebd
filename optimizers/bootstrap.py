"""Few-shot demos (DSPy's BootstrapFewShotWithRandomSearch), rendered into the template."""

from __future__ import annotations

import contextlib
import io
import logging
import random
from typing import Any

import dspy
from dspy.teleprompt import BootstrapFewShotWithRandomSearch

from optimizers.base import Candidate, OptimizationTask, Optimizer
from optimizers.program import adapter_for, dspy_metric, program_for, template_of, trainset_for

__all__ = ["BootstrapFewShotOptimizer"]

log = logging.getLogger(__name__)


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
        trainset = trainset_for(task)
        random.Random(task.random_seed).shuffle(trainset)
        trainset = trainset[: int(s["train_size"])]
        teleprompter = BootstrapFewShotWithRandomSearch(
            metric=dspy_metric(task),
            max_bootstrapped_demos=int(s["max_bootstrapped_demos"]),
            max_labeled_demos=int(s["max_labeled_demos"]),
            num_candidate_programs=int(s["num_candidate_programs"]),
            num_threads=int(s["num_threads"]),
        )
        printed = io.StringIO()  # the teleprompter prints its progress; keep it in the debug log
        with dspy.context(lm=task_lm, adapter=adapter_for(task)), contextlib.redirect_stdout(printed):
            best = teleprompter.compile(program_for(task), trainset=trainset)
        log.debug("bootstrap output:\n%s", printed.getvalue())
        seen = {task.seed.text}
        candidates = []
        for entry in best.candidate_programs:  # best first
            template = template_of(entry["program"], task)
            if template in seen:
                continue
            seen.add(template)
            demos = len(entry["program"].predictors()[0].demos)
            candidates.append(Candidate(template, self.name, float(entry["score"]) / 100.0, task.generation,
                                        details={"demos": demos, "search_seed": int(entry["seed"])}))
        return candidates
