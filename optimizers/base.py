"""The optimizer interface: a seed template and training examples in, candidate templates out.

Optimizers never log, register or orchestrate: the flow scores, logs and registers what they
return. Built-in and third-party optimizers are found through the `promptyard.optimizers`
entry-point group.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any, ClassVar

from promptyard.budget import BudgetExhausted
from promptyard.errors import OptimizerError, TemplateError
from promptyard.lm import GenerationConfig
from promptyard.metrics import Metric
from promptyard.templates import Template

__all__ = [
    "Candidate",
    "OptimizationTask",
    "Optimizer",
    "get_optimizer",
    "available_optimizers",
    "label_response_format",
    "format_keys",
]

LABEL_FORMAT = "label_json"


_NOT_KEYS = frozenset(
    "classify classification answer answers decide determine given following this that these those with only "
    "what which from into your text message input output possible reply respond label labels write read "
    "choose return give best word words should must".split()
)


def format_keys(task: OptimizationTask, most: int = 3) -> list[str]:
    """Names to try for the JSON answer field: the dataset's label field, then the first content words
    of the instruction ("Classify the sentiment of ..." -> "sentiment"). Small models answer
    noticeably better when the field says what is asked."""
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


@dataclass
class OptimizationTask:
    """What an optimizer works on."""

    seed: Template
    trainset: list[dict]
    input_fields: list[str]
    label_field: str
    metric: Metric
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    labels: list[str] = field(default_factory=list)
    proposer_style: str = "plain"  # "plain" for small models, "standard" for DSPy's own adapters
    random_seed: int = 0
    budget: Any = None  # a promptyard Budget shared by every LM of the run, if any
    proposals: list[str] = field(default_factory=list)  # every instruction the proposer wrote, in order

    def record_proposal(self, instruction: str) -> None:
        if instruction and instruction.strip():
            self.proposals.append(instruction.strip())

    def __post_init__(self) -> None:
        if not self.seed.instruction.strip():
            raise TemplateError(
                "The template has no instruction before its first {{variable}} paragraph, so there "
                "is nothing to optimize: start it with an instruction paragraph, then a blank line."
            )


@dataclass
class Candidate:
    """One proposed template and what the optimizer knew of it."""

    template: str
    source: str
    train_score: float | None = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    details: dict[str, Any] = field(default_factory=dict)


_COMMON_SETTINGS = {
    "max_candidates": 4,  # proposals returned to the flow, best first
    # also try the seed and each proposal with the answer constrained to the label set (JSON schema)
    "constrain_labels": True,
}


class Optimizer(ABC):
    """Every setting is a constructor keyword with a default; `get_params()` returns them."""

    name: ClassVar[str] = "optimizer"
    min_train: ClassVar[int] = 2

    def __init__(self, **settings: Any):
        accepted = self.accepted_settings()
        unknown = sorted(set(settings) - set(accepted))
        if unknown:
            raise OptimizerError(
                f"Optimizer {self.name!r} does not accept {', '.join(unknown)}; it accepts: "
                + ", ".join(f"{k} (default {v!r})" for k, v in accepted.items())
            )
        self.settings = {**accepted, **settings}

    @classmethod
    def accepted_settings(cls) -> dict[str, Any]:
        """The settings and their defaults, read from `defaults`."""
        return {**_COMMON_SETTINGS, **getattr(cls, "defaults", {})}

    def get_params(self) -> dict[str, Any]:
        return dict(self.settings)

    def check(self, task: OptimizationTask) -> None:
        if len(task.trainset) < self.min_train:
            raise OptimizerError(
                f"Optimizer {self.name!r} needs at least {self.min_train} training examples; the train "
                f"split has {len(task.trainset)}. Add examples or lower the validation/test sizes."
            )

    stopped: str | None = None  # why the last `propose` ended early (a spent budget), if it did

    def propose(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        """`optimize`, cut to `max_candidates`, plus label-constrained twins when asked for.

        When the run's budget is spent mid-search, the instructions proposed so far become the
        candidates (best kept, not lost) and `stopped` says why."""
        self.check(task)
        self.stopped = None
        try:
            found = self.optimize(task, task_lm=task_lm, proposer_lm=proposer_lm)
        except Exception as exc:
            reason = task.budget.spent_reason() if task.budget is not None else None
            if not isinstance(exc, BudgetExhausted) and reason is None:
                raise
            found = []
            self.stopped = str(reason or exc)
        if self.stopped is None and task.budget is not None and task.budget.spent_reason():
            self.stopped = task.budget.spent_reason()
        if self.stopped:
            found = _with_proposals(found, task, self.name)
            self.stopped = (f"{self.name} stopped early ({self.stopped}); kept the {len(found)} candidate(s) "
                            "proposed so far")
        candidates = found[: int(self.settings["max_candidates"])]
        if not (self.settings["constrain_labels"] and task.labels and not task.generation.response_format):
            return candidates
        keys = format_keys(task)
        constrained = replace(task.generation, response_format=label_response_format(task))
        seed_twins = []
        for key in keys:  # the seed with each answer-field name; proposals with the first
            twin = Candidate(task.seed.text, source="seed",
                             generation=replace(task.generation, response_format=label_response_format(task, key)))
            twin.details = {"output_format": f"{LABEL_FORMAT}:{key}"}
            seed_twins.append(twin)
        twins = [replace(c, train_score=None, generation=constrained) for c in candidates]
        for candidate in twins:
            candidate.details = {**candidate.details, "output_format": f"{LABEL_FORMAT}:{keys[0]}"}
        return [*candidates, *seed_twins, *twins]

    @abstractmethod
    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        """Return candidate templates, best first by the optimizer's own estimate."""


def _with_proposals(found: list[Candidate], task: OptimizationTask, name: str) -> list[Candidate]:
    """The optimizer's own candidates, then every recorded proposal not among them."""
    seen = {c.template for c in found} | {task.seed.text}
    result = list(found)
    for instruction in task.proposals:
        template = task.seed.with_instruction(instruction).text
        if template not in seen:
            seen.add(template)
            result.append(Candidate(template, f"{name} (proposal kept when the budget ran out)",
                                    generation=task.generation))
    return result


def available_optimizers() -> dict[str, type[Optimizer]]:
    """Optimizers registered under the `promptyard.optimizers` entry-point group."""
    found = {}
    for ep in entry_points(group="promptyard.optimizers"):
        cls = ep.load()
        if inspect.isclass(cls) and issubclass(cls, Optimizer):
            found[ep.name] = cls
    return found


def get_optimizer(name: str, **settings: Any) -> Optimizer:
    optimizers = available_optimizers()
    if name not in optimizers:
        raise OptimizerError(
            f"Unknown optimizer {name!r}: choose one of {', '.join(sorted(optimizers)) or 'none installed'} "
            "(`promptyard optimizers list` shows their settings)."
        )
    return optimizers[name](**settings)
