"""Where a registered version came from: its version tags, commit message and evidence tags."""

from __future__ import annotations

from promptyard.evaluation import LoadedDataset, PairedComparison
from promptyard.governance import Evidence

__all__ = ["version_tags", "commit_message", "evidence", "request_key"]


def version_tags(*, parent_version: int, optimizer: str, dataset: str, dataset_digest: str, seed: int,
                 parent_run_id: str, candidate_run_id: str, comparison: PairedComparison) -> dict[str, str]:
    """Provenance on the new version: enough to find and reproduce the run that earned it."""
    return {
        "promptyard.parent_version": str(parent_version), "promptyard.optimizer": optimizer,
        "promptyard.dataset": dataset, "promptyard.dataset_digest": dataset_digest,
        "promptyard.seed": str(seed), "promptyard.parent_run_id": parent_run_id,
        "promptyard.candidate_run_id": candidate_run_id,
        "promptyard.test_baseline": f"{comparison.baseline:.4f}",
        "promptyard.test_score": f"{comparison.candidate:.4f}",
        "promptyard.test_diff_low": f"{comparison.low:.4f}",
    }


def commit_message(optimizer: str, dataset: str, comparison: PairedComparison) -> str:
    return (f"{optimizer} on {dataset}: test {comparison.baseline:.3f} -> {comparison.candidate:.3f} "
            f"({comparison.confidence:.0%} interval [{comparison.low:+.3f}, {comparison.high:+.3f}])")


def evidence(prompt: str, parent_version: int, new_version: int, data: LoadedDataset,
             comparison: PairedComparison, *, lm_model: str | None = None, lm_base_url: str | None = None) -> Evidence:
    """What the optimization's test split says about the new version against the seed, and which model
    (served where) gave the answers."""
    return Evidence(prompt=prompt, baseline=parent_version, candidate=new_version, split="test",
                    dataset=data.card.name, dataset_digest=data.digest, metric=data.card.metric, n=comparison.n,
                    confidence=comparison.confidence, diff=comparison.diff, low=comparison.low, high=comparison.high,
                    dataset_path=str(data.path.parent), lm_model=lm_model, lm_base_url=lm_base_url)


def request_key(*parts) -> str:
    """One optimization's identity (seed, data, optimizer, options, model): the same inputs, the same key,
    so a re-run after a crash finds what the earlier attempt finished."""
    import hashlib
    import json
    from dataclasses import asdict, is_dataclass

    def plain(value):
        return asdict(value) if is_dataclass(value) else value.model_dump() if hasattr(value, "model_dump") else str(value)

    return hashlib.sha256(json.dumps(parts, default=plain, sort_keys=True).encode()).hexdigest()[:32]
