"""Turning an optimization task into DSPy objects: program, trainset, metric, adapter."""

from __future__ import annotations

import contextlib
import io
import logging
import random
from collections.abc import Iterator

import dspy

from optimizers.adapter import GOLD_FIELD, OUTPUT_FIELD, TemplateAdapter, task_signature
from optimizers.base import Candidate, OptimizationTask
from promptyard.registry import PromptTemplate, template_key

__all__ = [
    "program_for",
    "trainset_for",
    "sample_trainset",
    "dspy_metric",
    "adapter_for",
    "template_of",
    "dspy_session",
    "candidates_from_programs",
]

log = logging.getLogger(__name__)


def program_for(task: OptimizationTask) -> dspy.Predict:
    """One predictor whose signature instruction is the template's instruction."""
    return dspy.Predict(task_signature(task.input_fields, task.seed.instruction))


def trainset_for(task: OptimizationTask) -> list[dspy.Example]:
    return [
        dspy.Example({**{k: row[k] for k in task.input_fields}, GOLD_FIELD: str(row[task.label_field])})
        .with_inputs(*task.input_fields)
        for row in task.trainset
    ]


def dspy_metric(task: OptimizationTask):
    """The task metric in DSPy's shape: (example, prediction, trace) -> float."""

    def metric(example, prediction, trace=None, *args, **kwargs) -> float:
        reply = getattr(prediction, OUTPUT_FIELD, "") or ""
        return task.metric.score(task.metric.parse(reply), example[GOLD_FIELD])

    return metric


def adapter_for(task: OptimizationTask) -> TemplateAdapter:
    proposer = None if task.proposer_style == "plain" else dspy.ChatAdapter()
    return TemplateAdapter(task.seed, task.input_fields, task.metric, proposer=proposer, proposals=task.proposals,
                           read_proposal=task.usable)


def template_of(program: dspy.Module, task: OptimizationTask) -> PromptTemplate:
    """The template that reproduces a compiled one-predictor program: instruction and demos."""
    predictor = program.predictors()[0]
    return adapter_for(task).template_with_demos(predictor.signature.instructions, predictor.demos).value


def sample_trainset(task: OptimizationTask, size: int) -> list[dspy.Example]:
    """`size` training examples, shuffled by the task's seed."""
    examples = trainset_for(task)
    random.Random(task.random_seed).shuffle(examples)
    return examples[: int(size)]


@contextlib.contextmanager
def dspy_session(task: OptimizationTask, task_lm, name: str) -> Iterator[None]:
    """DSPy configured with the task LM and the template adapter; what the optimizer prints goes
    to the debug log instead of stdout."""
    printed = io.StringIO()
    with dspy.context(lm=task_lm, adapter=adapter_for(task)), contextlib.redirect_stdout(printed):
        yield
    log.debug("%s output:\n%s", name, printed.getvalue())


def candidates_from_programs(entries, task: OptimizationTask, source: str) -> list[Candidate]:
    """Distinct candidates from DSPy's `candidate_programs` (dicts with `score` and `program`), in order,
    without the seed itself. Scores given in percent are brought to [0, 1]."""
    seen = {template_key(task.seed.value)}
    candidates = []
    for entry in entries:
        template = template_of(entry["program"], task)
        if template_key(template) in seen:
            continue
        seen.add(template_key(template))
        score = float(entry["score"])
        candidates.append(Candidate(template, source, score / 100.0 if score > 1 else score, task.generation,
                                    details={"demos": len(entry["program"].predictors()[0].demos)}))
    return candidates
