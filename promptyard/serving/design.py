"""The fixed design of an A/B experiment: test levels, and the traffic it needs before it starts.

Family-wise error. An experiment runs, per treatment, one quality test (two-sided: better →
promote, worse → roll back) and one test per guardrail (latency or cost above the control's by more
than the tolerated share → roll back). Any of them firing on an experiment with no real
difference is a false decision, so alpha is split between them (Bonferroni): quality gets
`QUALITY_SHARE` of it, the guardrails share the rest equally, and each is divided by the number of
treatments. The chance of *any* false promotion or rollback is then at most alpha.

Power. With the mSPRT an experiment decides once |θ̂| clears the confidence-sequence half-width
b(V); at a total of n units, θ̂ ≈ N(lift, V(n)) with V(n) = σ²_c / (w_c n) + σ²_t / (w_t n)
(σ² the variance one unit contributes, w the split). `units_needed` is the smallest n at which the
test has decided with the asked probability — at that look alone (earlier looks only add), so it
is a slight overestimate. σ² comes from data when there is some (the control's unit-level
variance) and otherwise from the base rate as p(1 − p), which is the most one unit can contribute
to a rate whatever its number of outcomes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

__all__ = ["QUALITY_SHARE", "Plan", "examples_needed", "levels_text", "plan", "power_at", "split_alpha",
           "units_needed"]

QUALITY_SHARE = 0.8
_MAX_UNITS = 10**10


def split_alpha(alpha: float, treatments: int, guardrails) -> dict[str, float]:
    """The level of each test, per treatment, so that all of them together err at most alpha."""
    treatments, rails = max(int(treatments), 1), list(guardrails)
    if not rails:
        return {"value": round(alpha / treatments, 12)}
    levels = {"value": alpha * QUALITY_SHARE / treatments}
    levels.update({rail: alpha * (1 - QUALITY_SHARE) / (len(rails) * treatments) for rail in rails})
    return {name: round(level, 12) for name, level in levels.items()}


def levels_text(alpha: float, treatments: int, levels: dict[str, float]) -> str:
    tests = "quality" + "".join(f" + {rail}" for rail in levels if rail != "value")
    per = ", ".join(f"{'quality' if name == 'value' else name} {level:.3g}" for name, level in levels.items())
    of = f"{treatments} treatment{'s' if treatments != 1 else ''} × ({tests})"
    return f"family-wise alpha {alpha:g} over {of}, Bonferroni: {per} per treatment"


def _half_width(v: float, tau: float, alpha: float) -> float:
    tau2 = tau * tau
    return math.sqrt(2 * v * (v + tau2) / tau2 * (math.log(1 / alpha) + 0.5 * math.log((v + tau2) / v)))


def power_at(units: float, *, lift: float, var_c: float, var_t: float, share_c: float, share_t: float,
             tau: float, alpha: float) -> float:
    """Probability that the always-valid test has found `lift` at a look after `units` units."""
    v = var_c / (share_c * units) + var_t / (share_t * units)
    b = _half_width(v, tau, alpha)
    normal = NormalDist()
    return normal.cdf((abs(lift) - b) / math.sqrt(v)) + normal.cdf((-abs(lift) - b) / math.sqrt(v))


def units_needed(*, lift: float, var_c: float, var_t: float, share_c: float, share_t: float, tau: float,
                 alpha: float, power: float = 0.8) -> int | None:
    """Fewest units (all versions together) to detect `lift` with probability `power`; None if beyond 10^10."""
    def enough(n: int) -> bool:
        return power_at(n, lift=lift, var_c=var_c, var_t=var_t, share_c=share_c, share_t=share_t,
                        tau=tau, alpha=alpha) >= power

    high = 16
    while not enough(high):
        high *= 2
        if high > _MAX_UNITS:
            return None
    low = high // 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


@dataclass(frozen=True)
class Plan:
    """How many units an experiment needs to detect `lift` over `base_rate` at its quality level."""

    lift: float
    base_rate: float
    source: str  # where the base rate and the unit variance came from
    unit_sd: float
    alpha: float
    power: float
    units: int | None  # all versions together; None: out of reach
    per_version: dict[int, int]
    have: int | None = None  # units with an outcome so far

    def text(self) -> str:
        if self.units is None:
            return (f"a lift of {self.lift:+g} over {self.base_rate:.3g} is out of reach (more than 10^10 units): "
                    "test a larger lift or a wider split")
        split = ", ".join(f"v{v} {n:,}" for v, n in sorted(self.per_version.items()))
        have = f"; {self.have:,} so far ({self.have / self.units:.0%})" if self.have is not None else ""
        return (f"needs ≈{self.units:,} units ({split}) to detect {self.lift:+g} over a base of {self.base_rate:.3g} "
                f"({self.source}) with {self.power:.0%} power at alpha {self.alpha:.3g}{have}")

    def as_dict(self) -> dict:
        return asdict(self)


def plan(weights: dict[int, float], control: int, *, lift: float, tau: float, alpha: float, base_rate: float,
         source: str, unit_var: float | None = None, power: float = 0.8, have: int | None = None) -> Plan:
    """The units an experiment with this split needs; the hardest treatment (smallest share) decides."""
    if unit_var is None:
        if not 0 < base_rate < 1:
            raise ValueError(f"base rate {base_rate} is not a rate in (0, 1): pass the unit variance")
        unit_var = base_rate * (1 - base_rate)
    unit_var = max(unit_var, 1e-12)
    treatments = [v for v in weights if v != control]
    needed = 0
    for version in treatments:
        n = units_needed(lift=lift, var_c=unit_var, var_t=unit_var, share_c=weights[control],
                         share_t=weights[version], tau=tau, alpha=alpha, power=power)
        if n is None:
            needed = None
            break
        needed = max(needed, n)
    per_version = {v: math.ceil(needed * w) for v, w in weights.items()} if needed else {}
    return Plan(lift=lift, base_rate=base_rate, source=source, unit_sd=math.sqrt(unit_var), alpha=alpha,
                power=power, units=needed, per_version=per_version, have=have)


def examples_needed(sd_diff: float, lift: float, confidence: float, power: float = 0.8) -> int | None:
    """Paired examples for a two-sided interval at `confidence` to exclude 0 when B − A = `lift`, with
    probability `power`, given the standard deviation of the per-example differences."""
    if lift == 0:
        return None
    normal = NormalDist()
    z = normal.inv_cdf(1 - (1 - confidence) / 2) + normal.inv_cdf(power)
    return max(2, math.ceil((z * max(sd_diff, 1e-9) / abs(lift)) ** 2))
