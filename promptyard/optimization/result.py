"""What an optimization returns: plain, typed data the CLI prints and `--json` serialises."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from promptyard.evaluation import ConstantTest, McNemar, PairedComparison, ReferencePoints
from promptyard.optimization.portability import Portability
from promptyard.optimization.simplest import TieBreak
from promptyard.registry import GenerationConfig, PromptTemplate
from promptyard.runtime import BudgetUsage

__all__ = ["SeedPrompt", "CandidateSummary", "OptimizationResult", "ProposerUsage"]


@dataclass(frozen=True)
class SeedPrompt:
    """The version an optimization starts from."""

    name: str
    version: int
    template: PromptTemplate  # text, or chat messages
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class CandidateSummary:
    index: int
    source: str
    output_format: str
    train_score: float | None
    validation: float | None  # None when it could not be scored (see `error`)
    cost_per_example: float
    mean_latency_s: float
    run_id: str
    errors: int = 0  # requests that failed after their retries (never scored)
    error: str = ""  # why the candidate failed, if it did

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass(frozen=True)
class ProposerUsage:
    """The model that proposed rewrites and what it took, apart from the task model's calls."""

    base_url: str
    model: str
    own: bool  # an endpoint or model of its own: budgeted and costed apart (else also in the run's budget)
    calls: int
    tokens: int
    cached: int
    cost_usd: float

    def describe(self) -> str:
        where = "its own endpoint" if self.own else "the task endpoint"
        return (f"proposer {self.model} at {self.base_url} ({where}): {self.calls} calls ({self.cached} answered from "
                f"cache), tokens {self.tokens}, ${self.cost_usd:.4f}")


@dataclass
class OptimizationResult:
    prompt: str  # name/version of the seed
    dataset: str
    optimizer: str
    baseline_validation: float
    candidates: list[CandidateSummary]
    decision: str
    budget: BudgetUsage
    cost_usd: float
    duration_s: float
    parent_run_id: str
    mlflow_url: str
    flow_run_id: str
    registered_version: int | None = None
    best_candidate: int | None = None  # 1-based index of the candidate taken to the test split
    choice: TieBreak | None = None  # why that candidate: the smallest edit among those tied with the best
    test: PairedComparison | None = None
    mcnemar: McNemar | None = None
    pareto_front: list[int] = field(default_factory=list)  # 1-based candidate indices
    reference_validation: ReferencePoints | None = None  # majority label and uniformly random label
    reference_test: ReferencePoints | None = None
    versus_majority: list[ConstantTest] = field(default_factory=list)  # the seed, then the winner, on test
    notes: list[str] = field(default_factory=list)  # what a reader must know besides the decision
    proposals_discarded: int = 0  # proposer replies without a readable instruction
    proposer: ProposerUsage | None = None  # the model that proposed rewrites: its calls, tokens and cost
    portability: list[Portability] = field(default_factory=list)  # the seed and the winner on other models

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for test, plain in zip(self.versus_majority, data["versus_majority"], strict=True):
            plain["significant"] = test.significant
        return data
