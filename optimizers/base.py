"""The optimizer interface: a seed template and training examples in, candidate templates out.

Optimizers never log, register or orchestrate: the flow scores, logs and registers what they
return. Each optimizer declares its settings as a pydantic model (typed fields with defaults and
descriptions) and its search in `optimize`; `propose` adds what every optimizer shares: the cut
to `max_candidates`, the proposals kept when the budget runs out, and label-constrained twins.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from optimizers.output_format import with_label_twins
from optimizers.task import Candidate, OptimizationTask
from promptyard.errors import BudgetExhausted, OptimizerError
from promptyard.registry import template_key

__all__ = ["Candidate", "OptimizationTask", "Optimizer", "OptimizerSettings"]


class OptimizerSettings(BaseModel):
    """Settings every optimizer takes. Each optimizer subclasses this with `name: Literal[...]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The optimizer (`promptyard optimizers list`).")
    max_candidates: int = Field(4, ge=1, le=64, description="Proposals returned to the flow, best first.")
    constrain_labels: bool = Field(
        True, description="Also try the seed and each proposal with the answer constrained to the label set "
        "(a JSON-schema response format).")


class Optimizer(ABC):
    """An optimizer with validated settings (`self.settings`, an instance of `Settings`)."""

    name: ClassVar[str] = "optimizer"
    Settings: ClassVar[type[OptimizerSettings]] = OptimizerSettings
    min_train: ClassVar[int] = 2
    stopped: str | None = None  # why the last `propose` ended early (a spent budget), if it did

    def __init__(self, settings: OptimizerSettings | None = None):
        self.settings = settings if settings is not None else self.Settings()
        if not isinstance(self.settings, self.Settings):
            raise OptimizerError(f"Optimizer {self.name!r} takes {self.Settings.__name__}, "
                                 f"got {type(self.settings).__name__}.")

    def get_params(self) -> dict[str, Any]:
        """The settings as plain values (logged as MLflow params)."""
        return self.settings.model_dump(exclude={"name"})

    def check(self, task: OptimizationTask) -> None:
        if len(task.trainset) < self.min_train:
            raise OptimizerError(
                f"Optimizer {self.name!r} needs at least {self.min_train} training examples; the train "
                f"split has {len(task.trainset)}. Add examples or lower the validation/test sizes."
            )

    def propose(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        """`optimize`, cut to `max_candidates`, plus label-constrained twins when asked for.

        When the run's budget is spent mid-search, the instructions proposed so far become the
        candidates (best kept, not lost) and `stopped` says why."""
        from optimizers.output_format import with_label_twins

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
        candidates = found[: self.settings.max_candidates]
        if not (self.settings.constrain_labels and task.labels and not task.generation.response_format):
            return candidates
        return with_label_twins(candidates, task)

    @abstractmethod
    def optimize(self, task: OptimizationTask, *, task_lm: Any, proposer_lm: Any) -> list[Candidate]:
        """Return candidate templates, best first by the optimizer's own estimate."""


def _with_proposals(found: list[Candidate], task: OptimizationTask, name: str) -> list[Candidate]:
    """The optimizer's own candidates, then every recorded proposal not among them."""
    seen = {template_key(c.template) for c in found} | {template_key(task.seed.value)}
    result = list(found)
    for instruction in task.proposals:
        template = task.seed.with_instruction(instruction).value
        if template_key(template) not in seen:
            seen.add(template_key(template))
            result.append(Candidate(template, f"{name} (proposal kept when the budget ran out)",
                                    generation=task.generation))
    return result
