"""Score registered prompt versions on a dataset split and log the result as an MLflow run.

`VersionScorer` holds what scoring registered versions on one split needs (registry, data,
endpoint); `evaluate_prompt` scores one version (mean with a bootstrap interval).
"""

from __future__ import annotations

from typing import Any

from promptyard.errors import UserError
from promptyard.evaluation.data import LoadedDataset, load_dataset
from promptyard.evaluation.scoring import ScoreResult, refuse_if_errors, score_templates
from promptyard.evaluation.stats import mean_interval
from promptyard.registry import Registry
from promptyard.runtime import Endpoint, Settings, Tracker, check_endpoint, make_lm, scoring_progress

__all__ = ["VersionScorer", "evaluate_prompt", "SPLITS"]

SPLITS = ("train", "validation", "test")


class VersionScorer:
    """Everything needed to score registered versions on one dataset split."""

    def __init__(self, settings: Settings, dataset: str, split: str, limit: int | None):
        if split not in SPLITS:
            raise UserError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}.")
        if limit is not None and limit < 1:
            raise UserError(f"--limit {limit} is not valid: give a number of examples of 1 or more, or leave it out.")
        self.settings, self.split = settings, split
        self.data: LoadedDataset = load_dataset(dataset, cache_dir=settings.home_dir / "hf_cache")  # local, first
        self.rows = self.data.rows(split, limit)
        self.endpoint = Endpoint.from_settings(settings)
        self.registry = Registry(settings.tracking_uri)
        self.registry.check()

    def version(self, ref: str):
        version = self.registry.get(ref)
        self.data.check_template(self.registry.template_text(version))
        return version

    def score(self, *versions) -> list[ScoreResult]:
        """Score the versions on the split, requests interleaved example by example; refuse when more
        requests failed (after retries) than the error budget allows."""
        check_endpoint(self.endpoint)
        card = self.data.card
        label = " vs ".join(f"{v.name}/{v.version}" for v in versions)
        with scoring_progress(f"{label} · {self.split}", len(self.rows) * len(versions)) as advance:
            results = score_templates(
                [(self.registry.template_text(v), self.registry.generation(v)) for v in versions], self.rows,
                lm=make_lm(self.endpoint, cache=self.settings.lm_cache), input_fields=card.input_fields,
                metric=self.data.metric(), label_field=card.label_field, concurrency=self.settings.lm_concurrency,
                on_example=advance,
            )
        refuse_if_errors(results, self.settings.max_error_rate, f"Scoring {label} on {card.name} {self.split}")
        return results

    def start_run(self, name: str, kind: str, prompt: str) -> tuple[Tracker, str]:
        tracker = Tracker(self.settings.tracking_uri, self.settings.experiment)
        run_id = tracker.start_run(name, tags={"promptyard.prompt": prompt, "promptyard.kind": kind})
        tracker.log_dataset(run_id, self.data)
        return tracker, run_id


def evaluate_prompt(settings: Settings, ref: str, dataset: str, *, split: str = "test", limit: int | None = None,
                    confidence: float = 0.95) -> dict[str, Any]:
    """Score the version `ref` points to; returns the metrics with a bootstrap interval."""
    scorer = VersionScorer(settings, dataset, split, limit)
    version = scorer.version(ref)
    result, = scorer.score(version)
    mean, low, high = mean_interval(result.answered, confidence=confidence)
    tracker, run_id = scorer.start_run(f"eval {version.name}/v{version.version} on {scorer.data.card.name} {split}",
                                       "evaluation", version.name)
    tracker.log(run_id, params={"prompt": version.name, "version": version.version,
                                "template": scorer.registry.template_text(version), "split": split,
                                "metric": scorer.data.card.metric, **scorer.endpoint.describe()},
                metrics={f"{split}_accuracy_low": low, f"{split}_accuracy_high": high})
    tracker.log_score(run_id, result, split=split)
    tracker.finish(run_id)
    return {
        "prompt": f"{version.name}/{version.version}", "dataset": scorer.data.card.name, "split": split,
        "n": len(scorer.rows), "metric": scorer.data.card.metric, "score": mean, "low": low, "high": high,
        "confidence": confidence, "mean_latency_s": result.mean_latency_s, "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens, "errors": result.errors, "run_id": run_id,
        "mlflow_url": tracker.run_url(run_id),
    }
