"""Label-constrained output formats: the answer as a JSON field whose value must be a label.

Small models answer noticeably better when the field says what is asked, so the seed is tried
with several field names: the dataset's label field, then the instruction's first content words
("Classify the sentiment of ..." -> "sentiment").
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from optimizers.task import Candidate, OptimizationTask

__all__ = ["LABEL_FORMAT", "format_keys", "label_response_format", "with_label_twins"]

LABEL_FORMAT = "label_json"

_NOT_KEYS = frozenset(
    "classify classification answer answers decide determine given following this that these those with only "
    "what which from into your text message input output possible reply respond label labels write read "
    "choose return give best word words should must".split()
)


def format_keys(task: OptimizationTask, most: int = 3) -> list[str]:
    """Names to try for the JSON answer field: the label field, then the instruction's first content words."""
    keys = [task.label_field]
    labels = {str(label).lower() for label in task.labels}
    for word in re.findall(r"[a-z]+", task.seed.instruction.lower()):
        if len(keys) >= most:
            break
        if len(word) >= 4 and word not in _NOT_KEYS and word not in labels and word not in keys:
            keys.append(word)
    return keys


def label_response_format(task: OptimizationTask, key: str | None = None) -> dict[str, Any]:
    """A JSON-schema response format whose only field (`key`, default the label field) must be one
    of the task's labels."""
    key = key or task.label_field
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {key: {"type": "string", "enum": list(task.labels)}},
                "required": [key],
                "additionalProperties": False,
            },
        },
    }


def with_label_twins(candidates: list[Candidate], task: OptimizationTask) -> list[Candidate]:
    """The candidates, then the seed with each answer-field name, then each candidate constrained
    with the first name."""
    keys = format_keys(task)
    seed_twins = []
    for key in keys:
        twin = Candidate(task.seed.value, source="seed",
                         generation=replace(task.generation, response_format=label_response_format(task, key)))
        twin.details = {"output_format": f"{LABEL_FORMAT}:{key}"}
        seed_twins.append(twin)
    constrained = replace(task.generation, response_format=label_response_format(task))
    twins = [replace(c, train_score=None, generation=constrained) for c in candidates]
    for candidate in twins:
        candidate.details = {**candidate.details, "output_format": f"{LABEL_FORMAT}:{keys[0]}"}
    return [*candidates, *seed_twins, *twins]
