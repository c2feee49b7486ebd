"""Datasets from where teams keep their data: MLflow traces with assessments, MLflow evaluation datasets.

Either becomes a dataset folder like any other (`data.jsonl` + a card), so splits, digests and
every command work unchanged. A trace gives its root span's inputs and a label: the newest valid
assessment of the given name written by a person or by code (an expectation before a feedback; an
LLM judge's opinion is not a label). An evaluation dataset record gives its inputs and the named
expectation. Rows without a label are skipped and counted by reason. Rows are written in a fixed
order (time, then id), so the same traces give the same file, the same digest and the same
splits; each distinct harvest is also kept as a numbered snapshot under `snapshots/`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from promptyard.errors import DatasetError, UserError
from promptyard.evaluation.data import CARD_FILE, DATA_FILE

__all__ = ["Harvest", "Snapshot", "trace_rows", "record_rows", "write_snapshot", "from_traces", "from_evaluation_dataset",
           "check_name", "LABEL_SOURCES"]

LABEL_SOURCES = ("HUMAN", "CODE")  # who may label: a person or code, never an LLM judge
MAX_LABELS = 50  # more distinct values than this: free text, no label set
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


@dataclass
class Harvest:
    """Rows taken from a source, and what was skipped, by reason."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    seen: int = 0
    input_fields: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    version: int
    file: Path
    digest: str
    rows: int
    seen: int
    skipped: dict[str, int]
    labels: list[str]
    new: bool  # False: the same rows as the newest snapshot (nothing written)


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float) and str(value).strip():
        return str(value).strip()
    return None


def _inputs(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {"input": raw}


def _take(harvest: Harvest, inputs: dict[str, Any], label: str | None, label_field: str, fields: Sequence[str] | None,
          ident: dict[str, str]) -> None:
    """One row from its inputs and label, or a counted reason why not."""
    if label is None:
        return
    wanted = list(fields or harvest.input_fields or [k for k, v in inputs.items() if _scalar(v) is not None])
    if not harvest.input_fields:
        harvest.input_fields = wanted
    row = {}
    for name in wanted:
        value = _scalar(inputs.get(name))
        if value is None:
            harvest.skip(f"input '{name}' missing or not text")
            return
        row[name] = value
    harvest.rows.append({**row, label_field: label, **ident})


def _label_of(trace, name: str) -> tuple[str | None, str]:
    """The trace's label under `name` (None) and, when there is none, why."""
    found = [a for a in trace.search_assessments(name=name)]
    if not found:
        return None, f"no assessment named '{name}'"
    by_people = [a for a in found if str(getattr(a.source, "source_type", "")).upper() in LABEL_SOURCES]
    if not by_people:
        return None, f"'{name}' only from an LLM judge (not a label)"
    valid = [a for a in by_people if getattr(a, "error", None) is None and _scalar(a.value) is not None]
    if not valid:
        return None, f"'{name}' without a single text or number value"
    best = max(valid, key=lambda a: (type(a).__name__ == "Expectation", a.create_time_ms or 0))
    return _scalar(best.value), ""


def trace_rows(traces: Iterable, label: str, *, input_fields: Sequence[str] | None = None,
               label_field: str = "label") -> Harvest:
    """Rows from MLflow traces: the root span's inputs and the label assessed by a person or code."""
    harvest = Harvest()
    ordered = sorted(traces, key=lambda t: (t.info.timestamp_ms or 0, t.info.trace_id))
    for trace in ordered:
        harvest.seen += 1
        value, why = _label_of(trace, label)
        if value is None:
            harvest.skip(why)
            continue
        root = trace.data._get_root_span() if trace.data is not None else None
        if root is None or root.inputs is None:
            harvest.skip("no inputs on the trace's root span")
            continue
        _take(harvest, _inputs(root.inputs), value, label_field, input_fields, {"trace_id": trace.info.trace_id})
    return harvest


def record_rows(records: Iterable, label: str, *, input_fields: Sequence[str] | None = None,
                label_field: str = "label") -> Harvest:
    """Rows from an MLflow evaluation dataset: each record's inputs and its expectation named `label`."""
    harvest = Harvest()
    for record in sorted(records, key=lambda r: (r.created_time or 0, r.dataset_record_id)):
        harvest.seen += 1
        value = _scalar((record.expectations or {}).get(label))
        if value is None:
            harvest.skip(f"no expectation '{label}' with a single text or number value")
            continue
        _take(harvest, _inputs(record.inputs), value, label_field, input_fields,
              {"record_id": record.dataset_record_id})
    return harvest


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise UserError(f"Dataset name {name!r} is not valid: use letters, digits, '-' and '_' (it names a folder).")


def _splits(n: int, test: int | None, validation: int | None) -> tuple[int, int]:
    test = test if test is not None else max(1, round(0.3 * n))
    validation = validation if validation is not None else max(1, round(0.2 * n))
    if test < 1 or validation < 1:
        raise UserError(f"--test {test} / --validation {validation}: give split sizes of 1 or more.")
    if n < test + validation + 2:
        raise DatasetError(f"{n} labelled rows cannot fill test {test} + validation {validation} + at least 2 for "
                           "training: label more traces (or records), or give smaller --test / --validation.")
    return test, validation


def write_snapshot(folder: Path, harvest: Harvest, *, name: str, label_field: str, labels: Sequence[str] | None,
                   metric: str, source: str, test: int | None = None, validation: int | None = None,
                   seed: int = 13) -> Snapshot:
    """Write the rows as the dataset's data file and card, and as a numbered snapshot when they changed."""
    import hashlib

    check_name(name)
    if labels:
        kept = [r for r in harvest.rows if r[label_field] in labels]
        for _ in range(len(harvest.rows) - len(kept)):
            harvest.skip("label not in --labels")
        harvest.rows = kept
    if not harvest.rows:
        reasons = "; ".join(f"{n} {why}" for why, n in harvest.skipped.most_common()) or "nothing matched"
        raise DatasetError(f"No labelled rows among {harvest.seen} from {source} ({reasons}): check the assessment or "
                           "expectation name, and that people or code labelled them.")
    test, validation = _splits(len(harvest.rows), test, validation)
    found = sorted({r[label_field] for r in harvest.rows})
    label_set = list(labels) if labels else (found if len(found) <= MAX_LABELS else [])
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in harvest.rows)
    digest = hashlib.sha256(data.encode()).hexdigest()[:12]
    snapshots = folder / "snapshots"
    existing = sorted(snapshots.glob("v*.jsonl"), key=lambda p: int(p.stem[1:].split("-")[0])) if snapshots.is_dir() \
        else []
    new = not existing or not existing[-1].stem.endswith(digest)
    version = len(existing) + (1 if new else 0)
    file = snapshots / f"v{version}-{digest}.jsonl"
    if new:
        snapshots.mkdir(parents=True, exist_ok=True)
        file.write_text(data)
    (folder / DATA_FILE).write_text(data)
    meta = {"name": name, "task": "classification" if label_set else "generation",
            "input_fields": harvest.input_fields, "label_field": label_field, "labels": label_set, "metric": metric,
            "splits": {"seed": seed, "test": test, "validation": validation}, "source": source,
            "snapshot": {"version": version, "file": f"snapshots/{file.name}",
                         "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         "seen": harvest.seen, "rows": len(harvest.rows), "skipped": dict(harvest.skipped)}}
    (folder / CARD_FILE).write_text("---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n"
                                    f"# {name}\n\nHarvested from {source}. Rows without a label were skipped: "
                                    f"{sum(harvest.skipped.values())} of {harvest.seen}.\n")
    return Snapshot(folder, version, file, digest, len(harvest.rows), harvest.seen, dict(harvest.skipped), label_set,
                    new)


def from_traces(tracking_uri: str, folder: Path, *, name: str, experiment: str, label: str,
                input_fields: Sequence[str] | None = None, label_field: str = "label",
                labels: Sequence[str] | None = None, metric: str = "exact_label", filter_string: str | None = None,
                max_traces: int = 10_000, test: int | None = None, validation: int | None = None,
                seed: int = 13) -> Snapshot:
    """A dataset folder from the traces of an experiment and the label people or code gave them."""
    from promptyard.runtime import Tracker

    check_name(name)
    tracker = Tracker(tracking_uri)
    harvest = trace_rows(tracker.traces(experiment, filter_string=filter_string, max_results=max_traces), label,
                         input_fields=input_fields, label_field=label_field)
    where = f" matching {filter_string!r}" if filter_string else ""
    source = f"MLflow traces of experiment {experiment!r}{where} at {tracking_uri}, label: assessment {label!r}"
    folder.mkdir(parents=True, exist_ok=True)
    return write_snapshot(folder, harvest, name=name, label_field=label_field, labels=labels, metric=metric,
                          source=source, test=test, validation=validation, seed=seed)


def from_evaluation_dataset(tracking_uri: str, folder: Path, *, name: str, dataset: str, label: str,
                            input_fields: Sequence[str] | None = None, label_field: str = "label",
                            labels: Sequence[str] | None = None, metric: str = "exact_label",
                            test: int | None = None, validation: int | None = None, seed: int = 13) -> Snapshot:
    """A dataset folder from an MLflow evaluation dataset: each record's inputs and its expectation `label`."""
    from promptyard.runtime import Tracker

    check_name(name)
    found = Tracker(tracking_uri).evaluation_dataset(dataset)
    harvest = record_rows(found.records, label, input_fields=input_fields, label_field=label_field)
    source = f"MLflow evaluation dataset {found.name!r} ({found.dataset_id}) at {tracking_uri}, label: expectation {label!r}"
    folder.mkdir(parents=True, exist_ok=True)
    return write_snapshot(folder, harvest, name=name, label_field=label_field, labels=labels, metric=metric,
                          source=source, test=test, validation=validation, seed=seed)
