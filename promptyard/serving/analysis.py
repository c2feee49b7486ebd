"""Analyse an A/B experiment: per-version metrics, sequential tests, the decision, a plot.

Every test is an mSPRT (always valid however often the analysis runs) on unit-level estimates
within allocation epochs (`units`), with the design stored at the experiment's start: the mixing
standard deviations, the guardrail tolerances and the level of each test (`design.split_alpha`:
quality and guardrails share alpha, so the chance of any false promotion or rollback stays ≤
alpha). The tests look after every `look_every` outcomes and after the last one.

- quality: the difference of mean outcome, treatment − control; better → promote (the best such
  treatment), every treatment worse → roll back;
- guardrails: the relative increase of latency / cost over the control; a treatment whose increase
  is significantly above its tolerance rolls the experiment back.

Otherwise the experiment continues (or ends inconclusive at `max_outcomes`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from promptyard.serving.design import Plan, levels_text, plan
from promptyard.serving.events import Observation
from promptyard.serving.experiments import Experiment
from promptyard.serving.sequential import msprt, thompson_weights
from promptyard.serving.units import Outcomes, arm_summary, contrast_path, look_points, unit_means

__all__ = ["VersionSummary", "Analysis", "analyze", "analyze_outcomes", "outcomes_of", "plan_before_start",
           "plot_over_time"]


@dataclass(frozen=True)
class VersionSummary:
    version: int
    weight: float
    exposures: int
    outcomes: int
    mean: float
    low: float  # 95% unit-level interval of the mean (fixed-sample, for reading; decisions use the mSPRT)
    high: float
    mean_latency_ms: float | None
    mean_cost: float | None
    units: int = 0  # units with at least one outcome, counted in the version of their first exposure


@dataclass
class Analysis:
    experiment: str
    decision: str  # continue | promote | rollback | inconclusive
    winner: int | None
    reason: str
    versions: list[VersionSummary]
    comparisons: dict[int, dict[str, dict]] = field(default_factory=dict)  # treatment -> metric -> result
    new_weights: dict[int, float] | None = None
    levels: dict[str, float] = field(default_factory=dict)  # the level of each test, per treatment
    design: str = ""  # the family-wise error statement
    plan: dict | None = None  # units needed to detect the experiment's lift, from the data so far
    epochs: int = 1  # allocation epochs the units entered in

    @property
    def decided(self) -> bool:
        return self.decision != "continue"

    def as_dict(self) -> dict:
        return asdict(self)


def outcomes_of(observations: list[Observation]) -> Outcomes:
    """Observations as columns; an observation without a unit id is its own unit."""
    units = [o.unit if o.unit is not None else f"\x00{i}" for i, o in enumerate(observations)]
    return Outcomes.from_columns(
        unit=units, arm=[o.version for o in observations], value=[o.value for o in observations],
        epoch=[o.epoch for o in observations], at=[o.at for o in observations],
        latency_ms=[np.nan if o.latency_ms is None else o.latency_ms for o in observations],
        cost=[np.nan if o.cost is None else o.cost for o in observations])


def _finite_mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def _summary(outcomes: Outcomes, version: int, weight: float, exposures: int) -> VersionSummary:
    mean, var, units, count = arm_summary(outcomes, version)
    half = 1.96 * float(np.sqrt(var)) if units > 1 else float("inf")
    mask = outcomes.arm == version
    return VersionSummary(version=version, weight=weight, exposures=exposures, outcomes=count, mean=mean,
                          low=mean - half, high=mean + half, mean_latency_ms=_finite_mean(outcomes.latency_ms[mask]),
                          mean_cost=_finite_mean(outcomes.cost[mask]), units=units)


def _contrast(experiment: Experiment, outcomes: Outcomes, treatment: int, metric: str, looks: np.ndarray,
              binary: bool) -> dict | None:
    """One sequential test of `treatment` against the control on `metric`, as a plain dict."""
    path = contrast_path(outcomes, metric, experiment.control, treatment, looks, binary=binary and metric == "value")
    if not path.units_c[-1] or not path.units_t[-1]:
        return None
    ready = (path.units_c >= experiment.min_samples) & (path.units_t >= experiment.min_samples) & (path.strata > 0)
    alpha = experiment.levels[metric]
    if metric == "value":
        scale, threshold, tau = "difference", 0.0, experiment.quality_sd
        theta = path.mean_t - path.mean_c
        var = path.var_t + path.var_c
    else:
        scale, threshold, tau = "ratio", experiment.guardrails[metric], experiment.guardrail_mixture_sd
        ready &= path.mean_c > 0
        base = np.where(path.mean_c > 0, path.mean_c, 1.0)
        theta = path.mean_t / base - 1  # relative increase over the control
        var = path.var_t / base**2 + path.mean_t**2 * path.var_c / base**4
    p_value, low, high = msprt(theta[ready], var[ready], tau=tau, alpha=alpha, theta0=threshold)
    return {"metric": metric, "scale": scale, "control_mean": float(path.mean_c[-1]),
            "treatment_mean": float(path.mean_t[-1]), "diff": float(theta[-1]), "low": low, "high": high,
            "p_value": p_value, "n_control": int(path.units_c[-1]), "n_treatment": int(path.units_t[-1]),
            "outcomes_control": int(path.outcomes_c[-1]), "outcomes_treatment": int(path.outcomes_t[-1]),
            "alpha": alpha, "looks": int(ready.sum()), "threshold": threshold, "mixture_sd": tau,
            "epochs": int(path.strata[-1])}


def analyze(experiment: Experiment, observations: list[Observation], exposures: dict[int, int]) -> Analysis:
    return analyze_outcomes(experiment, outcomes_of(observations), exposures)


def analyze_outcomes(experiment: Experiment, outcomes: Outcomes, exposures: dict[int, int]) -> Analysis:
    """The decision on every outcome so far (columns in arrival order)."""
    versions = [_summary(outcomes, v, experiment.weights[v], exposures.get(v, 0)) for v in sorted(experiment.weights)]
    looks = look_points(len(outcomes), experiment.look_every) if len(outcomes) else np.zeros(0, np.int64)
    binary = bool(np.all((outcomes.value == 0) | (outcomes.value == 1)))
    comparisons: dict[int, dict[str, dict]] = {}
    breaches, better, worse = [], [], []
    for version in experiment.treatments:
        results = {}
        for metric in ("value", *experiment.guardrails):
            if len(outcomes):
                result = _contrast(experiment, outcomes, version, metric, looks, binary)
                if result is not None:
                    results[metric] = result
        comparisons[version] = results
        quality = results.get("value")
        if quality is not None and quality["high"] < 0:
            worse.append(version)
        for metric, tolerance in experiment.guardrails.items():
            result = results.get(metric)
            if result is not None and result["low"] > tolerance:
                breaches.append(f"v{version} {metric} +{result['low']:.0%} or more over v{experiment.control} "
                                f"(tolerated +{tolerance:.0%}, always-valid p = {result['p_value']:.3g} "
                                f"< {result['alpha']:.3g})")
        if quality is not None and quality["low"] > 0:
            better.append((quality["treatment_mean"], version))

    name = f"v{experiment.control}"
    if breaches:
        decision, winner, reason = "rollback", experiment.control, "guardrail regression: " + "; ".join(breaches)
    elif worse and len(worse) == len(experiment.treatments):
        decision, winner = "rollback", experiment.control
        reason = (f"{', '.join(f'v{v}' for v in worse)} significantly worse than {name} "
                  f"(always-valid p < {experiment.levels['value']:.3g})")
    elif better:
        mean, best = max(better)
        quality = comparisons[best]["value"]
        decision, winner = "promote", best
        reason = (f"v{best} better than {name}: {mean:.3f} vs {quality['control_mean']:.3f} "
                  f"(always-valid p = {quality['p_value']:.3g} < {quality['alpha']:.3g}, "
                  f"{quality['n_treatment']} vs {quality['n_control']} units)")
    elif experiment.max_outcomes is not None and len(outcomes) >= experiment.max_outcomes:
        decision, winner = "inconclusive", experiment.control
        reason = f"{len(outcomes)} outcomes reached max_outcomes={experiment.max_outcomes} without a decision"
    else:
        decision, winner = "continue", None
        reason = _waiting_reason(experiment, versions)
    analysis = Analysis(experiment.id, decision, winner, reason, versions, comparisons, levels=experiment.levels,
                        design=levels_text(experiment.alpha, len(experiment.treatments), experiment.levels),
                        plan=_observed_plan(experiment, outcomes, versions),
                        epochs=len(np.unique(outcomes.epoch)) if len(outcomes) else 1)
    if experiment.thompson and decision == "continue" and all(s.units for s in versions):
        analysis.new_weights = thompson_weights({v: unit_means(outcomes, v) for v in sorted(experiment.weights)})
    return analysis


def _observed_plan(experiment: Experiment, outcomes: Outcomes, versions: list[VersionSummary]) -> dict | None:
    """Units needed to detect the experiment's lift, from the control's unit-level variance so far."""
    mean, var, units, _ = arm_summary(outcomes, experiment.control)
    if units < 2 or not np.isfinite(var):
        return None
    found = plan(experiment.weights, experiment.control, lift=experiment.lift, tau=experiment.quality_sd,
                 alpha=experiment.levels["value"], base_rate=mean, unit_var=var * units,
                 source=f"observed: {units} units of v{experiment.control}", have=sum(s.units for s in versions))
    return found.as_dict() | {"text": found.text()}


def plan_before_start(experiment: Experiment, history: tuple[list[str], list[float]] | None = None,
                      base_rate: float | None = None) -> Plan:
    """Units the experiment needs, before any traffic: from a declared base rate, else from the control's
    outcomes in earlier experiments (`EventStore.history`), else assuming 0.5 (a rate's largest variance)."""
    common = dict(lift=experiment.lift, tau=experiment.quality_sd, alpha=experiment.levels["value"])
    if base_rate is not None:
        return plan(experiment.weights, experiment.control, base_rate=base_rate, source="declared", **common)
    units, values = history or ([], [])
    if len(set(units)) >= 30:
        earlier = Outcomes.from_columns(unit=units, arm=[experiment.control] * len(values), value=values)
        mean, var, count, _ = arm_summary(earlier, experiment.control)
        return plan(experiment.weights, experiment.control, base_rate=mean, unit_var=var * count,
                    source=f"observed: {count} units of v{experiment.control} in the event store", **common)
    return plan(experiment.weights, experiment.control, base_rate=0.5, **common,
                source=f"assumed: no outcomes of v{experiment.control} yet, declare --base-rate")


def _waiting_reason(experiment: Experiment, versions: list[VersionSummary]) -> str:
    short = [s for s in versions if s.units < experiment.min_samples]
    if short:
        return "waiting for data: " + ", ".join(f"v{s.version} has {s.units}/{experiment.min_samples} units"
                                                for s in short)
    return "no significant difference yet (the test stays valid however often it is run)"


def plot_over_time(experiment: Experiment, observations: list[Observation], path: Path) -> Path:
    """Cumulative mean outcome per version over time, with the 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = experiment.started_at
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for version in sorted(experiment.weights):
        obs = [o for o in observations if o.version == version]
        if not obs:
            continue
        values = np.asarray([o.value for o in obs])
        minutes = (np.asarray([o.at for o in obs]) - start) / 60
        n = np.arange(1, len(values) + 1)
        mean = np.cumsum(values) / n
        sd = np.sqrt(np.maximum(np.cumsum(values**2) / n - mean**2, 0))
        label = f"v{version}" + (" (control)" if version == experiment.control else "")
        line, = ax.plot(minutes, mean, label=f"{label}: {mean[-1]:.3f} (n={len(values)})")
        ax.fill_between(minutes, mean - 1.96 * sd / np.sqrt(n), mean + 1.96 * sd / np.sqrt(n),
                        color=line.get_color(), alpha=0.15)
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("mean outcome so far")
    ax.set_title(f"{experiment.ref} · {experiment.id}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
