"""The smallest edit among the candidates tied with the best wins on validation: no service, no LM."""

import pytest

from promptyard.evaluation import Objectives
from promptyard.optimization import Contender, SelectionOptions, choose_winner, closest_among_tied, edit_size

SEED = "Classify the sentiment of the review as positive or negative.\n\nReview: {{text}}"
REWRITE = ("The requested instruction is to judge whether the following review is positive or negative and to say "
           "so.\n\nReview: {{text}}")


def scores(start: int, stop: int, n: int = 100) -> list[float]:
    """Examples start..stop-1 right, the others wrong."""
    return [1.0 if start <= i < stop else 0.0 for i in range(n)]


def test_edit_size_counts_words_changed():
    assert edit_size(SEED, SEED) == 0
    assert edit_size(SEED, SEED.replace("Classify", "Judge")) == 1
    assert edit_size(SEED, SEED.replace(" as positive or negative", "")) == 4
    assert edit_size(SEED, REWRITE) > 10


def test_a_long_rewrite_within_the_noise_loses_to_the_seed_with_a_format():
    """0.55 against 0.49 on 100 examples (the case of a registered unreadable winner): tied, so the seed's
    own words with the constrained format win."""
    rewrite = Contender(REWRITE, True, 0.55, scores(0, 55))
    seed_twin = Contender(SEED, True, 0.49, scores(10, 59))  # 10 examples only the rewrite gets, 4 the reverse
    tie = closest_among_tied(SEED, [rewrite, seed_twin], best=0, baseline=0.44)
    assert (tie.best, tie.chosen, tie.tied) == (0, 1, [0, 1])
    assert tie.edits[1] == 0 and tie.edits[0] > 10 and tie.p_values[1] > 0.05
    named = tie.renumbered([3, 7])
    assert named.summary() == (f"candidate 7 goes to the test split: tied with the best on validation, candidate 3 "
                               f"(McNemar p = {tie.p_values[1]:.3g}), it changes 0 words of the seed where the best "
                               f"changes {tie.edits[0]}; the smallest edit wins among tied candidates")
    table = named.markdown({3: 0.55, 7: 0.49}, {3: "label_json:label", 7: "label_json:sentiment"})
    assert table[0] == "## How the winner was chosen"
    assert table[2].startswith("Rule: among the candidates that beat the seed on validation and are statistically "
                               "tied with the best")
    assert table[6].startswith("| 3 | 0.550 | best | ") and "| 7 | 0.490 | " in table[7]
    assert table[7].endswith("| 0 | label_json:sentiment | **chosen** |")


def test_a_clear_gain_keeps_the_best_even_if_it_rewrites_more():
    rewrite = Contender(REWRITE, False, 0.9, scores(0, 90))
    small = Contender(SEED.replace("Classify", "Judge"), False, 0.5, scores(0, 50))
    tie = closest_among_tied(SEED, [rewrite, small], best=0, baseline=0.4)
    assert (tie.chosen, tie.tied) == (0, [0])
    assert tie.summary() == "candidate 0 is the best on validation; no other candidate is tied with it"


def test_candidates_not_above_the_seed_are_never_chosen():
    best = Contender(REWRITE, False, 0.52, scores(0, 52))
    same_as_seed = Contender(SEED, True, 0.50, scores(0, 50))
    tie = closest_among_tied(SEED, [best, same_as_seed], best=0, baseline=0.50)
    assert tie.chosen == 0 and tie.tied == [0]


def test_among_equal_edits_no_format_change_then_quality_wins():
    a = Contender(SEED.replace("Classify", "Judge"), True, 0.60, scores(0, 60))
    b = Contender(SEED.replace("Classify", "Rate"), False, 0.58, scores(0, 58))
    c = Contender(SEED.replace("Classify", "Name"), False, 0.59, scores(0, 59))
    assert closest_among_tied(SEED, [a, b, c], best=0, baseline=0.5).chosen == 2


def test_failed_requests_are_left_out_and_non_binary_scores_use_the_bootstrap():
    best = Contender(REWRITE, False, 0.7, [0.9, 0.8, None, 0.6] * 25)
    close = Contender(SEED, False, 0.68, [0.8, 0.9, 0.5, None] * 25)
    tie = closest_among_tied(SEED, [best, close], best=0, baseline=0.5)
    assert tie.chosen == 1 and tie.p_values[1] is None


def test_choose_winner_respects_the_budgets_and_says_why():
    objectives = [Objectives(0.55, 0.0, 0.1), Objectives(0.53, 5.0, 0.1)]
    contenders = [Contender(REWRITE, False, 0.55, scores(0, 55)), Contender(SEED, True, 0.53, scores(2, 55))]
    verdict, tie = choose_winner(0.4, objectives, contenders, SelectionOptions(), SEED, proposed=2,
                                 budget_stopped=False, test_affordable=True)
    assert verdict.best == 1 and verdict.goes_to_test and tie.best == 0
    capped = SelectionOptions(max_cost_per_example=1.0)  # the seed twin costs too much: not eligible
    verdict, tie = choose_winner(0.4, objectives, contenders, capped, SEED, proposed=2, budget_stopped=False,
                                 test_affordable=True)
    assert verdict.best == 0 and tie.tied == [0]
    verdict, tie = choose_winner(0.6, objectives, contenders, SelectionOptions(), SEED, proposed=2,
                                 budget_stopped=False, test_affordable=True)
    assert not verdict.goes_to_test and tie is None


@pytest.mark.parametrize("alpha, tied", [(0.05, [0, 1]), (0.2, [0])])
def test_the_confidence_decides_what_counts_as_a_tie(alpha, tied):
    """8 examples only the best gets right, 2 the reverse: McNemar p = 0.109."""
    contenders = [Contender(REWRITE, False, 0.6, scores(0, 60)), Contender(SEED, True, 0.54, scores(8, 62))]
    assert closest_among_tied(SEED, contenders, best=0, baseline=0.4, alpha=alpha).tied == tied
