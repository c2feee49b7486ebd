"""Offline A/B: two versions on the same dataset examples, before any traffic.

The paired bootstrap interval of B − A and, for binary metrics, McNemar's exact test. When both
versions belong to one prompt, the run is promotion evidence for B over A.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptyard.errors import UserError
from promptyard.evaluation import VersionScorer, is_binary, mcnemar, paired_bootstrap, paired_scores
from promptyard.evaluation.runs import reference_metrics
from promptyard.governance import Evidence, Governance
from promptyard.runtime import Settings
from promptyard.serving.design import examples_needed

__all__ = ["compare_prompts"]


def compare_prompts(settings: Settings, ref_a: str, ref_b: str, dataset: str, *, split: str = "test",
                    limit: int | None = None, confidence: float = 0.95, lift: float = 0.05) -> dict[str, Any]:
    """Offline A/B: both versions on the same examples; interval of B − A and, if binary, McNemar;
    and the paired examples it would take to detect a difference of `lift` (80% power)."""
    if not 0.5 < confidence < 1:
        raise UserError(f"--confidence {confidence} is not valid: give a level between 0.5 and 1, e.g. 0.95.")
    if not lift > 0:
        raise UserError(f"--lift {lift} is not valid: give the difference worth detecting, > 0 (e.g. 0.05).")
    scorer = VersionScorer(settings, dataset, split, limit)
    version_a, version_b = scorer.version(ref_a), scorer.version(ref_b)
    if (version_a.name, version_a.version) == (version_b.name, version_b.version):
        raise UserError(f"{ref_a} and {ref_b} are the same version ({version_a.name}/{version_a.version}): "
                        "compare two different versions.")
    result_a, result_b = scorer.score(version_a, version_b)  # interleaved: a burst hits both alike
    scores_a, scores_b = paired_scores(result_a, result_b)  # a failed request counts for A, against B
    comparison = paired_bootstrap(scores_a, scores_b, confidence=confidence)
    binary = is_binary(scores_a + scores_b)
    test = mcnemar(scores_a, scores_b) if binary else None
    label_a, label_b = f"{version_a.name}/{version_a.version}", f"{version_b.name}/{version_b.version}"
    if comparison.low > 0:
        verdict = f"{label_b} is better than {label_a}"
    elif comparison.high < 0:
        verdict = f"{label_b} is worse than {label_a}"
    else:
        verdict = "no significant difference"
    differences = np.asarray(scores_b, dtype=float) - np.asarray(scores_a, dtype=float)
    sd_diff = float(differences.std(ddof=1)) if len(differences) > 1 else float("nan")
    needed = examples_needed(sd_diff, lift, confidence) if sd_diff == sd_diff else None
    power = (f"examples needed to detect {lift:+g} at {confidence:.0%} with 80% power: {needed:,} "
             f"(have {comparison.n}; from the spread of the paired differences, sd {sd_diff:.3f})"
             if needed else "examples needed: unknown (fewer than two paired examples)")
    reference = scorer.reference_fields(result_a, result_b, confidence=confidence)  # majority and random labels
    tracker, run_id = scorer.start_run(f"ab offline {label_a} vs {label_b} on {scorer.data.card.name} {split}",
                                       "ab-offline", version_b.name)
    metrics = {"a_score": comparison.baseline, "b_score": comparison.candidate, "diff": comparison.diff,
               "diff_low": comparison.low, "diff_high": comparison.high,
               "a_mean_latency_s": result_a.mean_latency_s, "b_mean_latency_s": result_b.mean_latency_s,
               "a_errors": result_a.errors, "b_errors": result_b.errors}
    metrics |= reference_metrics(reference, split)
    if test:
        metrics |= {"mcnemar_p_value": test.p_value, "fixed": test.fixed, "broken": test.broken}
    tracker.log(run_id, params={"a": label_a, "b": label_b, "split": split, "metric": scorer.data.card.metric,
                                "confidence": confidence, **scorer.endpoint.describe()},
                metrics=metrics, tags={"promptyard.ab.verdict": verdict})
    recorded = "a comparison of two prompts is not evidence for either"
    governance = Governance.from_settings(scorer.registry)
    if version_a.name == version_b.name and governance.policy.role_of(governance.user, version_a.name) == "viewer":
        recorded = f"not recorded as evidence: {governance.user} is a viewer of {version_a.name}"
    elif version_a.name == version_b.name:  # a paired comparison is evidence (promotion accepts the test split's)
        data = scorer.data
        recorded = f"recorded as evidence for {label_b} over {label_a} by {governance.user}"
        governance.record_evidence(run_id, Evidence(
            prompt=version_a.name, baseline=int(version_a.version), candidate=int(version_b.version), split=split,
            dataset=data.card.name, dataset_digest=data.digest, metric=data.card.metric, n=comparison.n,
            confidence=confidence, diff=comparison.diff, low=comparison.low, high=comparison.high,
            dataset_path=str(data.path.parent), lm_model=scorer.endpoint.model, lm_base_url=scorer.endpoint.base_url))
    tracker.log_table(run_id, result_a.table(), f"predictions/a_{split}.json")
    tracker.log_table(run_id, result_b.table(), f"predictions/b_{split}.json")
    tracker.finish(run_id)
    return {
        "a": label_a, "b": label_b, "dataset": scorer.data.card.name, "split": split, "n": comparison.n,
        "metric": scorer.data.card.metric, "a_score": comparison.baseline, "b_score": comparison.candidate,
        "diff": comparison.diff, "low": comparison.low, "high": comparison.high, "confidence": confidence,
        "mcnemar_p_value": test.p_value if test else None, "fixed": test.fixed if test else None,
        "broken": test.broken if test else None, "verdict": verdict,
        "a_mean_latency_s": result_a.mean_latency_s, "b_mean_latency_s": result_b.mean_latency_s,
        "errors": {"a": result_a.errors, "b": result_b.errors}, "evidence": recorded, "sd_diff": sd_diff,
        "lift": lift, "examples_needed": needed, "power": power, "run_id": run_id, "mlflow_url": tracker.run_url(run_id),
        **reference,
    }
