"""The sequential test (mSPRT) and Thompson reallocation, checked by simulation."""

import numpy as np
import pytest

from promptyard.serving import sequential_comparison, thompson_weights


def simulate(rate_control, rate_treatment, rng, n=2000):
    control = (rng.random(n) < rate_control).astype(float)
    treatment = (rng.random(n) < rate_treatment).astype(float)
    order = np.concatenate([rng.random(n), rng.random(n)])  # interleaved arrivals
    return control, treatment, order


def test_false_positive_rate_stays_under_alpha_with_a_look_after_every_outcome():
    rng = np.random.default_rng(11)
    runs, alpha = 400, 0.05
    rejections = 0
    for _ in range(runs):
        control, treatment, order = simulate(0.3, 0.3, rng)
        rejections += sequential_comparison(control, treatment, order=order, alpha=alpha).p_value <= alpha
    assert rejections / runs <= alpha


def test_naive_repeated_t_tests_would_not_stay_under_alpha():
    """The reason for mSPRT: peeking with a fixed-sample test inflates false positives."""
    rng = np.random.default_rng(5)
    runs, hits = 300, 0
    for _ in range(runs):
        c, t, _ = simulate(0.3, 0.3, rng)
        n = np.arange(1, len(c) + 1)
        diff = np.cumsum(t) / n - np.cumsum(c) / n
        se = np.sqrt(0.21 * 2 / n)
        hits += bool(np.any(np.abs(diff[100::50] / se[100::50]) > 1.96))
    assert hits / runs > 0.1


def test_finds_a_real_difference_and_its_direction():
    rng = np.random.default_rng(3)
    results = [sequential_comparison(*simulate(0.30, 0.38, rng)[:2]) for _ in range(100)]
    assert sum(r.better for r in results) >= 90
    assert not any(r.worse for r in results)
    r = results[0]
    assert r.low < r.diff < r.high
    worse = sequential_comparison(*simulate(0.38, 0.30, rng)[:2])
    assert worse.worse and worse.p_value < 0.05


def test_no_look_before_min_samples():
    r = sequential_comparison([1.0] * 50, [0.0] * 50, min_samples=100)
    assert r.looks == 0 and r.p_value == 1.0 and (r.low, r.high) == (float("-inf"), float("inf"))


def test_numeric_outcomes():
    rng = np.random.default_rng(0)
    r = sequential_comparison(rng.normal(1.0, 1.0, 1500), rng.normal(1.3, 1.0, 1500))
    assert r.better
    assert r.low < 0.3 < r.high


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        sequential_comparison([1.0], [0.0], alpha=1.5)
    with pytest.raises(ValueError, match="order"):
        sequential_comparison([1.0], [0.0], order=[1.0])


def test_thompson_moves_traffic_to_the_better_arm_and_keeps_a_floor():
    rng = np.random.default_rng(0)
    weights = thompson_weights({3: list((rng.random(400) < 0.2).astype(float)),
                                4: list((rng.random(400) < 0.35).astype(float))}, floor=0.05)
    assert weights[4] > 0.9 and weights[3] >= 0.05
    assert sum(weights.values()) == pytest.approx(1.0)
    even = thompson_weights({1: [1.0, 0.0] * 50, 2: [0.0, 1.0] * 50})
    assert 0.3 < even[1] < 0.7
