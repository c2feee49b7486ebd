"""Unit-level estimates within allocation epochs: the numbers A/B decisions rest on.

Assignment randomises *units* (a user, a session), not outcomes, and an app records several
outcomes per unit; those outcomes are correlated, so treating them as independent overstates the
evidence. Here each arm's mean is the ratio estimator Σ outcomes / Σ count over units, with the
cluster-robust (delta-method) variance

    V(r) = m / (m − 1) · Σ_i (S_i − r·n_i)² / N²        (unit i: S_i outcome sum, n_i outcomes; N = Σ n_i)

so a unit weighs as one randomised draw, however many outcomes it sends.

A unit belongs to the version and the allocation epoch of its *first* exposure (intention to
treat: a unit that a reallocation or a race between processes later served another version still
counts where it was randomised). Weights are constant within an epoch, so within an epoch the
arms are balanced in time and a base rate that drifts cannot favour either; the arms are compared
within each epoch and the epochs combined with fixed-sum weights m_c·m_t / (m_c + m_t) (the
stratified estimator). With one epoch (a fixed split) it is the plain unit-level comparison.

`contrast_path` returns, at every look, the stratified means of both arms and their variances.
Everything is vectorised: one pass over the outcomes, however many looks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Outcomes", "Path", "arm_summary", "contrast_path", "look_points", "unit_means"]


@dataclass(frozen=True)
class Outcomes:
    """Every outcome of an experiment as columns, in arrival order.

    `unit` are integer codes of unit ids; `arm` the version of the unit's first exposure; `epoch`
    the allocation epoch of that exposure; `latency_ms` and `cost` NaN where not recorded."""

    at: np.ndarray
    unit: np.ndarray
    arm: np.ndarray
    epoch: np.ndarray
    value: np.ndarray
    latency_ms: np.ndarray
    cost: np.ndarray

    def __len__(self) -> int:
        return len(self.value)

    @classmethod
    def from_columns(cls, *, unit, arm, value, epoch=None, at=None, latency_ms=None, cost=None) -> Outcomes:
        """Build from arrays (sorted by `at` when given); `unit` may hold any hashable ids."""
        value = np.asarray(value, dtype=float)
        n = len(value)
        at = np.arange(n, dtype=float) if at is None else np.asarray(at, dtype=float)
        order = np.argsort(at, kind="stable")
        _, codes = np.unique(np.asarray(unit), return_inverse=True)

        def column(data, fill):
            return np.full(n, fill, dtype=float) if data is None else np.asarray(data, dtype=float)

        return cls(at=at[order], unit=codes.reshape(-1)[order].astype(np.int64),
                   arm=np.asarray(arm, dtype=np.int64)[order],
                   epoch=(np.zeros(n, np.int64) if epoch is None else np.asarray(epoch, dtype=np.int64))[order],
                   value=value[order], latency_ms=column(latency_ms, np.nan)[order], cost=column(cost, np.nan)[order])

    def metric(self, name: str) -> np.ndarray:
        return {"value": self.value, "latency_ms": self.latency_ms, "cost": self.cost}[name]


@dataclass(frozen=True)
class Path:
    """Stratified arm means and variances at each look (arrays of one value per look)."""

    looks: np.ndarray  # outcomes seen at the look (rows of `Outcomes`, all metrics)
    mean_c: np.ndarray
    var_c: np.ndarray
    mean_t: np.ndarray
    var_t: np.ndarray
    units_c: np.ndarray  # units with at least one outcome of this metric
    units_t: np.ndarray
    outcomes_c: np.ndarray
    outcomes_t: np.ndarray
    strata: np.ndarray  # epochs with at least two units in each arm


def look_points(n: int, every: int) -> np.ndarray:
    """The looks over `n` outcomes: after every `every` outcomes, and after the last one."""
    points = np.arange(every, n + 1, every, dtype=np.int64)
    return points if points.size and points[-1] == n else np.append(points, np.int64(n))


def _before(unit: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the unit's outcome sum and count over its earlier rows."""
    n = len(unit)
    order = np.lexsort((np.arange(n), unit))
    u, v = unit[order], y[order]
    index = np.arange(n)
    starts = np.r_[True, u[1:] != u[:-1]] if n else np.zeros(0, bool)
    first = np.maximum.accumulate(np.where(starts, index, 0))
    running = np.cumsum(v)
    total_before = running - v - (running[first] - v[first])
    s, k = np.empty(n), np.empty(n)
    s[order], k[order] = total_before, index - first
    return s, k


def contrast_path(outcomes: Outcomes, metric: str, control: int, treatment: int, looks: np.ndarray,
                  *, binary: bool) -> Path:
    """Stratified (by entry epoch) unit-level means of `metric` for both arms at each look."""
    y_all = outcomes.metric(metric)
    keep = np.isfinite(y_all) & ((outcomes.arm == control) | (outcomes.arm == treatment))
    rows = np.flatnonzero(keep)
    y, unit = y_all[keep], outcomes.unit[keep]
    treated = (outcomes.arm[keep] == treatment).astype(np.int64)
    epochs, stratum = np.unique(outcomes.epoch[keep], return_inverse=True)
    strata = max(len(epochs), 1)
    s, k = _before(unit, y)
    increments = (y, np.ones_like(y), 2 * s * y + y * y, s + k * y + y, 2 * k + 1, (k == 0).astype(float))
    n_looks, groups = len(looks), 2 * strata
    bin_of = np.searchsorted(looks, rows + 1, side="left")  # row i counts from the first look with L > i
    cell = bin_of * groups + stratum.reshape(-1) * 2 + treated
    size = (n_looks + 1) * groups
    sums = np.stack([np.bincount(cell, weights=inc, minlength=size) for inc in increments])
    sums = np.cumsum(sums.reshape(6, n_looks + 1, strata, 2)[:, :n_looks], axis=1)
    S, N, SS, SN, NN, M = sums  # each (looks, strata, arms)
    safe_n = np.maximum(N, 1.0)
    mean = S / safe_n
    centre = (S + 0.5) / (N + 1.0) if binary else mean  # smoothed for binary: never a zero variance
    resid = np.maximum(SS - 2 * centre * SN + centre * centre * NN, 0.0)
    var = resid / (safe_n * safe_n) * M / np.maximum(M - 1, 1)
    if binary:  # no less than independent outcomes at the two arms' pooled rate: an arm that has seen no event yet
        pooled = (S.sum(-1, keepdims=True) + 0.5) / (N.sum(-1, keepdims=True) + 1.0)  # (a 5% canary at a 3% base
        var = np.maximum(var, pooled * (1 - pooled) / safe_n)  # rate) must not look certain of a zero rate
    var = np.maximum(var, 1e-12 * np.maximum(mean * mean, 1e-6))
    included = (M[..., 0] >= 2) & (M[..., 1] >= 2)
    h = np.where(included, M[..., 0] * M[..., 1] / np.maximum(M[..., 0] + M[..., 1], 1), 0.0)
    total = h.sum(axis=1, keepdims=True)
    w = np.divide(h, total, out=np.zeros_like(h), where=total > 0)
    w2 = w * w
    return Path(
        looks=np.asarray(looks), mean_c=(w * mean[..., 0]).sum(1), var_c=(w2 * var[..., 0]).sum(1),
        mean_t=(w * mean[..., 1]).sum(1), var_t=(w2 * var[..., 1]).sum(1),
        units_c=M[..., 0].sum(1), units_t=M[..., 1].sum(1), outcomes_c=N[..., 0].sum(1), outcomes_t=N[..., 1].sum(1),
        strata=included.sum(1),
    )


def unit_means(outcomes: Outcomes, version: int) -> np.ndarray:
    """Each unit's mean outcome in this arm (one value per unit)."""
    mask = outcomes.arm == version
    units, codes = np.unique(outcomes.unit[mask], return_inverse=True)
    sums = np.bincount(codes, weights=outcomes.value[mask], minlength=len(units))
    counts = np.bincount(codes, minlength=len(units))
    return sums / np.maximum(counts, 1)


def arm_summary(outcomes: Outcomes, version: int, metric: str = "value") -> tuple[float, float, int, int]:
    """(mean, cluster-robust variance of the mean, units, outcomes) of one arm, all epochs pooled."""
    mask = (outcomes.arm == version) & np.isfinite(outcomes.metric(metric))
    y = outcomes.metric(metric)[mask]
    if not y.size:
        return float("nan"), float("inf"), 0, 0
    _, codes = np.unique(outcomes.unit[mask], return_inverse=True)
    sums, counts = np.bincount(codes, weights=y), np.bincount(codes).astype(float)
    mean = float(sums.sum() / counts.sum())
    m = len(sums)
    var = float(((sums - mean * counts) ** 2).sum() / counts.sum() ** 2 * m / (m - 1)) if m > 1 else float("inf")
    return mean, var, m, int(counts.sum())
