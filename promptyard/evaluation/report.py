"""The summary report of an optimization: numbers, the prompt diff, examples fixed and broken."""

from __future__ import annotations

from promptyard.evaluation.scoring import ScoreResult
from promptyard.evaluation.stats import McNemar, PairedComparison
from promptyard.registry import diff

__all__ = ["optimization_report"]


def _examples(baseline: ScoreResult, best: ScoreResult, fixed: bool, limit: int) -> list[str]:
    rows = []
    for b, c in zip(baseline.examples, best.examples, strict=True):
        if b.score is None or c.score is None:  # an error is not an answer: neither fixed nor broken
            continue
        if (b.score < c.score) if fixed else (b.score > c.score):
            rows.append(f"| {str(b.inputs)[:90]} | {b.gold} | {b.prediction or '∅'} | {c.prediction or '∅'} |")
    head = ["| input | gold | baseline | candidate |", "|---|---|---|---|"]
    return head + rows[:limit] + ([f"| … {len(rows) - limit} more | | | |"] if len(rows) > limit else [])


def optimization_report(*, title: str, seed_template: str, best_template: str, comparison: PairedComparison,
                        test: McNemar, baseline: ScoreResult, best: ScoreResult, decision: str,
                        best_format: dict | None = None, limit: int = 10) -> str:
    lines = [
        f"# {title}", "",
        f"**Decision**: {decision}", "",
        "| split | baseline | best | difference | interval |",
        "|---|---|---|---|---|",
        f"| test (n={comparison.n}) | {comparison.baseline:.3f} | {comparison.candidate:.3f} | {comparison.diff:+.3f} "
        f"| [{comparison.low:+.3f}, {comparison.high:+.3f}] ({comparison.confidence:.0%}, paired bootstrap) |", "",
        f"McNemar (exact): {test.fixed} fixed, {test.broken} broken, p = {test.p_value:.4g}", "",
        "## Prompt diff", "", "```diff", diff(seed_template, best_template, "seed", "best") or "(same text)", "```", "",
    ]
    if best_format:
        lines += ["The best candidate also constrains the answer with this response format:", "",
                  "```json", str(best_format), "```", ""]
    lines += ["## Examples fixed", "", *_examples(baseline, best, True, limit), "",
              "## Examples broken", "", *_examples(baseline, best, False, limit), ""]
    return "\n".join(lines)
