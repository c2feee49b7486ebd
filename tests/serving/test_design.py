"""The design stated before traffic: test levels that add up to alpha, and the units a lift needs."""

import math

import pytest

from promptyard.serving import Experiment, examples_needed, plan, split_alpha, units_needed
from promptyard.serving.design import power_at


def test_levels_split_alpha_across_quality_and_guardrails():
    assert split_alpha(0.05, 1, {"latency_ms": 0.2, "cost": 0.2}) == pytest.approx(
        {"value": 0.04, "latency_ms": 0.005, "cost": 0.005})
    assert split_alpha(0.05, 1, {}) == {"value": 0.05}
    levels = split_alpha(0.1, 3, ["latency_ms"])
    assert sum(levels.values()) * 3 == pytest.approx(0.1)
    experiment = Experiment(id="e", prompt="p", alias="production", control=1, weights={1: 0.9, 2: 0.1},
                            started_at=0.0)
    assert experiment.levels == pytest.approx({"value": 0.04, "latency_ms": 0.005, "cost": 0.005})
    assert experiment.quality_sd == experiment.lift == 0.05


def test_units_needed_is_where_the_power_is_reached():
    common = dict(var_c=0.1875, var_t=0.1875, share_c=0.5, share_t=0.5, tau=0.05, alpha=0.04)
    n = units_needed(lift=0.05, **common)
    assert power_at(n, lift=0.05, **common) >= 0.8 > power_at(n - 1, lift=0.05, **common)
    # a fixed-sample z-test at 0.04 would need ≈ 2 · 2 · 0.1875 · (2.054 + 0.842)² / 0.05² ≈ 2,520 units;
    # the always-valid test pays for looking at any time
    fixed = math.ceil(2 * 2 * 0.1875 * (2.054 + 0.842) ** 2 / 0.05**2)
    assert fixed < n < 3 * fixed
    assert units_needed(lift=0.10, **common) < n / 3  # a lift twice as large needs far fewer units
    assert units_needed(lift=1e-7, **common) is None


def test_a_canary_split_needs_more_units_and_says_so():
    even = plan({1: 0.5, 2: 0.5}, 1, lift=0.05, tau=0.05, alpha=0.04, base_rate=0.25, source="declared")
    canary = plan({1: 0.95, 2: 0.05}, 1, lift=0.05, tau=0.05, alpha=0.04, base_rate=0.25, source="declared")
    assert canary.units > 4 * even.units
    assert canary.per_version[2] == math.ceil(canary.units * 0.05)
    assert canary.text().startswith(f"needs ≈{canary.units:,} units (v1 {canary.per_version[1]:,}, "
                                    f"v2 {canary.per_version[2]:,}) to detect +0.05 over a base of 0.25 (declared) "
                                    "with 80% power at alpha 0.04")
    with pytest.raises(ValueError, match="not a rate"):
        plan({1: 0.5, 2: 0.5}, 1, lift=0.05, tau=0.05, alpha=0.04, base_rate=3.0, source="declared")


def test_examples_needed_for_an_offline_comparison():
    # paired binary scores that differ on 30% of examples, +5 points: sd of the differences ≈ 0.545
    assert examples_needed(0.545, 0.05, 0.95) == math.ceil((1.95996 + 0.84162) ** 2 * 0.545**2 / 0.05**2)
    assert examples_needed(0.545, 0.10, 0.95) < examples_needed(0.545, 0.05, 0.95) / 3
    assert examples_needed(0.5, 0.0, 0.95) is None
