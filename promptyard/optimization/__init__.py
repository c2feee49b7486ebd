"""Optimization decisions: the pure core of the optimize flow (no Prefect, no MLflow, no LM calls).

Owns the flow's typed parameter groups and their checks, the budget plan (what the search may
spend so the final test is always paid for), the choice on validation (the smallest edit among
the candidates tied with the best), the decision to register or not and why (and what a
reader must know besides, such as a winner not above the majority label), the provenance and
evidence tags of a registered version, the portability check (`--also-on`: does the gain hold on another
model), and the typed `OptimizationResult`.
May import: `promptyard.governance`, `promptyard.evaluation`, `promptyard.registry`,
`promptyard.runtime`, `promptyard.errors`.
"""

from promptyard.optimization.decision import (
    CANDIDATE_ALIAS,
    Decision,
    Verdict,
    choose_on_validation,
    choose_winner,
    decide_on_test,
    interval,
    reference_notes,
    registered_reason,
)
from promptyard.optimization.options import BudgetLimits, SearchOptions, SelectionOptions, checked
from promptyard.optimization.plan import BudgetPlan
from promptyard.optimization.portability import OtherModel, Portability, parse_also_on
from promptyard.optimization.provenance import commit_message, evidence, request_key, version_tags
from promptyard.optimization.simplest import TIE_RULE, Contender, TieBreak, closest_among_tied, edit_size
from promptyard.optimization.result import CandidateSummary, OptimizationResult, ProposerUsage, SeedPrompt

__all__ = [
    "CANDIDATE_ALIAS",
    "TIE_RULE",
    "Contender",
    "TieBreak",
    "BudgetLimits",
    "BudgetPlan",
    "CandidateSummary",
    "Decision",
    "OptimizationResult",
    "OtherModel",
    "Portability",
    "ProposerUsage",
    "SearchOptions",
    "SeedPrompt",
    "SelectionOptions",
    "Verdict",
    "checked",
    "choose_on_validation",
    "choose_winner",
    "closest_among_tied",
    "edit_size",
    "commit_message",
    "decide_on_test",
    "evidence",
    "parse_also_on",
    "interval",
    "reference_notes",
    "registered_reason",
    "request_key",
    "version_tags",
]
