"""Reference points: the majority label and a uniformly random label, and a prompt tested against them."""

import pytest

from promptyard.evaluation import DatasetCard, against_reference, get_metric, reference_points, versus_constant

CARD = DatasetCard(name="t", input_fields=["text"], label_field="label", labels=["a", "b", "c", "d"])


def rows(*labels):
    return [{"text": str(i), "label": label} for i, label in enumerate(labels)]


def test_majority_comes_from_train_and_is_scored_on_the_rows():
    train = rows("b", "b", "b", "a")
    evaluated = rows("a", "a", "b", "c", "d")
    points = reference_points(CARD, train, evaluated, get_metric("exact_label", CARD.labels))
    assert (points.majority_label, points.majority, points.random, points.labels, points.n) == ("b", 0.2, 0.25, 4, 5)
    assert points.describe() == "majority label 'b' 0.200, uniform random over 4 labels 0.250"


def test_a_tie_in_train_goes_to_the_label_listed_first():
    points = reference_points(CARD, rows("c", "b", "c", "b"), rows("b"), get_metric("exact_label", CARD.labels))
    assert points.majority_label == "b"


def test_no_reference_without_a_label_set_or_for_a_judge():
    card = DatasetCard(name="t", input_fields=["text"], label_field="label")
    assert reference_points(card, rows("a"), rows("a"), get_metric("exact_label")) is None
    judge = get_metric("llm_judge", CARD.labels, rubric="right?")
    assert reference_points(CARD, rows("a"), rows("a"), judge) is None


def test_a_prompt_that_is_the_constant_is_not_above_it():
    constant = [1.0] * 80 + [0.0] * 20
    test = versus_constant(constant, constant, "b")
    assert (test.wins, test.losses, test.p_value, test.significant) == (0, 0, 1.0, False)


def test_clearly_better_prompt_is_significant_and_errors_are_left_out():
    constant = [1.0] * 50 + [0.0] * 50
    prompt = [1.0] * 50 + [1.0] * 30 + [0.0] * 20
    prompt[0] = None  # a failed request: neither a win nor a loss, not in the means
    test = versus_constant(prompt, constant, "b")
    assert (test.wins, test.losses) == (30, 0)
    assert test.p_value == pytest.approx(0.5 ** 30)
    assert test.significant and test.constant == pytest.approx(49 / 99)
    assert "is significantly above always answering 'b'" in test.describe()


def test_a_small_gain_over_the_majority_is_not_significant():
    """0.54 against a majority label at 0.50 on 100 examples: 12 wins, 8 losses, p ≈ 0.25."""
    constant = [1.0] * 50 + [0.0] * 50
    prompt = [1.0] * 42 + [0.0] * 8 + [1.0] * 12 + [0.0] * 38
    test = versus_constant(prompt, constant, "b")
    assert (test.prompt, test.constant, test.wins, test.losses) == (0.54, 0.5, 12, 8)
    assert test.p_value == pytest.approx(0.2517, abs=1e-4)
    assert not test.significant
    assert "is NOT significantly above" in test.describe("the winner")


def test_against_reference_tests_each_prompt_on_the_same_rows():
    evaluated = rows("a", "b", "b", "b")
    points, tests = against_reference(CARD, rows("b"), evaluated, get_metric("exact_label", CARD.labels),
                                      [[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert points.majority == 0.75
    assert [(t.wins, t.losses) for t in tests] == [(0, 0), (1, 0)]
