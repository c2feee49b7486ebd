"""Register or not, and why: the decision of an optimization, from numbers alone.

Two steps. On validation: choose the best candidate by the selection policy, and take it to the
test split only if it beats the seed there. On the test split: register only if the paired
interval of (candidate − seed) lies above zero. Every outcome has one reason, in plain words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptyard.evaluation import ConstantTest, Objectives, PairedComparison, ReferencePoints, select
from promptyard.optimization.options import SelectionOptions
from promptyard.optimization.simplest import Contender, TieBreak, closest_among_tied

__all__ = ["Verdict", "Decision", "choose_on_validation", "decide_on_test", "registered_reason", "interval",
           "reference_notes", "choose_winner", "CANDIDATE_ALIAS"]

CANDIDATE_ALIAS = "candidate"


@dataclass(frozen=True)
class Verdict:
    """After validation: the candidate to take to the test split (index), or why none goes."""

    best: int | None
    reason: str = ""

    @property
    def goes_to_test(self) -> bool:
        return self.best is not None and not self.reason


@dataclass(frozen=True)
class Decision:
    register: bool
    reason: str


def choose_on_validation(baseline: float, candidates: Sequence[Objectives], selection: SelectionOptions, *,
                         proposed: int, budget_stopped: bool, test_affordable: bool) -> Verdict:
    """Which candidate goes to the test split (none when the budget, the optimizer or validation says no)."""
    best = select(candidates, policy=selection.policy, max_cost=selection.max_cost_per_example,
                  max_latency_s=selection.max_latency_s, weights=selection.weights)
    if best is None and budget_stopped and not candidates:
        return Verdict(None, "the budget left no calls to score a candidate on validation; nothing registered")
    if best is None and not proposed:
        return Verdict(None, "the optimizer returned no candidate (none of its proposals survived its own search); "
                             "nothing registered")
    if best is None:
        return Verdict(None, "no candidate fits the cost/latency budgets; nothing registered")
    if candidates[best].quality <= baseline:
        return Verdict(best, f"no version registered: no candidate beat the seed on validation (best "
                             f"{candidates[best].quality:.3f} vs {baseline:.3f}); the test split was left untouched")
    if not test_affordable:
        return Verdict(best, "budget spent before the test split could be scored; nothing registered")
    return Verdict(best)


def choose_winner(baseline: float, candidates: Sequence[Objectives], contenders: Sequence[Contender],
                  selection: SelectionOptions, seed_text: str, *, proposed: int, budget_stopped: bool,
                  test_affordable: bool, alpha: float = 0.05, seed: int = 0) -> tuple[Verdict, TieBreak | None]:
    """`choose_on_validation`, then the smallest edit among the candidates tied with its choice: the
    verdict names the candidate that goes to the test split, the tie-break says why."""
    verdict = choose_on_validation(baseline, candidates, selection, proposed=proposed, budget_stopped=budget_stopped,
                                   test_affordable=test_affordable)
    if not verdict.goes_to_test:
        return verdict, None
    allowed = [i for i, p in enumerate(candidates)
               if (selection.max_cost_per_example is None or p.cost <= selection.max_cost_per_example)
               and (selection.max_latency_s is None or p.latency_s <= selection.max_latency_s)]
    tie = closest_among_tied(seed_text, contenders, verdict.best, baseline, allowed=allowed, alpha=alpha, seed=seed)
    return Verdict(tie.chosen), tie


def decide_on_test(comparison: PairedComparison) -> Decision:
    """Register only when the whole interval of (candidate − seed) on the test split lies above zero."""
    if comparison.significant_gain:
        return Decision(True, f"test {comparison.baseline:.3f} -> {comparison.candidate:.3f}, {interval(comparison)}")
    return Decision(False, f"no version registered: the best candidate scored {comparison.candidate:.3f} vs baseline "
                           f"{comparison.baseline:.3f} on test, {interval(comparison)} does not lie above 0")


def interval(comparison: PairedComparison) -> str:
    return f"{comparison.confidence:.0%} interval [{comparison.low:+.3f}, {comparison.high:+.3f}]"


def registered_reason(name: str, version: int, created: bool, decision: Decision) -> str:
    verb = "registered" if created else "found the same template already registered as"
    return f"{verb} {name} version {version} and moved alias '{CANDIDATE_ALIAS}' to it: {decision.reason}"


def reference_notes(reference: ReferencePoints | None, versus: Sequence[ConstantTest]) -> list[str]:
    """What a reader must know besides the decision: a winner (the last prompt tested) that is not
    significantly above always answering the majority label."""
    if reference is None or not versus:
        return []
    winner = versus[-1]
    if winner.significant:
        return []
    return [f"the best candidate ({winner.prompt:.3f} on test) is not significantly above always answering "
            f"{reference.majority_label!r} ({winner.constant:.3f}; exact one-sided sign test p = {winner.p_value:.3g}): "
            "on these examples a constant answer that never reads the input does as well"]
