"""Turning an optimization task into DSPy objects: program, trainset, metric, adapter."""

from __future__ import annotations

import dspy

from optimizers.adapter import GOLD_FIELD, OUTPUT_FIELD, TemplateAdapter, task_signature
from optimizers.base import OptimizationTask

__all__ = ["program_for", "trainset_for", "dspy_metric", "adapter_for", "template_of"]


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
    return TemplateAdapter(task.seed.body, task.input_fields, task.metric, proposer=proposer)


def template_of(program: dspy.Module, task: OptimizationTask) -> str:
    """The template text that reproduces a compiled one-predictor program: instruction and demos."""
    predictor = program.predictors()[0]
    instruction = adapter_for(task).instruction_with_demos(predictor.signature.instructions, predictor.demos)
    return task.seed.with_instruction(instruction).text
