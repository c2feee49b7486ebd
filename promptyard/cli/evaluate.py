"""`promptyard eval`: score one prompt version on a dataset split."""

from __future__ import annotations

import click

from promptyard.cli.common import emit
from promptyard.runtime import get_settings

__all__ = ["eval_"]


@click.command("eval")
@click.argument("prompt")
@click.option("--dataset", required=True, help="Dataset name under datasets/ or a dataset folder.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"]))
@click.option("--limit", type=int, help="Score only the first N examples of the split.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON only.")
def eval_(prompt: str, dataset: str, split: str, limit: int | None, as_json: bool) -> None:
    """Score one prompt version on a dataset split; print the metric with a 95% interval, next to
    always answering the train split's most frequent label and a uniformly random label.

    \b
    Example:
      promptyard eval intent@production --dataset intent_recognition --split test
    """
    from promptyard.evaluation import evaluate_prompt, reference_lines

    r = evaluate_prompt(get_settings(), prompt, dataset, split=split, limit=limit)
    emit(r, as_json, "\n".join([
        f"{r['prompt']} on {r['dataset']} {r['split']} (n={r['n']}): {r['metric']} {r['score']:.3f} "
        f"[{r['low']:.3f}, {r['high']:.3f}] 95% interval; mean latency {r['mean_latency_s'] * 1000:.0f} ms; "
        f"tokens {r['prompt_tokens']} in / {r['completion_tokens']} out",
        *reference_lines(r, r["prompt"]), f"MLflow run: {r['mlflow_url']}"]))
