"""The summary report of an optimization: numbers, reference points, the prompt diff, examples fixed
and broken."""

from __future__ import annotations

from promptyard.evaluation.baselines import ConstantTest, ReferencePoints
from promptyard.evaluation.scoring import ScoreResult
from promptyard.evaluation.stats import McNemar, PairedComparison
from promptyard.registry import PromptTemplate, diff, template_text

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


def reference_section(reference: ReferencePoints | None, tests: list[ConstantTest], who: list[str],
                      split: str = "test") -> list[str]:
    """Reference points next to the prompts, and whether each beats the majority label (markdown lines)."""
    if reference is None:
        return []
    lines = [f"## Reference points ({split}, n={reference.n})", "",
             "| predictor | score |", "|---|---|",
             f"| always {reference.majority_label!r} (the train split's most frequent label) | {reference.majority:.3f} |",
             f"| a label drawn uniformly from the {reference.labels} labels (expected) | {reference.random:.3f} |",
             *[f"| {name} | {t.prompt:.3f} |" for name, t in zip(who, tests, strict=True)], ""]
    lines += [f"- {t.describe(name)}" for name, t in zip(who, tests, strict=True)]
    if tests and not tests[-1].significant:
        lines += ["", f"**The {who[-1]} is not significantly above always answering {reference.majority_label!r}**: "
                      "a constant answer that never reads the input does as well on these examples."]
    return [*lines, ""]


def optimization_report(*, title: str, seed_template: PromptTemplate, best_template: PromptTemplate, comparison: PairedComparison,
                        test: McNemar, baseline: ScoreResult, best: ScoreResult, decision: str,
                        best_format: dict | None = None, reference: ReferencePoints | None = None,
                        versus_majority: list[ConstantTest] | None = None, choice: list[str] | None = None,
                        portability: list[str] | None = None, limit: int = 10) -> str:
    lines = [
        f"# {title}", "",
        f"**Decision**: {decision}", "",
        "| split | baseline | best | difference | interval |",
        "|---|---|---|---|---|",
        f"| test (n={comparison.n}) | {comparison.baseline:.3f} | {comparison.candidate:.3f} | {comparison.diff:+.3f} "
        f"| [{comparison.low:+.3f}, {comparison.high:+.3f}] ({comparison.confidence:.0%}, paired bootstrap) |", "",
        f"McNemar (exact): {test.fixed} fixed, {test.broken} broken, p = {test.p_value:.4g}", "",
        *reference_section(reference, list(versus_majority or []), ["seed", "winner"]),
        *(choice or []),
        *(["## Portability", "", "The seed and the winner on the same test examples, through another model "
           "(winner − seed, paired bootstrap interval):", "", *[f"- {line}" for line in portability], ""]
          if portability else []),
        "## Prompt diff", "", "```diff", diff(template_text(seed_template), template_text(best_template), "seed", "best") or "(same text)", "```", "",
    ]
    if best_format:
        lines += ["The best candidate also constrains the answer with this response format:", "",
                  "```json", str(best_format), "```", ""]
    lines += ["## Examples fixed", "", *_examples(baseline, best, True, limit), "",
              "## Examples broken", "", *_examples(baseline, best, False, limit), ""]
    return "\n".join(lines)
