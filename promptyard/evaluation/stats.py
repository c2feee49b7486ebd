"""Statistics for comparing two prompts on the same examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedComparison", "paired_bootstrap", "McNemar", "mcnemar", "mean_interval", "is_binary"]


def is_binary(values: Sequence[float]) -> bool:
    """True when every score is 0 or 1 (and there is at least one)."""
    return len(values) > 0 and all(v in (0.0, 1.0) for v in values)


@dataclass(frozen=True)
class PairedComparison:
    baseline: float
    candidate: float
    diff: float
    low: float
    high: float
    confidence: float
    n: int

    @property
    def significant_gain(self) -> bool:
        """The whole interval of (candidate − baseline) lies above zero."""
        return self.low > 0

    def as_metrics(self, prefix: str = "test_") -> dict[str, float]:
        return {
            f"{prefix}baseline": self.baseline,
            f"{prefix}candidate": self.candidate,
            f"{prefix}diff": self.diff,
            f"{prefix}diff_low": self.low,
            f"{prefix}diff_high": self.high,
        }


def paired_bootstrap(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> PairedComparison:
    """Percentile bootstrap interval of mean(candidate − baseline), resampling examples."""
    if len(baseline) != len(candidate) or not baseline:
        raise ValueError("paired_bootstrap needs two non-empty score lists of the same length")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    n = len(baseline)
    diffs = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return PairedComparison(
        baseline=float(np.mean(baseline)),
        candidate=float(np.mean(candidate)),
        diff=float(diffs.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        n=n,
    )


@dataclass(frozen=True)
class McNemar:
    fixed: int  # baseline wrong, candidate right
    broken: int  # baseline right, candidate wrong
    p_value: float


def mcnemar(baseline: Sequence[float], candidate: Sequence[float]) -> McNemar:
    """Exact two-sided McNemar test on paired binary outcomes (scores rounded to 0/1)."""
    from scipy.stats import binomtest

    if len(baseline) != len(candidate):
        raise ValueError("mcnemar needs two score lists of the same length")
    fixed = sum(1 for b, c in zip(baseline, candidate, strict=True) if round(b) == 0 and round(c) == 1)
    broken = sum(1 for b, c in zip(baseline, candidate, strict=True) if round(b) == 1 and round(c) == 0)
    p_value = 1.0 if fixed + broken == 0 else float(binomtest(fixed, fixed + broken, 0.5).pvalue)
    return McNemar(fixed, broken, p_value)


def mean_interval(scores: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000,
                  seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean score."""
    if not scores:
        raise ValueError("mean_interval needs at least one score")
    values = np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(values.mean()), float(low), float(high)
