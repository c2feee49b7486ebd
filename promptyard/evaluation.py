"""Score one prompt version on a dataset split and log it as an MLflow run."""

from __future__ import annotations

from typing import Any

from promptyard.data import load_dataset
from promptyard.errors import UserError
from promptyard.lm import Endpoint, check_endpoint, make_lm
from promptyard.progress import scoring_progress
from promptyard.registry import Registry
from promptyard.scoring import score_template
from promptyard.settings import Settings
from promptyard.stats import mean_interval
from promptyard.tracking import Tracker

__all__ = ["evaluate_prompt"]

SPLITS = ("train", "validation", "test")


def evaluate_prompt(settings: Settings, ref: str, dataset: str, *, split: str = "test", limit: int | None = None,
                    confidence: float = 0.95) -> dict[str, Any]:
    """Score the version `ref` points to; returns the metrics with a bootstrap interval."""
    if split not in SPLITS:
        raise UserError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}.")
    registry = Registry(settings.tracking_uri)
    registry.check()
    version = registry.get(ref)
    template = registry.template_text(version)
    data = load_dataset(dataset, cache_dir=settings.home_dir / "hf_cache")
    data.check_template(template)
    endpoint = Endpoint.from_settings(settings)
    check_endpoint(endpoint)
    generation = registry.generation(version)
    rows = data.rows(split, limit)
    with scoring_progress(f"{version.name}/{version.version} · {split}", len(rows)) as advance:
        result = score_template(template, rows, lm=make_lm(endpoint, cache=settings.lm_cache), input_fields=data.card.input_fields,
                                metric=data.metric(),
                                label_field=data.card.label_field, generation=generation,
                                concurrency=settings.lm_concurrency, on_example=advance)
    mean, low, high = mean_interval(result.scores, confidence=confidence)
    tracker = Tracker(settings.tracking_uri, settings.experiment)
    run_id = tracker.start_run(f"eval {version.name}/v{version.version} on {data.card.name} {split}",
                               tags={"promptyard.prompt": version.name, "promptyard.kind": "evaluation"})
    tracker.log(run_id, params={"prompt": version.name, "version": version.version, "template": template,
                                "split": split, "metric": data.card.metric, **endpoint.describe()},
                metrics={f"{split}_accuracy_low": low, f"{split}_accuracy_high": high})
    tracker.log_dataset(run_id, data)
    tracker.log_score(run_id, result, split=split)
    tracker.finish(run_id)
    return {
        "prompt": f"{version.name}/{version.version}", "dataset": data.card.name, "split": split, "n": len(rows),
        "metric": data.card.metric, "score": mean, "low": low, "high": high, "confidence": confidence,
        "mean_latency_s": result.mean_latency_s, "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens, "errors": result.errors, "run_id": run_id,
        "mlflow_url": tracker.run_url(run_id),
    }
