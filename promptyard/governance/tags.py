"""The registry tags governance owns, and who may write them.

Every `promptyard.*` tag, on a version or on a prompt, is written only by the code path that owns
it; a user's own tags (`--tag`, prompt files, `set_prompt_tags`) may not use the prefix:

- `promptyard.author`: stamped when a version is registered (by the server when it is guarded).
- `promptyard.approval.<user>` / `promptyard.rejection.<user>`: written by that approver, as a
  JSON note `{"alias": "production", "at": ..., "reason": ...}`.
- provenance (`promptyard.parent_version`, `.optimizer`, `.dataset`, ...): written once, when an
  optimization registers its winner; descriptive only (decisions rest on audited evidence).
- `promptyard.contract` (prompt): by approvers; `promptyard.ab.<alias>` (prompt): by whoever may
  start an experiment on that alias (an approver on a protected one).
- MLflow's own prompt bookkeeping (`mlflow.prompt.*`, `_mlflow_*`) is never a user's tag, and what
  a version is (its template, type, response format, model config) never changes after it is
  created: versions are immutable.

Evidence is a set of run tags (`promptyard.evidence.*`) and metrics, anchored in the audit log; a
guarded server stamps `promptyard.logged_by` (the login that last wrote them, or the evidence metrics)
on the run.
"""

from __future__ import annotations

import json

from promptyard.errors import PermissionDeniedError

__all__ = ["TAG_AUTHOR", "LOGGED_BY", "EVIDENCE_METRICS", "APPROVAL", "REJECTION", "EVIDENCE", "RESERVED", "EXPERIMENT", "PROVENANCE_KEYS",
           "MLFLOW_PROMPT_KEYS", "IMMUTABLE_VERSION_KEYS", "IS_PROMPT", "evidence_tags", "read_note", "fold", "looks_like",
           "is_reserved",
           "refuse_reserved"]

RESERVED = "promptyard."
TAG_AUTHOR = "promptyard.author"
APPROVAL = "promptyard.approval."
REJECTION = "promptyard.rejection."
EVIDENCE = "promptyard.evidence."
EXPERIMENT = "promptyard.ab."
EVIDENCE_METRICS = ("evidence_diff", "evidence_diff_low", "evidence_n", "evidence_confidence")  # on its run
LOGGED_BY = "promptyard.logged_by"  # on a run: the login that last wrote its evidence tags (stamped by the server)
PROVENANCE_KEYS = frozenset(f"promptyard.{key}" for key in (
    "parent_version", "optimizer", "dataset", "dataset_digest", "seed", "parent_run_id", "candidate_run_id",
    "test_baseline", "test_score", "test_diff_low"))
MLFLOW_PROMPT_KEYS = ("mlflow.prompt.", "_mlflow_")  # MLflow's own bookkeeping: never a user's tag
IMMUTABLE_VERSION_KEYS = frozenset({"mlflow.prompt.text", "_mlflow_prompt_type", "_mlflow_prompt_response_format",
                                    "_mlflow_prompt_model_config"})  # what a version is: set once, at creation
IS_PROMPT = "mlflow.prompt.is_prompt"  # makes a registered model a prompt


def evidence_tags(prompt: str, baseline: int, candidate: int, dataset: str, split: str) -> dict[str, str]:
    """Tags that make an MLflow run findable as promotion evidence (the record itself is audited)."""
    return {f"{EVIDENCE}prompt": prompt, f"{EVIDENCE}baseline": str(baseline),
            f"{EVIDENCE}candidate": str(candidate), f"{EVIDENCE}dataset": dataset, f"{EVIDENCE}split": split}


def read_note(value: str) -> dict:
    """The JSON note of an approval or rejection tag ({} when it is not a JSON object)."""
    try:
        note = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return note if isinstance(note, dict) else {}


_CONFUSABLE = str.maketrans({  # letters that render like ASCII ones (Latin, Greek, Cyrillic look-alikes)
    "ı": "i", "і": "i", "ɩ": "i", "ο": "o", "о": "o", "σ": "o", "а": "a", "ɑ": "a", "е": "e", "ё": "e", "р": "p",
    "ρ": "p", "с": "c", "ϲ": "c", "у": "y", "γ": "y", "х": "x", "χ": "x", "ѕ": "s", "ј": "j", "ԁ": "d", "ɡ": "g",
    "ℓ": "l", "ӏ": "l", "ι": "i", "κ": "k", "к": "k", "м": "m", "т": "t", "ν": "v", "ω": "w", "ԝ": "w", "һ": "h",
    "ո": "n", "η": "n", "ʀ": "r", "г": "r", "ս": "u", "υ": "u", "‐": "-", "‑": "-", "–": "-", "—": "-", "＿": "_",
})


def fold(text: str) -> str:
    """What a key or alias looks like: compatibility forms, case, surrounding space, accents and look-alike
    letters folded away, so `Promptyard.x`, `ｐromptyard.x`, `promptyard.x ` and `promptyаrd.x` (a Cyrillic
    а) all fold to `promptyard.x`."""
    import unicodedata

    text = unicodedata.normalize("NFKD", str(text).strip().casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.translate(_CONFUSABLE)


def looks_like(text: str, target: str) -> bool:
    """Whether `text` folds onto `target` (a non-ASCII letter left after folding matches any letter)."""
    folded = fold(text)
    return len(folded) == len(target) and all(a == b or not a.isascii() for a, b in zip(folded, target, strict=True))


def is_reserved(key: str) -> bool:
    """A key promptyard or MLflow owns, or one that looks like it in another case, width, spacing or script."""
    key, folded = str(key), fold(key)
    return key.startswith((RESERVED, *MLFLOW_PROMPT_KEYS)) or any(
        looks_like(folded[:len(prefix)], prefix) for prefix in (RESERVED, *MLFLOW_PROMPT_KEYS))


def refuse_reserved(tags: dict | None, where: str) -> None:
    """Refuse user-supplied tags whose keys promptyard (or MLflow) owns, naming the first one."""
    for key in tags or {}:
        if is_reserved(key):
            raise PermissionDeniedError(
                f"{where}: tag {key!r} is reserved (keys starting with 'promptyard.', 'mlflow.prompt.' or "
                "'_mlflow_' are written by promptyard or MLflow itself: approvals by `promptyard prompts approve`, the "
                "contract by `promptyard prompts contract`, experiments by `promptyard ab`). Rename the tag.")
