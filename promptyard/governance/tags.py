"""The registry tags governance owns: authors, approvals, rejections, evidence.

Approvals and rejections are version tags `promptyard.approval.<user>` whose value is a JSON note
(`{"alias": "production", "at": ..., "reason": ...}`); evidence is a set of run tags
(`promptyard.evidence.*`) plus the metric `evidence_diff_low`.
"""

from __future__ import annotations

import json

__all__ = ["TAG_AUTHOR", "APPROVAL", "REJECTION", "EVIDENCE", "evidence_tags", "read_note"]

TAG_AUTHOR = "promptyard.author"
APPROVAL = "promptyard.approval."
REJECTION = "promptyard.rejection."
EVIDENCE = "promptyard.evidence."


def evidence_tags(prompt: str, baseline: int, candidate: int, dataset: str, split: str) -> dict[str, str]:
    """Tags that make an MLflow run count as promotion evidence (with metric `evidence_diff_low`)."""
    return {f"{EVIDENCE}prompt": prompt, f"{EVIDENCE}baseline": str(baseline),
            f"{EVIDENCE}candidate": str(candidate), f"{EVIDENCE}dataset": dataset, f"{EVIDENCE}split": split}


def read_note(value: str) -> dict:
    """The JSON note of an approval or rejection tag ({} when it is not a JSON object)."""
    try:
        note = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return note if isinstance(note, dict) else {}
