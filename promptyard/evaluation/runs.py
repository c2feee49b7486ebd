"""Score registered prompt versions on a dataset split and log the result as an MLflow run.

`VersionScorer` holds what scoring registered versions on one split needs (registry, data,
endpoint) and the split's reference points (majority label, uniformly random label);
`evaluate_prompt` scores one version (mean with a bootstrap interval) and tests it against the
majority label on the same rows.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from promptyard.errors import UserError
from promptyard.evaluation.baselines import ConstantTest, ReferencePoints, against_reference
from promptyard.evaluation.data import LoadedDataset, load_dataset
from promptyard.evaluation.scoring import ScoreResult, refuse_if_errors, score_templates
from promptyard.evaluation.stats import mean_interval
from promptyard.registry import Registry
from promptyard.runtime import Endpoint, Settings, Tracker, check_endpoint, make_lm, scoring_progress

__all__ = ["VersionScorer", "evaluate_prompt", "SPLITS", "reference_lines", "reference_metrics", "reference_params"]

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
        self.data.check_template(self.registry.template(version))
        return version

    def score(self, *versions) -> list[ScoreResult]:
        """Score the versions on the split, requests interleaved example by example; refuse when more
        requests failed (after retries) than the error budget allows."""
        check_endpoint(self.endpoint)
        card = self.data.card
        label = " vs ".join(f"{v.name}/{v.version}" for v in versions)
        with scoring_progress(f"{label} · {self.split}", len(self.rows) * len(versions)) as advance:
            results = score_templates(
                [(self.registry.template(v), self.registry.generation(v)) for v in versions], self.rows,
                lm=make_lm(self.endpoint, cache=self.settings.lm_cache), input_fields=card.input_fields,
                metric=self.data.metric(), label_field=card.label_field, concurrency=self.settings.lm_concurrency,
                on_example=advance,
            )
        refuse_if_errors(results, self.settings.max_error_rate, f"Scoring {label} on {card.name} {self.split}")
        return results

    def reference_fields(self, *results: ScoreResult, confidence: float = 0.95) -> dict[str, Any]:
        """The split's reference points (majority label, uniformly random label) and each result tested
        against the majority label, as plain fields (None and [] without a label set)."""
        points, tests = against_reference(self.data.card, self.data.rows("train"), self.rows, self.data.metric(),
                                          [r.scores for r in results], alpha=1 - confidence)
        return {"reference": asdict(points) if points else None,
                "versus_majority": [asdict(t) | {"significant": t.significant} for t in tests]}

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
    reference = scorer.reference_fields(result, confidence=confidence)
    tracker.log(run_id, params={"prompt": version.name, "version": version.version,
                                "template": scorer.registry.template_text(version), "split": split,
                                "metric": scorer.data.card.metric, **scorer.endpoint.describe(),
                                **reference_params(reference)},
                metrics={f"{split}_accuracy_low": low, f"{split}_accuracy_high": high,
                         **reference_metrics(reference, split)})
    tracker.log_score(run_id, result, split=split)
    tracker.finish(run_id)
    return {
        "prompt": f"{version.name}/{version.version}", "dataset": scorer.data.card.name, "split": split,
        "n": len(scorer.rows), "metric": scorer.data.card.metric, "score": mean, "low": low, "high": high,
        "confidence": confidence, "mean_latency_s": result.mean_latency_s, "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens, "errors": result.errors, "run_id": run_id,
        "mlflow_url": tracker.run_url(run_id), **reference,
    }


def reference_params(reference: dict[str, Any]) -> dict[str, Any]:
    points = reference.get("reference")
    return {"majority_label": points["majority_label"]} if points else {}


def reference_metrics(reference: dict[str, Any], split: str) -> dict[str, float]:
    """The reference points and the first result's test against the majority label, as run metrics."""
    points = reference.get("reference")
    if not points:
        return {}
    metrics = {f"{split}_majority_label_accuracy": points["majority"], f"{split}_random_accuracy": points["random"]}
    if reference["versus_majority"]:
        metrics[f"{split}_vs_majority_p_value"] = reference["versus_majority"][0]["p_value"]
    return metrics


def reference_lines(reference: dict[str, Any], *who: str) -> list[str]:
    """The reference points and each tested prompt, one line each (empty without a label set)."""
    points = reference.get("reference")
    if not points:
        return []
    lines = [f"reference points: {ReferencePoints(**points).describe()}"]
    for name, test in zip(who, reference["versus_majority"], strict=False):
        fields = {k: v for k, v in test.items() if k != "significant"}
        lines.append(ConstantTest(**fields).describe(name))
    return lines
