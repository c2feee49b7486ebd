"""What an A/B split stored on an alias may say, checked wherever it is written (SDK or guarded server).

A split is the JSON `promptyard ab start` writes to the prompt tag `promptyard.ab.<alias>`: its id,
prompt, alias, control (the version the alias is on), weights per version, and the decision rule.
Starting one sends real traffic to every version in it, so on a protected alias each treatment
must already have a second person's eyes on it; a reallocation may move weights and nothing else.
"""

from __future__ import annotations

import math

from promptyard.errors import ExperimentError

__all__ = ["check_weights", "split_problem", "reallocation_problem"]


def check_weights(weights: dict[int, float]) -> None:
    if len(weights) < 2:
        raise ExperimentError(f"An experiment needs at least two versions, got {sorted(weights) or 'none'}: "
                              "e.g. --split 3=0.9 --split 4=0.1.")
    bad = {v: w for v, w in weights.items() if isinstance(w, bool) or not (isinstance(w, int | float) and 0 < w <= 1)}
    if bad:
        raise ExperimentError(f"Weights must lie in (0, 1]; got {bad}.")
    total = sum(weights.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ExperimentError(f"Weights sum to {total:g}, not 1: {dict(sorted(weights.items()))}. "
                              "Make them add up to 1, e.g. --split 3=0.9 --split 4=0.1.")


def _weights(split: dict) -> dict[int, float]:
    raw = split.get("weights")
    if not isinstance(raw, dict):
        raise ExperimentError("The split has no weights: start it with `promptyard ab start`.")
    try:
        return {int(version): weight for version, weight in raw.items()}
    except (TypeError, ValueError):
        raise ExperimentError(f"Split weights must be keyed by version numbers, got {sorted(raw)}.") from None


def split_problem(split: dict, *, prompt: str, alias: str, control: int | None) -> str | None:
    """Why `split` may not be stored on `prompt@alias` whose alias is on `control` (None: it may)."""
    if not isinstance(split, dict) or not isinstance(split.get("id"), str) or not split["id"]:
        return "the split is not an experiment as `promptyard ab start` writes it (id, prompt, alias, control, weights)"
    if split.get("prompt") != prompt or split.get("alias") != alias:
        return f"the split names {split.get('prompt')}@{split.get('alias')}, not {prompt}@{alias}"
    if control is None or split.get("control") != control:
        return f"the split's control is v{split.get('control')}, but {prompt}@{alias} is on v{control}"
    try:
        weights = _weights(split)
        check_weights(weights)
    except ExperimentError as exc:
        return str(exc)
    if control not in weights:
        return f"the split leaves out the control v{control}"
    return None


def reallocation_problem(current: dict, new: dict) -> str | None:
    """A reallocation changes the weights (and the epoch) of the same experiment, and nothing else."""
    if not current.get("thompson"):
        return "the experiment was started with a fixed split: stop it and start another to change the weights"
    changed = sorted(k for k in set(current) | set(new) if k not in ("weights", "epoch") and current.get(k) != new.get(k))
    if changed:
        return f"a reallocation may change the weights only, not {', '.join(changed)}"
    try:
        before, after = _weights(current), _weights(new)
        check_weights(after)
    except ExperimentError as exc:
        return str(exc)
    if set(before) != set(after):
        return f"a reallocation keeps the versions {sorted(before)}, got {sorted(after)}"
    if new.get("epoch") != (current.get("epoch") or 0) + 1:
        return "a reallocation moves to the next epoch"
    return None
