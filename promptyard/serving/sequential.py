"""Sequential tests that stay valid however often you look: mixture SPRT (mSPRT).

For a contrast θ with estimate θ̂ and variance V of the estimate, the mixture likelihood ratio
against H0: θ = θ0 under a N(θ0, τ²) mixing distribution is

    Λ = sqrt(V / (V + τ²)) · exp(τ² (θ̂ − θ0)² / (2 V (V + τ²)))

(Johari, Pekelis, Walsh: "Always valid inference", 2017). Λ is a test martingale under H0, so
rejecting the first time Λ ≥ 1/α keeps the false-positive rate ≤ α under continuous monitoring.
The always-valid p-value is min(1, 1/max Λ) over every look so far, and the always-valid
confidence sequence is the set of θ0 that Λ has not rejected at any look.

τ (the mixing standard deviation) must be fixed before the data is seen: a τ taken from the
sample at each look uses data from the future of the earlier looks. The A/B analysis takes it
from the experiment's stored design (`Experiment.mixture_sd`); `sequential_comparison` below
takes it as an argument or from the observations before its first look.

`msprt` is the statistic on any path of (θ̂, V); `sequential_comparison` is the plain two-sample
test of independent observations (one observation per unit, fixed allocation); the A/B analysis
uses `units.contrast_path` (unit-level, within allocation epochs) and then `msprt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from promptyard.evaluation import is_binary

__all__ = ["SequentialResult", "msprt", "sequential_comparison", "thompson_weights"]


@dataclass(frozen=True)
class SequentialResult:
    control_mean: float
    treatment_mean: float
    diff: float
    low: float  # always-valid confidence sequence of the difference at the last look
    high: float
    p_value: float  # always-valid p-value of H0: diff = theta0
    n_control: int
    n_treatment: int
    alpha: float
    looks: int  # looks at which the statistic was evaluated

    @property
    def better(self) -> bool:
        return self.low > 0

    @property
    def worse(self) -> bool:
        return self.high < 0


def msprt(diff: np.ndarray, var: np.ndarray, *, tau: float, alpha: float,
          theta0: float = 0.0) -> tuple[float, float, float]:
    """(p-value of H0: θ = theta0, low, high of the confidence sequence) over a path of looks.

    `diff` and `var` hold θ̂ and its variance at each look, in time order; `tau` is the mixing
    standard deviation fixed before the first look."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if not tau > 0:
        raise ValueError(f"the mixing standard deviation must be > 0, got {tau}")
    diff, v = np.asarray(diff, dtype=float), np.maximum(np.asarray(var, dtype=float), 1e-300)
    if diff.size == 0:
        return 1.0, float("-inf"), float("inf")
    tau2 = tau * tau
    log_lambda = 0.5 * np.log(v / (v + tau2)) + tau2 * (diff - theta0) ** 2 / (2 * v * (v + tau2))
    p_value = float(min(1.0, np.exp(-np.max(log_lambda))))
    half = np.sqrt(2 * v * (v + tau2) / tau2 * (np.log(1 / alpha) + 0.5 * np.log((v + tau2) / v)))
    return p_value, float(np.max(diff - half)), float(np.min(diff + half))


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
    """mSPRT of treatment vs control over independent observations arriving in time order.

    `order` gives each observation's arrival time (control first, then treatment); without it,
    observations alternate in the order given. Looks start once both arms have `min_samples`.
    `mixture_sd` (τ) is the effect size the test is most sensitive to; default 0.1 for binary
    outcomes, else 0.5 × the pooled standard deviation of the observations before the first look
    (never of later ones).
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
    ready = (n_c >= min_samples) & (n_t >= min_samples)
    last_c, last_t = float(mean_c[-1]) if len(c) else float("nan"), float(mean_t[-1]) if len(t) else float("nan")
    if not ready.any():
        return SequentialResult(last_c, last_t, last_t - last_c, float("-inf"), float("inf"), 1.0,
                                len(c), len(t), alpha, 0)
    if mixture_sd is None:
        first = int(np.argmax(ready))  # the first look: τ from what was known then
        before = values[: first + 1]
        mixture_sd = 0.1 if binary else max(0.5 * float(np.std(before)), 1e-6)
    v = var_c[ready] / n_c[ready] + var_t[ready] / n_t[ready]
    diff = mean_t[ready] - mean_c[ready]
    p_value, low, high = msprt(diff, v, tau=mixture_sd, alpha=alpha, theta0=theta0)
    return SequentialResult(last_c, last_t, float(diff[-1]), low, high, p_value, len(c), len(t), alpha,
                            int(ready.sum()))


def thompson_weights(arms: dict[int, Sequence[float]], *, floor: float = 0.05, draws: int = 20000,
                     seed: int = 0) -> dict[int, float]:
    """Probability each arm is best under its posterior (Beta for binary, normal otherwise),
    with every arm kept at `floor` or more so none starves. Pass one value per unit (its mean
    outcome) when units have several outcomes: outcomes of one unit are not independent."""
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
