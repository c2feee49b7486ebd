"""Evidence that a version may take a protected alias: what it records and when it counts.

An evidence record compares a candidate version with the alias' current (baseline) version: on a
dataset split, paired (offline), or online (an A/B experiment). It is written twice when it is
produced: as tags and metrics on its MLflow run (so people find it) and as an `evidence` entry in
the hash-chained audit log (so it can be trusted). A run counts only when its audit entry exists
and still matches it: a run made or edited by hand through MLflow is not evidence.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from promptyard.governance.policy import PromotionRule
from promptyard.governance.tags import EVIDENCE, evidence_tags

__all__ = ["Evidence", "evidence_problem"]


@dataclass(frozen=True)
class Evidence:
    prompt: str
    baseline: int  # the version on the alias when the evidence was produced
    candidate: int
    split: str  # test | validation | train | online
    dataset: str  # the card's name, or online:<experiment id>
    dataset_digest: str | None  # None online
    metric: str
    n: int  # paired examples, or units online
    confidence: float
    diff: float  # candidate − baseline
    low: float
    high: float
    dataset_path: str | None = None  # where the data file was, to check its digest later
    lm_model: str | None = None  # the model that produced the answers, and where it was served
    lm_base_url: str | None = None

    def tags(self) -> dict[str, str]:
        return evidence_tags(self.prompt, self.baseline, self.candidate, self.dataset, self.split)

    def metrics(self) -> dict[str, float]:
        return {"evidence_diff": self.diff, "evidence_diff_low": self.low, "evidence_n": float(self.n),
                "evidence_confidence": self.confidence}

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Evidence:
        return cls(**json.loads(text))

    def matches(self, run) -> bool:
        """Whether the run still carries exactly what was recorded (nothing edited since)."""
        tags = {k: v for k, v in run.data.tags.items() if k.startswith(EVIDENCE)}
        metrics = {k: run.data.metrics.get(k) for k in self.metrics()}
        return tags == self.tags() and all(abs(v - metrics[k]) < 1e-9 if metrics[k] is not None else False
                                           for k, v in self.metrics().items())


def evidence_problem(evidence: Evidence, *, prompt: str, version: int, current: int, rule: PromotionRule,
                     age_days: float, current_digest, required_dataset: str | None = None) -> str | None:
    """Why this evidence does not let `version` replace `current` under `rule` (None: it does).

    `required_dataset` is the name of the card the policy's `dataset` resolves to; `current_digest(evidence)`
    returns that dataset's digest today (the policy's own, never a folder the evidence points to), or raises."""
    if (evidence.prompt, evidence.candidate) != (prompt, version):
        return f"is not evidence for {prompt}/{version}"
    if evidence.baseline != current:
        return f"compares with v{evidence.baseline}, but the alias is on v{current}"
    if evidence.split == "online":
        if not rule.accept_online:
            return "is an online A/B result, which the policy does not accept"
    elif evidence.split != "test":
        return f"was measured on the {evidence.split} split, not test"
    elif required_dataset and evidence.dataset != required_dataset:
        return f"is on dataset {evidence.dataset}, the policy requires {required_dataset}"
    else:
        try:
            today = current_digest(evidence)
        except Exception as exc:  # the dataset moved or is unreadable: its examples cannot be vouched for
            return f"is on dataset {evidence.dataset}, whose current digest cannot be read ({exc})"
        if today != evidence.dataset_digest:
            return (f"was measured on dataset {evidence.dataset} at digest {evidence.dataset_digest}; the data is now "
                    f"{today}: measure again")
    if evidence.n < rule.min_examples:
        unit = "units" if evidence.split == "online" else "paired examples"
        return f"rests on {evidence.n} {unit}; the policy needs at least {rule.min_examples}"
    if evidence.confidence < rule.min_confidence:
        return f"is at confidence {evidence.confidence:g}; the policy needs at least {rule.min_confidence:g}"
    if age_days > rule.max_evidence_age_days:
        return f"is stale: {age_days:.0f} days old (the policy accepts {rule.max_evidence_age_days:g})"
    if evidence.low < -rule.margin:
        return f"shows v{version} may be worse: lower bound {evidence.low:+.3f} < −{rule.margin:g}"
    return None
