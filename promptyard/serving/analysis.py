"""Analyse an A/B experiment: per-version metrics, sequential tests, the decision, a plot.

Each treatment is compared with the control by an mSPRT (always valid under repeated looks) at
level alpha / (number of treatments). Guardrails: a treatment whose quality is significantly
worse, or whose latency / cost is significantly above the control's by more than the tolerated
share, rolls the experiment back. A treatment significantly better with no guardrail breached is
promoted. Otherwise the experiment continues (or ends inconclusive at `max_outcomes`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from promptyard.serving.events import Observation
from promptyard.serving.experiments import Experiment
from promptyard.serving.sequential import SequentialResult, sequential_comparison, thompson_weights

__all__ = ["VersionSummary", "Analysis", "analyze", "plot_over_time"]


@dataclass(frozen=True)
class VersionSummary:
    version: int
    weight: float
    exposures: int
    outcomes: int
    mean: float
    low: float  # 95% normal interval of the mean (fixed-sample, for reading; decisions use the mSPRT)
    high: float
    mean_latency_ms: float | None
    mean_cost: float | None


@dataclass
class Analysis:
    experiment: str
    decision: str  # continue | promote | rollback | inconclusive
    winner: int | None
    reason: str
    versions: list[VersionSummary]
    comparisons: dict[int, dict[str, dict]] = field(default_factory=dict)  # treatment -> metric -> result
    new_weights: dict[int, float] | None = None

    @property
    def decided(self) -> bool:
        return self.decision != "continue"

    def as_dict(self) -> dict:
        return asdict(self)


def _mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _summary(version: int, weight: float, exposures: int, obs: list[Observation]) -> VersionSummary:
    values = np.asarray([o.value for o in obs], dtype=float)
    mean = float(values.mean()) if len(values) else float("nan")
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else float("inf")
    return VersionSummary(
        version=version, weight=weight, exposures=exposures, outcomes=len(values), mean=mean,
        low=float(mean - half), high=float(mean + half),
        mean_latency_ms=_mean_or_none([o.latency_ms for o in obs if o.latency_ms is not None]),
        mean_cost=_mean_or_none([o.cost for o in obs if o.cost is not None]),
    )


def _compare(control: list[Observation], treatment: list[Observation], attribute: str, alpha: float,
             min_samples: int) -> SequentialResult | None:
    c = [o for o in control if getattr(o, attribute) is not None]
    t = [o for o in treatment if getattr(o, attribute) is not None]
    if not c or not t:
        return None
    return sequential_comparison([getattr(o, attribute) for o in c], [getattr(o, attribute) for o in t],
                                 order=[o.at for o in c] + [o.at for o in t], alpha=alpha, min_samples=min_samples)


def analyze(experiment: Experiment, observations: list[Observation], exposures: dict[int, int]) -> Analysis:
    by_version: dict[int, list[Observation]] = {v: [] for v in experiment.weights}
    for o in observations:
        if o.version in by_version:
            by_version[o.version].append(o)
    versions = [_summary(v, experiment.weights[v], exposures.get(v, 0), by_version[v]) for v in sorted(by_version)]
    alpha = experiment.alpha / max(len(experiment.treatments), 1)
    control = by_version[experiment.control]
    comparisons: dict[int, dict[str, dict]] = {}
    breaches, better, worse = [], [], []
    for version in experiment.treatments:
        results = {}
        for metric in ("value", *experiment.guardrails):
            result = _compare(control, by_version[version], metric, alpha, experiment.min_samples)
            if result is not None:
                results[metric] = result
        comparisons[version] = {k: asdict(r) for k, r in results.items()}
        quality = results.get("value")
        if quality is not None and quality.worse:
            worse.append(version)
        for metric, tolerance in experiment.guardrails.items():
            result = results.get(metric)
            if result is not None and result.low > tolerance * abs(result.control_mean):
                breaches.append(f"v{version} {metric} +{result.low / max(abs(result.control_mean), 1e-12):.0%} or more "
                                f"over v{experiment.control} (tolerated +{tolerance:.0%})")
        if quality is not None and quality.better:
            better.append((quality.treatment_mean, version))

    name = f"v{experiment.control}"
    if breaches:
        decision, winner, reason = "rollback", experiment.control, "guardrail regression: " + "; ".join(breaches)
    elif worse and len(worse) == len(experiment.treatments):
        decision, winner = "rollback", experiment.control
        reason = f"{', '.join(f'v{v}' for v in worse)} significantly worse than {name} (always-valid p < {alpha:g})"
    elif better:
        mean, best = max(better)
        p = comparisons[best]["value"]["p_value"]
        decision, winner = "promote", best
        reason = (f"v{best} better than {name}: {mean:.3f} vs {_mean(versions, experiment.control):.3f} "
                  f"(always-valid p = {p:.3g} < {alpha:g})")
    elif experiment.max_outcomes is not None and len(observations) >= experiment.max_outcomes:
        decision, winner = "inconclusive", experiment.control
        reason = f"{len(observations)} outcomes reached max_outcomes={experiment.max_outcomes} without a decision"
    else:
        decision, winner = "continue", None
        reason = _waiting_reason(experiment, versions)
    analysis = Analysis(experiment.id, decision, winner, reason, versions, comparisons)
    if experiment.thompson and decision == "continue" and all(s.outcomes for s in versions):
        analysis.new_weights = thompson_weights({v: [o.value for o in by_version[v]] for v in sorted(by_version)})
    return analysis


def _mean(versions: list[VersionSummary], version: int) -> float:
    return next(s.mean for s in versions if s.version == version)


def _waiting_reason(experiment: Experiment, versions: list[VersionSummary]) -> str:
    short = [s for s in versions if s.outcomes < experiment.min_samples]
    if short:
        return "waiting for data: " + ", ".join(f"v{s.version} has {s.outcomes}/{experiment.min_samples} outcomes"
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
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
