"""The A/B decision procedure on simulated traffic with known true rates."""

import numpy as np
import pytest

from promptyard.serving import analyze, plot_over_time
from promptyard.serving import Observation
from promptyard.serving import Experiment


def experiment(**overrides):
    base = dict(id="support@production#sim", prompt="support", alias="production", control=3,
                weights={3: 0.5, 4: 0.5}, started_at=0.0, min_samples=100)
    return Experiment(**{**base, **overrides})


def traffic(rates, n, rng, latency=None, cost=None):
    """n outcomes per version, interleaved in time; latency/cost per version optional."""
    observations = []
    for version, rate in rates.items():
        times = rng.random(n) * 3600
        values = (rng.random(n) < rate).astype(float)
        for i in range(n):
            observations.append(Observation(
                version, float(values[i]),
                float(rng.normal(latency[version], 10)) if latency else None,
                float(cost[version]) if cost else None, float(times[i])))
    return sorted(observations, key=lambda o: o.at)


def decide(exp, observations):
    exposures = {}
    for o in observations:
        exposures[o.version] = exposures.get(o.version, 0) + 1
    return analyze(exp, observations, exposures)


def test_simulated_experiments_pick_the_true_winner():
    rng = np.random.default_rng(21)
    exp = experiment()
    decisions = [decide(exp, traffic({3: 0.30, 4: 0.38}, 1500, rng)) for _ in range(60)]
    promoted = [a for a in decisions if a.decision == "promote"]
    assert len(promoted) >= 54 and all(a.winner == 4 for a in promoted)
    assert not any(a.decision == "rollback" for a in decisions)
    losing = [decide(exp, traffic({3: 0.38, 4: 0.30}, 1500, rng)) for _ in range(30)]
    assert sum(a.decision == "rollback" and a.winner == 3 for a in losing) >= 27


def test_false_positive_rate_of_the_procedure_is_at_most_alpha():
    """Equal true rates, an analysis after every outcome: decisions other than 'continue' are errors."""
    rng = np.random.default_rng(8)
    exp = experiment(alpha=0.05)
    runs = 300
    errors = sum(decide(exp, traffic({3: 0.3, 4: 0.3}, 1500, rng)).decision != "continue" for _ in range(runs))
    assert errors / runs <= exp.alpha


def test_three_way_experiment_uses_a_bonferroni_level_and_picks_the_best():
    rng = np.random.default_rng(2)
    exp = experiment(weights={3: 0.34, 4: 0.33, 5: 0.33})
    result = decide(exp, traffic({3: 0.3, 4: 0.33, 5: 0.45}, 1500, rng))
    assert (result.decision, result.winner) == ("promote", 5)
    # alpha 0.05: 80% to quality, 20% shared by the two guardrails, each split over two treatments
    assert result.levels == pytest.approx({"value": 0.02, "latency_ms": 0.0025, "cost": 0.0025})
    assert sum(result.levels.values()) * len(exp.treatments) == pytest.approx(exp.alpha)
    assert all(r["value"]["alpha"] == pytest.approx(0.02) for r in result.comparisons.values())
    assert result.design == ("family-wise alpha 0.05 over 2 treatments × (quality + latency_ms + cost), Bonferroni: "
                             "quality 0.02, latency_ms 0.0025, cost 0.0025 per treatment")


def test_latency_guardrail_rolls_back_a_better_but_slower_version():
    rng = np.random.default_rng(4)
    result = decide(experiment(), traffic({3: 0.3, 4: 0.4}, 1500, rng, latency={3: 100.0, 4: 150.0}))
    assert (result.decision, result.winner) == ("rollback", 3)
    assert "latency_ms" in result.reason and "tolerated +20%" in result.reason
    small = decide(experiment(), traffic({3: 0.3, 4: 0.4}, 1500, rng, latency={3: 100.0, 4: 105.0}))
    assert small.decision == "promote"


def test_cost_guardrail():
    rng = np.random.default_rng(6)
    result = decide(experiment(guardrails={"cost": 0.1}),
                    traffic({3: 0.3, 4: 0.4}, 1500, rng, cost={3: 0.001, 4: 0.002}))
    assert result.decision == "rollback" and "cost" in result.reason


def test_waits_for_data_then_ends_inconclusive_at_the_cap():
    rng = np.random.default_rng(1)
    early = decide(experiment(), traffic({3: 0.3, 4: 0.3}, 40, rng))
    assert early.decision == "continue" and "v3 has 40/100 units" in early.reason
    capped = decide(experiment(max_outcomes=1000), traffic({3: 0.3, 4: 0.3}, 600, rng))
    assert (capped.decision, capped.winner) == ("inconclusive", 3)


def test_thompson_proposes_new_weights_while_undecided():
    rng = np.random.default_rng(3)
    result = decide(experiment(thompson=True), traffic({3: 0.30, 4: 0.30}, 150, rng))
    assert result.decision == "continue" and result.new_weights is not None
    assert sum(result.new_weights.values()) == pytest.approx(1.0)
    assert decide(experiment(), traffic({3: 0.3, 4: 0.3}, 150, rng)).new_weights is None


def test_plot_over_time(tmp_path):
    rng = np.random.default_rng(0)
    path = plot_over_time(experiment(), traffic({3: 0.3, 4: 0.4}, 300, rng), tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
