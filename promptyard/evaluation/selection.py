"""Several objectives per candidate: the Pareto front, a selection policy and a plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from promptyard.errors import UserError

__all__ = ["Objectives", "pareto_front", "select", "pareto_plot", "SELECTIONS"]

SELECTIONS = ("quality", "weighted")


@dataclass(frozen=True)
class Objectives:
    quality: float  # higher is better
    cost: float  # per example, lower is better
    latency_s: float  # mean per request, lower is better


def _dominates(a: Objectives, b: Objectives) -> bool:
    no_worse = a.quality >= b.quality and a.cost <= b.cost and a.latency_s <= b.latency_s
    better = a.quality > b.quality or a.cost < b.cost or a.latency_s < b.latency_s
    return no_worse and better


def pareto_front(points: Sequence[Objectives]) -> list[int]:
    """Indices of the candidates no other candidate dominates."""
    return [i for i, p in enumerate(points) if not any(_dominates(q, p) for j, q in enumerate(points) if j != i)]


def select(points: Sequence[Objectives], *, policy: str = "quality", max_cost: float | None = None,
           max_latency_s: float | None = None, weights: dict[str, float] | None = None) -> int | None:
    """The chosen candidate's index (None when none fits the budgets).

    `quality`: best quality among candidates within the cost and latency budgets.
    `weighted`: best quality − weights[cost]·cost/max cost − weights[latency]·latency/max latency.
    Ties go to the earlier candidate.
    """
    if policy not in SELECTIONS:
        raise UserError(f"Unknown selection policy {policy!r}: use one of {', '.join(SELECTIONS)}.")
    weights = {"cost": 0.0, "latency": 0.0, **(weights or {})}
    unknown = set(weights) - {"cost", "latency"}
    if unknown:
        raise UserError(f"Selection weights take 'cost' and 'latency', not {', '.join(sorted(unknown))}.")
    allowed = [i for i, p in enumerate(points)
               if (max_cost is None or p.cost <= max_cost) and (max_latency_s is None or p.latency_s <= max_latency_s)]
    if not allowed:
        return None
    if policy == "quality":
        return max(allowed, key=lambda i: (points[i].quality, -i))
    top_cost = max(points[i].cost for i in allowed) or 1.0
    top_latency = max(points[i].latency_s for i in allowed) or 1.0

    def utility(i: int) -> tuple[float, int]:
        p = points[i]
        return p.quality - weights["cost"] * p.cost / top_cost - weights["latency"] * p.latency_s / top_latency, -i

    return max(allowed, key=utility)


def pareto_plot(points: Sequence[Objectives], labels: Sequence[str], *, baseline: Objectives | None = None,
                chosen: int | None = None, title: str = ""):
    """A matplotlib figure: quality against latency, cost as marker size, the front joined up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    front = set(pareto_front(points))
    top_cost = max([p.cost for p in points] + [1e-12])
    for i, (p, label) in enumerate(zip(points, labels, strict=True)):
        size = 40 + 260 * (p.cost / top_cost)
        ax.scatter(p.latency_s * 1000, p.quality, s=size, alpha=0.8,
                   color="tab:orange" if i == chosen else ("tab:blue" if i in front else "tab:gray"),
                   edgecolor="black" if i == chosen else "none", zorder=3)
        ax.annotate(label, (p.latency_s * 1000, p.quality), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ordered = sorted((points[i] for i in front), key=lambda p: p.latency_s)
    ax.plot([p.latency_s * 1000 for p in ordered], [p.quality for p in ordered], color="tab:blue", lw=1, zorder=2,
            label="Pareto front")
    if baseline is not None:
        ax.scatter(baseline.latency_s * 1000, baseline.quality, marker="*", s=220, color="tab:red", zorder=4,
                   label="seed prompt")
    ax.set_xlabel("mean latency per request (ms)")
    ax.set_ylabel("validation quality")
    ax.set_title(title or "Candidates: quality, latency and cost (marker size)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
