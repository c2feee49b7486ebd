"""Score prompt versions on a dataset split and log them as MLflow runs.

`evaluate_prompt` scores one version (mean with a bootstrap interval); `compare_prompts` is the
offline A/B test: two versions on the same examples, paired bootstrap interval of B − A and
McNemar's test for binary metrics.
"""

from __future__ import annotations

from typing import Any

from promptyard.data import LoadedDataset, load_dataset
from promptyard.errors import UserError
from promptyard.governance import evidence_tags
from promptyard.lm import Endpoint, check_endpoint, make_lm
from promptyard.progress import scoring_progress
from promptyard.registry import Registry
from promptyard.scoring import ScoreResult, score_template
from promptyard.sequential import is_binary
from promptyard.settings import Settings
from promptyard.stats import mcnemar, mean_interval, paired_bootstrap
from promptyard.tracking import Tracker

__all__ = ["evaluate_prompt", "compare_prompts"]

SPLITS = ("train", "validation", "test")


class _Scorer:
    """Everything needed to score registered versions on one dataset split."""

    def __init__(self, settings: Settings, dataset: str, split: str, limit: int | None):
        if split not in SPLITS:
            raise UserError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}.")
        self.settings, self.split = settings, split
        self.registry = Registry(settings.tracking_uri)
        self.registry.check()
        self.data: LoadedDataset = load_dataset(dataset, cache_dir=settings.home_dir / "hf_cache")
        self.endpoint = Endpoint.from_settings(settings)
        self.rows = self.data.rows(split, limit)

    def version(self, ref: str):
        version = self.registry.get(ref)
        self.data.check_template(self.registry.template_text(version))
        return version

    def score(self, version) -> ScoreResult:
        check_endpoint(self.endpoint)
        card = self.data.card
        with scoring_progress(f"{version.name}/{version.version} · {self.split}", len(self.rows)) as advance:
            return score_template(
                self.registry.template_text(version), self.rows,
                lm=make_lm(self.endpoint, cache=self.settings.lm_cache), input_fields=card.input_fields,
                metric=self.data.metric(), label_field=card.label_field,
                generation=self.registry.generation(version), concurrency=self.settings.lm_concurrency,
                on_example=advance,
            )

    def start_run(self, name: str, kind: str, prompt: str) -> tuple[Tracker, str]:
        tracker = Tracker(self.settings.tracking_uri, self.settings.experiment)
        run_id = tracker.start_run(name, tags={"promptyard.prompt": prompt, "promptyard.kind": kind})
        tracker.log_dataset(run_id, self.data)
        return tracker, run_id


def evaluate_prompt(settings: Settings, ref: str, dataset: str, *, split: str = "test", limit: int | None = None,
                    confidence: float = 0.95) -> dict[str, Any]:
    """Score the version `ref` points to; returns the metrics with a bootstrap interval."""
    scorer = _Scorer(settings, dataset, split, limit)
    version = scorer.version(ref)
    result = scorer.score(version)
    mean, low, high = mean_interval(result.scores, confidence=confidence)
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


def compare_prompts(settings: Settings, ref_a: str, ref_b: str, dataset: str, *, split: str = "test",
                    limit: int | None = None, confidence: float = 0.95) -> dict[str, Any]:
    """Offline A/B: both versions on the same examples; interval of B − A and, if binary, McNemar."""
    scorer = _Scorer(settings, dataset, split, limit)
    version_a, version_b = scorer.version(ref_a), scorer.version(ref_b)
    if (version_a.name, version_a.version) == (version_b.name, version_b.version):
        raise UserError(f"{ref_a} and {ref_b} are the same version ({version_a.name}/{version_a.version}): "
                        "compare two different versions.")
    result_a, result_b = scorer.score(version_a), scorer.score(version_b)
    comparison = paired_bootstrap(result_a.scores, result_b.scores, confidence=confidence)
    binary = is_binary(result_a.scores + result_b.scores)
    test = mcnemar(result_a.scores, result_b.scores) if binary else None
    label_a, label_b = f"{version_a.name}/{version_a.version}", f"{version_b.name}/{version_b.version}"
    if comparison.low > 0:
        verdict = f"{label_b} is better than {label_a}"
    elif comparison.high < 0:
        verdict = f"{label_b} is worse than {label_a}"
    else:
        verdict = "no significant difference"
    tracker, run_id = scorer.start_run(f"ab offline {label_a} vs {label_b} on {scorer.data.card.name} {split}",
                                       "ab-offline", version_b.name)
    metrics = {"a_score": comparison.baseline, "b_score": comparison.candidate, "diff": comparison.diff,
               "diff_low": comparison.low, "diff_high": comparison.high,
               "a_mean_latency_s": result_a.mean_latency_s, "b_mean_latency_s": result_b.mean_latency_s}
    if test:
        metrics |= {"mcnemar_p_value": test.p_value, "fixed": test.fixed, "broken": test.broken}
    tags = {"promptyard.ab.verdict": verdict}
    if version_a.name == version_b.name:  # a paired test-split comparison is promotion evidence
        tags |= evidence_tags(version_a.name, int(version_a.version), int(version_b.version), scorer.data.card.name,
                              split)
        metrics |= {"evidence_diff": comparison.diff, "evidence_diff_low": comparison.low}
    tracker.log(run_id, params={"a": label_a, "b": label_b, "split": split, "metric": scorer.data.card.metric,
                                "confidence": confidence, **scorer.endpoint.describe()},
                metrics=metrics, tags=tags)
    tracker.client.log_table(run_id, result_a.table(), f"predictions/a_{split}.json")
    tracker.client.log_table(run_id, result_b.table(), f"predictions/b_{split}.json")
    tracker.finish(run_id)
    return {
        "a": label_a, "b": label_b, "dataset": scorer.data.card.name, "split": split, "n": comparison.n,
        "metric": scorer.data.card.metric, "a_score": comparison.baseline, "b_score": comparison.candidate,
        "diff": comparison.diff, "low": comparison.low, "high": comparison.high, "confidence": confidence,
        "mcnemar_p_value": test.p_value if test else None, "fixed": test.fixed if test else None,
        "broken": test.broken if test else None, "verdict": verdict,
        "a_mean_latency_s": result_a.mean_latency_s, "b_mean_latency_s": result_b.mean_latency_s,
        "run_id": run_id, "mlflow_url": tracker.run_url(run_id),
    }
