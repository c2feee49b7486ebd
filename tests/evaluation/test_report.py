"""The optimization report: reference points, and a winner not above the majority label said plainly."""

from promptyard.evaluation import ConstantTest, ExampleResult, McNemar, PairedComparison, ReferencePoints, ScoreResult
from promptyard.evaluation import optimization_report


def result(*scores):
    return ScoreResult("t", [ExampleResult({"text": str(i)}, "a", "", "a" if s else "b", s, 0.1)
                             for i, s in enumerate(scores)])


def report(winner: ConstantTest) -> str:
    return optimization_report(
        title="t", seed_template="Do it.\n\nX: {{text}}", best_template="Do it well.\n\nX: {{text}}",
        comparison=PairedComparison(0.4, 0.6, 0.2, 0.01, 0.4, 0.95, 5), test=McNemar(1, 0, 1.0),
        baseline=result(1.0, 0.0), best=result(1.0, 1.0), decision="registered",
        reference=ReferencePoints("a", 0.7, 0.5, 2, 5),
        versus_majority=[ConstantTest("a", 0.4, 0.7, 0, 2, 1.0, 0.05), winner])


def test_reference_points_sit_next_to_the_seed_and_the_winner():
    text = report(ConstantTest("a", 0.9, 0.7, 3, 0, 0.125, 0.05))
    section = text.split("## Reference points (test, n=5)\n")[1].split("## Prompt diff")[0]
    assert section.splitlines()[:8] == [
        "", "| predictor | score |", "|---|---|", "| always 'a' (the train split's most frequent label) | 0.700 |",
        "| a label drawn uniformly from the 2 labels (expected) | 0.500 |", "| seed | 0.400 |", "| winner | 0.900 |", ""]
    assert "- winner 0.900 is NOT significantly above always answering 'a' (0.700): 3 examples" in section
    assert "**The winner is not significantly above always answering 'a'**" in section


def test_no_warning_when_the_winner_beats_the_majority():
    text = report(ConstantTest("a", 0.9, 0.7, 30, 0, 1e-9, 0.05))
    assert "- winner 0.900 is significantly above always answering 'a'" in text
    assert "**The winner is not" not in text
