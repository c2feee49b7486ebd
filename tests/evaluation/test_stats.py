import pytest

from promptyard.evaluation import paired_bootstrap


def test_no_difference_interval_contains_zero():
    scores = [1.0, 0.0] * 50
    result = paired_bootstrap(scores, scores)
    assert result.diff == 0 and result.low == 0 and result.high == 0
    assert not result.significant_gain


def test_clear_gain_is_significant():
    baseline = [0.0] * 60 + [1.0] * 40
    candidate = [1.0] * 90 + [0.0] * 10
    result = paired_bootstrap(baseline, candidate)
    assert result.baseline == 0.4 and result.candidate == 0.9
    assert result.diff == pytest.approx(0.5)
    assert 0 < result.low < 0.5 < result.high
    assert result.significant_gain


def test_small_noisy_gain_is_not():
    baseline = [1.0, 0.0] * 10
    candidate = baseline[:]
    candidate[1] = 1.0  # one example better out of 20
    assert not paired_bootstrap(baseline, candidate).significant_gain


def test_same_seed_same_interval():
    a, b = [0.0, 1.0] * 30, [1.0, 1.0] * 30
    assert paired_bootstrap(a, b, seed=1) == paired_bootstrap(a, b, seed=1)


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1.0], [1.0], confidence=1.5)


def test_mcnemar_counts_fixed_and_broken():
    from promptyard.evaluation import mcnemar

    baseline = [0.0] * 20 + [1.0] * 10
    candidate = [1.0] * 18 + [0.0] * 2 + [1.0] * 9 + [0.0]
    result = mcnemar(baseline, candidate)
    assert (result.fixed, result.broken) == (18, 1)
    assert result.p_value < 0.001
    assert mcnemar([1.0, 0.0], [1.0, 0.0]).p_value == 1.0
