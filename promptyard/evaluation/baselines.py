"""Reference points: what a prompt must beat before its score means anything.

For a labelled dataset, two predictors that never read the input, scored with the dataset's own
metric on the same rows as the prompt:

- the majority label: always answer the most frequent label of the train split (the only split a
  constant predictor may learn from; ties go to the label listed first in the card);
- a uniformly random label: its expected score, computed exactly (the mean over the label set).

`versus_constant` tests whether a prompt beats a constant predictor on the same rows: an exact
one-sided sign test on the paired examples (examples the prompt gets right and the constant gets
wrong, against the reverse). With 0/1 scores this is McNemar's exact test, one-sided.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from promptyard.evaluation.data import DatasetCard
from promptyard.evaluation.metrics import Metric

__all__ = ["ReferencePoints", "ConstantTest", "reference_points", "constant_scores", "versus_constant",
           "against_reference"]


@dataclass(frozen=True)
class ReferencePoints:
    """The majority label's and a uniformly random label's score on some rows."""

    majority_label: str
    majority: float  # mean score of always answering `majority_label`
    random: float  # expected mean score of a label drawn uniformly from the label set
    labels: int  # size of the label set
    n: int  # rows

    def describe(self) -> str:
        return (f"majority label {self.majority_label!r} {self.majority:.3f}, uniform random over {self.labels} "
                f"labels {self.random:.3f}")


@dataclass(frozen=True)
class ConstantTest:
    """A prompt against a constant predictor on the same rows (exact one-sided sign test)."""

    label: str  # what the constant predictor answers
    prompt: float  # the prompt's mean score on the paired rows
    constant: float  # the constant's mean score on the same rows
    wins: int  # rows the prompt scores above the constant
    losses: int  # rows the constant scores above the prompt
    p_value: float  # P(at least `wins` of `wins + losses`) when neither is better
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def describe(self, who: str = "the prompt") -> str:
        verdict = "significantly above" if self.significant else "NOT significantly above"
        return (f"{who} {self.prompt:.3f} is {verdict} always answering {self.label!r} ({self.constant:.3f}): "
                f"{self.wins} examples right where the constant is wrong, {self.losses} the reverse, exact one-sided "
                f"sign test p = {self.p_value:.3g} (alpha {self.alpha:g})")


def _score(metric: Metric, answer: str, gold) -> float:
    return float(metric.score(metric.parse(answer), str(gold)))


def _cheap(metric: Metric) -> bool:
    """A metric that scores without calling a model (a judge would spend calls on predictors of no use)."""
    return metric.name != "llm_judge"


def reference_points(card: DatasetCard, train: Sequence[dict], rows: Sequence[dict],
                     metric: Metric) -> ReferencePoints | None:
    """The reference points on `rows`, or None for a dataset without a label set (or a judged metric)."""
    if not card.labels or not rows or not _cheap(metric):
        return None
    counts = Counter(str(row[card.label_field]) for row in train)
    label = max(card.labels, key=lambda name: (counts.get(name, 0), -card.labels.index(name)))
    constant = constant_scores(label, rows, card, metric)
    random = sum(_score(metric, name, row[card.label_field]) for row in rows for name in card.labels) / (
        len(rows) * len(card.labels))
    return ReferencePoints(label, sum(constant) / len(constant), random, len(card.labels), len(rows))


def constant_scores(label: str, rows: Sequence[dict], card: DatasetCard, metric: Metric) -> list[float]:
    """The score of always answering `label`, row by row."""
    return [_score(metric, label, row[card.label_field]) for row in rows]


def versus_constant(scores: Sequence[float | None], constant: Sequence[float], label: str, *,
                    alpha: float = 0.05) -> ConstantTest:
    """Does the prompt (`scores`, None for a failed request) beat the constant predictor on the same rows?"""
    from scipy.stats import binomtest

    if len(scores) != len(constant):
        raise ValueError("versus_constant needs one constant score per prompt score")
    pairs = [(s, c) for s, c in zip(scores, constant, strict=True) if s is not None]
    wins = sum(1 for s, c in pairs if s > c)
    losses = sum(1 for s, c in pairs if s < c)
    p_value = 1.0 if wins + losses == 0 else float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)
    n = max(1, len(pairs))
    return ConstantTest(label, sum(s for s, _ in pairs) / n, sum(c for _, c in pairs) / n, wins, losses, p_value,
                        alpha)


def against_reference(card: DatasetCard, train: Sequence[dict], rows: Sequence[dict], metric: Metric,
                      scores: Sequence[Sequence[float | None]], *,
                      alpha: float = 0.05) -> tuple[ReferencePoints | None, list[ConstantTest]]:
    """The reference points on `rows` and each prompt's scores (row by row) tested against the majority label."""
    points = reference_points(card, train, rows, metric)
    if points is None:
        return None, []
    constant = constant_scores(points.majority_label, rows, card, metric)
    return points, [versus_constant(s, constant, points.majority_label, alpha=alpha) for s in scores]
