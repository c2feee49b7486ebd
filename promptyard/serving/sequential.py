"""Sequential tests that stay valid however often you look: mixture SPRT (mSPRT).

For the difference θ = mean(treatment) − mean(control) with estimate θ̂ and variance V of the
estimate, the mixture likelihood ratio against H0: θ = θ0 under a N(θ0, τ²) mixing distribution is

    Λ = sqrt(V / (V + τ²)) · exp(τ² (θ̂ − θ0)² / (2 V (V + τ²)))

(Johari, Pekelis, Walsh: "Always valid inference", 2017). Λ is a test martingale under H0, so
rejecting the first time Λ ≥ 1/α keeps the false-positive rate ≤ α under continuous monitoring.
The always-valid p-value is min(1, 1/max Λ) over every look so far, and the always-valid
confidence sequence is the set of θ0 that Λ has not rejected.

`sequential_comparison` evaluates the statistic after every observation (in arrival order), so the
answer does not depend on when, or how often, someone ran the analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from promptyard.evaluation import is_binary

__all__ = ["SequentialResult", "sequential_comparison", "thompson_weights"]


@dataclass(frozen=True)
class SequentialResult:
    control_mean: float
    treatment_mean: float
    diff: float
    low: float  # always-valid confidence sequence of the difference at the last look
    high: float
    p_value: float  # always-valid p-value of H0: diff = 0
    n_control: int
    n_treatment: int
    alpha: float
    looks: int  # observations at which the statistic was evaluated

    @property
    def better(self) -> bool:
        return self.low > 0

    @property
    def worse(self) -> bool:
        return self.high < 0


def _cumulative(values: np.ndarray, mask: np.ndarray, binary: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running (count, mean, variance of one observation) of the masked values, at every index."""
    n = np.cumsum(mask)
    total = np.cumsum(np.where(mask, values, 0.0))
    squares = np.cumsum(np.where(mask, values * values, 0.0))
    safe_n = np.maximum(n, 1)
    mean = total / safe_n
    if binary:  # smoothed Bernoulli variance: never zero, even when every outcome so far agrees
        p = (total + 0.5) / (n + 1.0)
        var = p * (1 - p)
    else:
        var = np.maximum(squares / safe_n - mean * mean, 0.0) * safe_n / np.maximum(n - 1, 1)
        var = np.maximum(var, 1e-12)
    return n, mean, var


def sequential_comparison(
    control: Sequence[float],
    treatment: Sequence[float],
    *,
    order: Sequence[float] | None = None,
    alpha: float = 0.05,
    mixture_sd: float | None = None,
    min_samples: int = 100,
    theta0: float = 0.0,
) -> SequentialResult:
    """mSPRT of treatment vs control over observations arriving in time order.

    `order` gives each observation's arrival time (control first, then treatment); without it,
    observations alternate in the order given. Looks start once both arms have `min_samples`.
    `mixture_sd` (τ) is the effect size the test is most sensitive to; default 0.1 for binary
    outcomes, else 0.5 × the pooled standard deviation.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    c = np.asarray(control, dtype=float)
    t = np.asarray(treatment, dtype=float)
    binary = is_binary(list(c) + list(t))
    if order is None:
        times = np.concatenate([np.arange(len(c)) * 2.0, np.arange(len(t)) * 2.0 + 1.0])
    else:
        times = np.asarray(order, dtype=float)
        if len(times) != len(c) + len(t):
            raise ValueError("order needs one arrival time per observation (control first, then treatment)")
    values = np.concatenate([c, t])
    is_treatment = np.concatenate([np.zeros(len(c), bool), np.ones(len(t), bool)])
    sort = np.argsort(times, kind="stable")
    values, is_treatment = values[sort], is_treatment[sort]

    n_c, mean_c, var_c = _cumulative(values, ~is_treatment, binary)
    n_t, mean_t, var_t = _cumulative(values, is_treatment, binary)
    if mixture_sd is None:
        pooled = float(np.std(values)) if len(values) > 1 else 1.0
        mixture_sd = 0.1 if binary else max(0.5 * pooled, 1e-6)
    tau2 = mixture_sd**2

    ready = (n_c >= min_samples) & (n_t >= min_samples)
    last_c, last_t = float(mean_c[-1]) if len(c) else float("nan"), float(mean_t[-1]) if len(t) else float("nan")
    if not ready.any():
        return SequentialResult(last_c, last_t, last_t - last_c, float("-inf"), float("inf"), 1.0,
                                len(c), len(t), alpha, 0)
    v = var_c[ready] / n_c[ready] + var_t[ready] / n_t[ready]
    diff = mean_t[ready] - mean_c[ready]
    log_lambda = 0.5 * np.log(v / (v + tau2)) + tau2 * (diff - theta0) ** 2 / (2 * v * (v + tau2))
    p_value = float(min(1.0, np.exp(-np.max(log_lambda))))
    # confidence sequence: intersection over looks of {θ0 : Λ(θ0) < 1/α}
    half = np.sqrt(2 * v * (v + tau2) / tau2 * (np.log(1 / alpha) + 0.5 * np.log((v + tau2) / v)))
    low, high = float(np.max(diff - half)), float(np.min(diff + half))
    return SequentialResult(last_c, last_t, float(diff[-1]), low, high, p_value, len(c), len(t), alpha,
                            int(ready.sum()))


def thompson_weights(arms: dict[int, Sequence[float]], *, floor: float = 0.05, draws: int = 20000,
                     seed: int = 0) -> dict[int, float]:
    """Probability each arm is best under its posterior (Beta for binary, normal otherwise),
    with every arm kept at `floor` or more so none starves."""
    if not arms:
        raise ValueError("thompson_weights needs at least one arm")
    if not 0 <= floor * len(arms) <= 1:
        raise ValueError(f"floor {floor} is too large for {len(arms)} arms")
    rng = np.random.default_rng(seed)
    binary = is_binary([v for values in arms.values() for v in values])
    samples = []
    for values in arms.values():
        x = np.asarray(values, dtype=float)
        if binary:
            samples.append(rng.beta(1 + x.sum(), 1 + len(x) - x.sum(), draws))
        else:
            sd = (x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 1e6
            samples.append(rng.normal(x.mean() if len(x) else 0.0, sd, draws))
    best = np.argmax(np.vstack(samples), axis=0)
    share = np.bincount(best, minlength=len(arms)) / draws
    weights = floor + (1 - floor * len(arms)) * share
    return {arm: float(w) for arm, w in zip(arms, weights / weights.sum(), strict=True)}
