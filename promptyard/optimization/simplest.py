"""A rewrite must earn its words: among the candidates tied with the best, the smallest edit wins.

On validation the best candidate by the selection policy is often not better than others beyond
the noise of a hundred examples, and a long rewrite that wins by chance is harder to review and
no better. So every candidate that also beats the seed is compared with the best on the same
validation examples (paired: McNemar's exact test for 0/1 scores, otherwise a paired bootstrap
interval); those not significantly worse are tied with it, and among them the one closest to the
seed wins: fewest words changed in the template, then no change of output format, then the higher
validation score, then the earlier candidate.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from promptyard.evaluation import is_binary, mcnemar, paired_bootstrap

__all__ = ["TieBreak", "Contender", "edit_size", "closest_among_tied", "TIE_RULE"]

TIE_RULE = ("among the candidates that beat the seed on validation and are statistically tied with the best there "
            "(paired on the same examples: McNemar's exact test for 0/1 scores, else a paired bootstrap interval), the "
            "one closest to the seed wins (fewest words changed, then no change of output format, then the higher "
            "validation score)")

_TOKEN = re.compile(r"\{\{\s*\w+\s*\}\}|\w+|[^\w\s]")


def edit_size(seed: str, candidate: str) -> int:
    """Words (and punctuation marks) inserted, deleted or replaced to turn `seed` into `candidate`."""
    a, b = _TOKEN.findall(seed), _TOKEN.findall(candidate)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal")


@dataclass(frozen=True)
class Contender:
    """One candidate as the rule sees it: its text, whether its output format differs from the seed's, its
    validation quality and its score on each validation example (None: the request failed)."""

    text: str
    format_changed: bool
    quality: float
    scores: Sequence[float | None]


@dataclass(frozen=True)
class TieBreak:
    """Which candidate wins on validation, and why."""

    best: int  # the best by the selection policy
    chosen: int  # the closest to the seed among those tied with the best
    tied: list[int]  # every candidate tied with the best (the best included), in order
    edits: dict[int, int] = field(default_factory=dict)  # words changed, per tied candidate
    p_values: dict[int, float | None] = field(default_factory=dict)  # McNemar against the best (None: not 0/1)
    rule: str = TIE_RULE

    @property
    def changed_choice(self) -> bool:
        return self.chosen != self.best

    def renumbered(self, numbers: Sequence[int]) -> TieBreak:
        """The same tie-break with candidates named by `numbers[i]` instead of their position i."""
        return TieBreak(numbers[self.best], numbers[self.chosen], [numbers[i] for i in self.tied],
                        {numbers[i]: e for i, e in self.edits.items()}, {numbers[i]: p for i, p in self.p_values.items()},
                        self.rule)

    def summary(self) -> str:
        """One line: which candidate was chosen and why (candidates by the numbers this tie-break holds)."""
        others = len(self.tied) - 1
        if not self.changed_choice:
            return (f"candidate {self.best} is the best on validation and the closest to the seed among the "
                    f"{others + 1} tied with it ({self.edits[self.best]} words changed)" if others else
                    f"candidate {self.best} is the best on validation; no other candidate is tied with it")
        p_value = self.p_values.get(self.chosen)
        versus = f"McNemar p = {p_value:.3g}" if p_value is not None else "paired bootstrap"
        return (f"candidate {self.chosen} goes to the test split: tied with the best on validation, candidate "
                f"{self.best} ({versus}), it changes {self.edits[self.chosen]} words of the seed where the best "
                f"changes {self.edits[self.best]}; the smallest edit wins among tied candidates")

    def markdown(self, quality: dict[int, float], formats: dict[int, str]) -> list[str]:
        """The rule, and the tied candidates with their validation score, p-value and edit size."""
        rows = [f"| {i} | {quality[i]:.3f} | "
                f"{'best' if i == self.best else ('–' if self.p_values.get(i) is None else f'{self.p_values[i]:.3g}')} "
                f"| {self.edits[i]} | {formats.get(i, 'free')} | {'**chosen**' if i == self.chosen else ''} |"
                for i in self.tied]
        return ["## How the winner was chosen", "", f"Rule: {self.rule}; a rewrite must earn its words.", "",
                "| candidate | validation | p vs best | words changed | output format | |", "|---|---|---|---|---|---|",
                *rows, "", self.summary() + ".", ""]


def _tied_with(best: Contender, other: Contender, alpha: float, seed: int) -> tuple[bool, float | None]:
    """Whether `other` is not significantly worse than `best` on the examples both answered; and McNemar's
    two-sided p-value (None for scores other than 0/1, decided by the paired bootstrap interval)."""
    pairs = [(b, o) for b, o in zip(best.scores, other.scores, strict=True) if b is not None and o is not None]
    if not pairs:
        return False, None
    before, after = [b for b, _ in pairs], [o for _, o in pairs]
    if is_binary(before + after):
        p_value = mcnemar(before, after).p_value
        return p_value >= alpha, p_value
    interval = paired_bootstrap(before, after, confidence=1 - alpha, seed=seed)
    return interval.high >= 0, None


def closest_among_tied(seed_text: str, contenders: Sequence[Contender], best: int, baseline: float, *,
                       allowed: Sequence[int] | None = None, alpha: float = 0.05, seed: int = 0) -> TieBreak:
    """The candidate to take to the test split: the closest to the seed among those tied with `best`
    (only candidates in `allowed`, the ones within the cost and latency budgets, when given)."""
    tied, p_values = [best], {}
    for i, other in enumerate(contenders):
        if i == best or other.quality <= baseline or (allowed is not None and i not in allowed):
            continue
        same, p_value = _tied_with(contenders[best], other, alpha, seed)
        if same:
            tied.append(i)
            p_values[i] = p_value
    tied.sort()
    edits = {i: edit_size(seed_text, contenders[i].text) for i in tied}
    chosen = min(tied, key=lambda i: (edits[i], contenders[i].format_changed, -contenders[i].quality, i))
    return TieBreak(best, chosen, tied, edits, p_values)
