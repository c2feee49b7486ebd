"""What the MLflow server guard decides about a write to a run (see `mlflow_guard`): evidence is stamped
with the login that wrote it, nobody writes the stamp, and no request names two runs.

MLflow's permission check reads a run from `run_id` alone, while its handlers also take `runId`,
`run_uuid` or `runUuid`: a request naming two runs could be checked on one and carried out on the
other, so such a request is refused outright (`named_runs`).
"""

from __future__ import annotations

import json

from promptyard.errors import PermissionDeniedError
from promptyard.governance.tags import EVIDENCE, EVIDENCE_METRICS, LOGGED_BY, fold, looks_like

__all__ = ["RUN_WRITES", "RUN_ID_FIELDS", "named_runs", "check_run_tags"]

RUN_WRITES = {  # MLflow's view functions that write run tags: evidence is stamped with the login that wrote it
    "_create_run": "runs/create", "_set_tag": "runs/set-tag", "_delete_tag": "runs/delete-tag",
    "_log_batch": "runs/log-batch", "_log_metric": "runs/log-metric",
}


RUN_ID_FIELDS = ("run_id", "runId", "run_uuid", "runUuid")  # every spelling MLflow's handlers accept


def named_runs(body, args) -> set[str]:
    """Every run a request names, in every spelling MLflow reads (body and query string). MLflow's permission
    check reads `run_id` alone while its handlers also take `runId` or `run_uuid`: a request naming two runs
    could be checked on one and carried out on the other."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            body = None
    found = set()
    for source in (body if isinstance(body, dict) else {}, args or {}):
        for name in RUN_ID_FIELDS:
            value = source.get(name)
            if value not in (None, ""):
                found.add(str(value))
    return found


def check_run_tags(body, action: str) -> str | None:
    """A write of run tags or metrics: refuse the server's own stamp (and look-alikes); return the run id when
    the write touches evidence (its tags or metrics: the server then stamps the login on the run), else None."""
    if isinstance(body, str):  # MLflow decodes a JSON string body a second time (old clients)
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            raise _malformed("the body is a JSON string that is not JSON itself") from None
    data = {} if body is None else body
    if not isinstance(data, dict):
        raise _malformed(f"the body must be a JSON object, got {type(data).__name__}")
    for field in ("tags", "metrics"):
        rows = data.get(field)
        if rows is not None and not (isinstance(rows, list) and all(isinstance(t, dict) and isinstance(
                t.get("key"), str) for t in rows)):
            raise _malformed(f"{field} must be a list of {{\"key\": ..., ...}}")
    if "key" in data and not isinstance(data["key"], str):
        raise _malformed(f"key must be a string, got {data['key']!r}")
    single = [data["key"]] if "key" in data else []
    tag_keys = [t["key"] for t in data.get("tags") or []] + (single if action != "runs/log-metric" else [])
    metric_keys = [m["key"] for m in data.get("metrics") or []] + (single if action == "runs/log-metric" else [])
    for key in tag_keys:
        if looks_like(fold(key)[:len(LOGGED_BY)], LOGGED_BY):
            raise PermissionDeniedError(f"tag {key!r} on a run is written by the guarded server alone (the login that "
                                        "logged its evidence).")
    touched = any(fold(key).startswith(EVIDENCE) for key in tag_keys) or any(
        fold(key) in EVIDENCE_METRICS for key in metric_keys)
    if action == "runs/delete-tag" or not touched:
        return None
    runs = named_runs(data, None)
    if action != "runs/create" and len(runs) != 1:
        raise _malformed("run_id missing")
    return next(iter(runs), "")


def _malformed(problem: str) -> PermissionDeniedError:
    return PermissionDeniedError(f"malformed request: {problem}; the guard refuses what it cannot read as MLflow does.")
