"""What an optimizer works on (`OptimizationTask`) and what it returns (`Candidate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from promptyard.evaluation import Metric
from promptyard.registry import GenerationConfig, PromptTemplate, Template

__all__ = ["OptimizationTask", "Candidate"]


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
    discarded: list[str] = field(default_factory=list)  # proposer replies that held no readable instruction

    def record_proposal(self, instruction: str) -> None:
        if instruction and instruction.strip():
            self.proposals.append(instruction.strip())

    @property
    def echoes(self) -> list[str]:
        """The example inputs a proposer may copy into an instruction (cut out of proposals)."""
        from optimizers.proposals import task_echoes

        return task_echoes(self.trainset, self.input_fields)

    def usable(self, reply: str) -> str:
        """The readable instruction in a proposer's reply, or "" (the reply is kept in `discarded`)."""
        from optimizers.proposals import usable_proposal

        instruction = usable_proposal(reply, self.echoes, self.labels)
        if not instruction and reply.strip():
            self.discarded.append(reply.strip())
        return instruction

    def __post_init__(self) -> None:
        self.seed.check_optimizable()


@dataclass
class Candidate:
    """One proposed template (text, or chat messages) and what the optimizer knew of it."""

    template: PromptTemplate
    source: str
    train_score: float | None = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    details: dict[str, Any] = field(default_factory=dict)
