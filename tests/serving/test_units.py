"""Unit-level estimates within allocation epochs, and a design fixed before the data."""

import numpy as np
import pytest

from promptyard.serving import Experiment, Outcomes, analyze_outcomes
from promptyard.serving.units import contrast_path, look_points


def columns(units, arms, values, epochs=None):
    return Outcomes.from_columns(unit=units, arm=arms, value=values, epoch=epochs)


def final(path):
    return path.mean_c[-1], path.var_c[-1], path.mean_t[-1], path.var_t[-1]


def test_a_unit_counts_once_however_many_outcomes_it_sends():
    rng = np.random.default_rng(0)
    n = 400
    arms = np.where(np.arange(n) % 2, 2, 1)
    values = (rng.random(n) < 0.3).astype(float)
    once = columns(np.arange(n), arms, values)
    repeated = columns(np.repeat(np.arange(n), 8), np.repeat(arms, 8), np.repeat(values, 8))
    single = contrast_path(once, "value", 1, 2, look_points(n, 100), binary=False)
    copies = contrast_path(repeated, "value", 1, 2, look_points(8 * n, 100), binary=False)
    assert final(copies) == pytest.approx(final(single))  # eight copies of one answer are one answer
    assert (copies.units_c[-1], copies.outcomes_c[-1]) == (200, 1600)
    naive = columns(np.arange(8 * n), np.repeat(arms, 8), np.repeat(values, 8))  # copies as independent units
    assert contrast_path(naive, "value", 1, 2, look_points(8 * n, 100), binary=False).var_c[-1] == \
        pytest.approx(single.var_c[-1] / 8, rel=0.01)


def test_one_outcome_per_unit_is_the_two_sample_variance():
    rng = np.random.default_rng(1)
    control, treatment = rng.normal(1.0, 2.0, 300), rng.normal(1.5, 1.0, 500)
    outcomes = columns(np.arange(800), [1] * 300 + [2] * 500, np.concatenate([control, treatment]))
    path = contrast_path(outcomes, "value", 1, 2, look_points(800, 800), binary=False)
    assert final(path) == pytest.approx((control.mean(), control.var(ddof=1) / 300,
                                         treatment.mean(), treatment.var(ddof=1) / 500))


def test_within_epoch_estimates_cancel_a_drift_that_pooling_turns_into_a_difference():
    """Epoch 0: 50/50 at a 20% base rate; epoch 1: 20/80 at 40%. No version is better in either."""
    units, arms, values, epochs = [], [], [], []
    for epoch, (n_c, n_t, rate) in enumerate([(1000, 1000, 0.2), (400, 1600, 0.4)]):
        for arm, n in ((1, n_c), (2, n_t)):
            successes = int(n * rate)
            units += [f"{epoch}-{arm}-{i}" for i in range(n)]
            arms += [arm] * n
            values += [1.0] * successes + [0.0] * (n - successes)
            epochs += [epoch] * n
    order = np.random.default_rng(2).permutation(len(units))
    shuffled = [np.asarray(x)[order] for x in (units, arms, values, epochs)]
    looks = look_points(len(units), 100)
    stratified = contrast_path(columns(*shuffled), "value", 1, 2, looks, binary=True)
    assert stratified.mean_t[-1] - stratified.mean_c[-1] == pytest.approx(0.0, abs=1e-12)
    pooled = contrast_path(columns(*shuffled[:3], np.zeros(len(units))), "value", 1, 2, looks, binary=True)
    assert pooled.mean_t[-1] - pooled.mean_c[-1] == pytest.approx(840 / 2600 - 360 / 1400)  # +0.066 from drift alone
    experiment = Experiment(id="e#1", prompt="p", alias="production", control=1, weights={1: 0.5, 2: 0.5},
                            started_at=0.0, guardrails={})
    assert analyze_outcomes(experiment, columns(*shuffled[:3], np.zeros(len(units))), {}).decision == "promote"
    assert analyze_outcomes(experiment, columns(*shuffled), {}).decision == "continue"


def test_the_test_never_takes_back_what_it_saw_more_data_only_adds_looks():
    """τ and the tolerances come from the design: later outcomes cannot change an earlier look."""
    rng = np.random.default_rng(3)
    n = 2000
    arms = rng.integers(1, 3, n)
    calm = rng.normal(10.0, 1.0, n) + 0.12 * (arms == 2)
    wild = rng.normal(10.0, 50.0, n)  # later data with a very different spread
    experiment = Experiment(id="e#2", prompt="p", alias="production", control=1, weights={1: 0.5, 2: 0.5},
                            started_at=0.0, guardrails={}, lift=0.1)
    early = analyze_outcomes(experiment, columns(np.arange(n), arms, calm), {}).comparisons[2]["value"]
    both = columns(np.arange(2 * n), np.concatenate([arms, arms]), np.concatenate([calm, wild]))
    later = analyze_outcomes(experiment, both, {}).comparisons[2]["value"]
    assert later["p_value"] <= early["p_value"]
    assert later["low"] >= early["low"] and later["high"] <= early["high"]
    assert later["mixture_sd"] == early["mixture_sd"] == 0.1


def test_guardrails_are_tested_on_the_relative_scale_against_their_stored_tolerance():
    rng = np.random.default_rng(4)
    n = 4000
    arms = np.where(np.arange(n) % 2, 2, 1)
    latency = np.exp(rng.normal(np.log(300), 0.5, n)) * np.where(arms == 2, 1.6, 1.0)
    outcomes = Outcomes.from_columns(unit=np.arange(n), arm=arms, value=np.zeros(n), latency_ms=latency)
    experiment = Experiment(id="e#3", prompt="p", alias="production", control=1, weights={1: 0.5, 2: 0.5},
                            started_at=0.0, guardrails={"latency_ms": 0.2})
    result = analyze_outcomes(experiment, outcomes, {})
    latency_test = result.comparisons[2]["latency_ms"]
    assert latency_test["scale"] == "ratio" and latency_test["threshold"] == 0.2
    assert latency_test["low"] > 0.2 and latency_test["low"] < 0.6 < latency_test["high"]
    assert result.decision == "rollback" and "latency_ms +" in result.reason and "tolerated +20%" in result.reason
    lenient = Experiment(**{**experiment.__dict__, "guardrails": {"latency_ms": 1.0}})
    assert analyze_outcomes(lenient, outcomes, {}).decision == "continue"
