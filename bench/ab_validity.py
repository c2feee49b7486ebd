"""Are the A/B decisions valid under real traffic? A seeded simulation through the product's own analysis.

Each simulated experiment: units arrive over the experiment's time, are randomised to control or
treatment with the split of the allocation epoch they arrive in, and send their outcomes over the
time that follows (several outcomes of one unit are correlated: each unit has its own success
propensity, intra-unit correlation 0.2, and its own latency level). Every experiment is analysed
with `promptyard.serving.analyze_outcomes` on the product's default design (alpha 0.05 for the whole
family: quality + latency + cost guardrails), looking after every 100 outcomes.

Scenarios, each with no true difference (false-positive rate: any promotion or rollback) and
with one (power):
- 1, 5 and 12 outcomes per unit, fixed 50/50 split, base rate 0.25;
- reallocation: the treatment's share moves 0.5 → 0.6 → 0.7 → 0.8 over four epochs while the
  base rate drifts 0.25 → 0.35 (what a Thompson reallocation does to a split when the treatment
  looks good early);
- a lognormal latency metric whose treatment is slower by exactly the tolerated +20% (the hardest
  null for the guardrail), 5 outcomes per unit.

    .venv/bin/python bench/ab_validity.py                  # 1,000 experiments per scenario (a few minutes)
    .venv/bin/python bench/ab_validity.py --experiments 200 --scale 0.5

The line `naive` repeats the 12-outcome and reallocation scenarios with every outcome treated as its
own unit in one epoch: the analysis as it would be without unit-level, within-epoch estimation.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np

from promptyard.serving import Experiment, Outcomes, analyze_outcomes

ALPHA = 0.05
LIFT = 0.05  # +5 points of the success rate
ICC = 0.2
SLOWER = 1.5  # treatment latency for the guardrail's power: +50%, well above the tolerated +20%


@dataclass(frozen=True)
class Scenario:
    name: str
    outcomes_per_unit: int = 1
    shares: tuple[float, ...] = (0.5,)  # treatment share in each epoch (epochs split the arrival time equally)
    base: tuple[float, float] = (0.25, 0.25)  # base rate at the start and at the end (linear drift)
    latency_ratio: float | None = None  # treatment latency / control latency; None: no latency recorded
    units: int = 4000  # units per experiment (× --scale)

    @property
    def guardrail(self) -> bool:
        return self.latency_ratio is not None


SCENARIOS = (
    Scenario("1 outcome per unit", 1, units=8000),
    Scenario("5 outcomes per unit", 5),
    Scenario("12 outcomes per unit", 12),
    Scenario("reallocation 0.5→0.8, base 0.25→0.35", 1, shares=(0.5, 0.6, 0.7, 0.8), base=(0.25, 0.35), units=20000),
    Scenario("lognormal latency at tolerance (+20%)", 5, latency_ratio=1.2),
    Scenario("5% canary at a 3% base rate", 1, shares=(0.05,), base=(0.03, 0.03), units=40000),
)


def design() -> Experiment:
    """The product's default design (as `promptyard ab start` stores it), for versions 1 (control) and 2."""
    return Experiment(id="sim#0", prompt="sim", alias="production", control=1, weights={1: 0.5, 2: 0.5},
                      started_at=0.0, alpha=ALPHA, min_samples=100, mixture_sd=0.05, lift=LIFT, look_every=100)


def simulate(scenario: Scenario, rng: np.random.Generator, scale: float = 1.0, *, lift: float = 0.0,
             latency_ratio: float | None = None, unit_level: bool = True) -> Outcomes:
    """One experiment's outcomes (columns in arrival order)."""
    units = max(int(scenario.units * scale), 2)
    arrival = np.sort(rng.random(units))
    epochs = len(scenario.shares)
    epoch = np.minimum((arrival * epochs).astype(np.int64), epochs - 1)
    treated = rng.random(units) < np.asarray(scenario.shares)[epoch]
    m = scenario.outcomes_per_unit
    gaps = rng.exponential(0.02, (units, m))
    gaps[:, 0] = 0.0
    times = arrival[:, None] + np.cumsum(gaps, axis=1)
    start, end = scenario.base
    kappa = 1 / ICC - 1
    propensity = rng.beta(start * kappa, (1 - start) * kappa, units)
    drift = (end - start) * np.clip(times, 0, 1)
    p = np.clip(propensity[:, None] + drift + lift * treated[:, None], 0, 1)
    value = (rng.random((units, m)) < p).astype(float)
    if scenario.guardrail:
        ratio = latency_ratio if latency_ratio is not None else scenario.latency_ratio
        level = rng.normal(0.0, 0.3, units)[:, None]
        latency = np.exp(np.log(300.0) + level + rng.normal(0.0, 0.6, (units, m)))
        latency = latency * np.where(treated, ratio, 1.0)[:, None]
    else:
        latency = np.full((units, m), np.nan)
    order = np.argsort(times.ravel(), kind="stable")
    n = units * m
    unit = np.repeat(np.arange(units, dtype=np.int64), m)[order] if unit_level else np.arange(n, dtype=np.int64)
    return Outcomes(at=times.ravel()[order], unit=unit, arm=np.repeat(np.where(treated, 2, 1), m)[order],
                    epoch=np.repeat(epoch, m)[order] if unit_level else np.zeros(n, np.int64),
                    value=value.ravel()[order], latency_ms=latency.ravel()[order], cost=np.full(n, np.nan))


@dataclass(frozen=True)
class Rate:
    hits: int
    runs: int

    @property
    def rate(self) -> float:
        return self.hits / self.runs

    @property
    def se(self) -> float:
        return math.sqrt(max(self.rate * (1 - self.rate), 1e-12) / self.runs)

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson score interval."""
        n, p = self.runs, self.rate
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def text(self) -> str:
        low, high = self.interval()
        return f"{self.rate:.3f} [{low:.3f}, {high:.3f}]"


def false_positives(scenario: Scenario, experiments: int, seed: int, *, scale: float = 1.0,
                    unit_level: bool = True) -> Rate:
    """Experiments with no true difference that ended in a promotion or a rollback."""
    rng, experiment, hits = np.random.default_rng(seed), design(), 0
    for _ in range(experiments):
        outcomes = simulate(scenario, rng, scale, unit_level=unit_level)
        hits += analyze_outcomes(experiment, outcomes, {}).decision in ("promote", "rollback")
    return Rate(hits, experiments)


def power(scenario: Scenario, experiments: int, seed: int, *, scale: float = 1.0) -> Rate:
    """Experiments with a true difference that found it: +5 points promoted, or +50% latency rolled back."""
    rng, experiment, hits = np.random.default_rng(seed), design(), 0
    for _ in range(experiments):
        if scenario.guardrail:
            decision = analyze_outcomes(experiment, simulate(scenario, rng, scale, latency_ratio=SLOWER), {})
            hits += decision.decision == "rollback" and "latency_ms" in decision.reason
        else:
            decision = analyze_outcomes(experiment, simulate(scenario, rng, scale, lift=LIFT), {})
            hits += (decision.decision, decision.winner) == ("promote", 2)
    return Rate(hits, experiments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=1000, help="experiments per scenario")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's units by this")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"{args.experiments} experiments per scenario, a look every 100 outcomes, alpha {ALPHA} (family-wise: "
          f"quality + latency + cost), seed {args.seed}\n")
    print(f"{'scenario':<40}{'units':>7}{'false positives [95% MC]':>26}{'power [95% MC]':>24}  {'power at':<12}"
          f"{'time':>6}")
    for index, scenario in enumerate(SCENARIOS):
        started = time.perf_counter()
        fp = false_positives(scenario, args.experiments, args.seed + index, scale=args.scale)
        found = power(scenario, args.experiments, args.seed + 100 + index, scale=args.scale)
        what = f"+{SLOWER - 1:.0%} latency" if scenario.guardrail else f"+{LIFT * 100:.0f} points"
        flag = "" if fp.rate <= ALPHA + 1.96 * fp.se else "  ABOVE ALPHA"
        print(f"{scenario.name:<40}{int(scenario.units * args.scale):>7}{fp.text():>26}{found.text():>24}  "
              f"{what:<12}{time.perf_counter() - started:>5.0f}s{flag}")
    print()
    for index in (2, 3):
        scenario = SCENARIOS[index]
        naive = false_positives(scenario, args.experiments, args.seed + index, scale=args.scale, unit_level=False)
        print(f"{'naive: ' + scenario.name:<47}{naive.text():>26}   (outcomes as independent, one epoch)")
    print(f"\ngoal: every false-positive rate <= {ALPHA} within Monte-Carlo error; power reported")


if __name__ == "__main__":
    main()
