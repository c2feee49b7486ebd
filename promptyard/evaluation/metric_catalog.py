"""Metrics by name: the built-in ones, the LLM judge, or your own.

A dataset card is data anyone can edit, so it cannot make promptyard import code: your own metric
is either registered under the entry-point group `promptyard.metrics` (named by its entry-point
name) or named by dotted path and allowed in `PROMPTYARD_METRIC_ALLOWLIST` (comma-separated
paths or module prefixes, e.g. `my_project.metrics,other_pkg.scoring:f1`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from promptyard.errors import UserError
from promptyard.evaluation.judge import LLMJudge
from promptyard.evaluation.metrics import (
    Contains,
    CustomMetric,
    ExactLabel,
    JsonValid,
    Metric,
    NumericAnswer,
    RegexMatch,
    TokenF1,
)

__all__ = ["METRICS", "get_metric"]

METRICS: dict[str, type[Metric]] = {
    "exact_label": ExactLabel,
    "contains": Contains,
    "numeric": NumericAnswer,
    "regex": RegexMatch,
    "token_f1": TokenF1,
    "json_valid": JsonValid,
}


def _allowed(path: str) -> bool:
    from promptyard.runtime import get_settings

    allow = [entry.strip() for entry in get_settings().metric_allowlist.split(",") if entry.strip()]
    return any(path == entry or path.startswith((f"{entry}:", f"{entry}.")) for entry in allow)


def _entry_point(name: str):
    from importlib.metadata import entry_points

    return next((ep for ep in entry_points(group="promptyard.metrics") if ep.name == name), None)


def _load_function(path: str) -> Callable[[str, str], float]:
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(
            f"Metric {path!r} cannot be imported ({exc}): give a dotted path to a function "
            "(reply, gold) -> float, e.g. 'my_project.metrics:accuracy'."
        ) from None
    if not callable(function):
        raise UserError(f"Metric {path!r} is not a function: point it at a callable (reply, gold) -> float.")
    return function


def get_metric(name: str, labels: Sequence[str] = (), *, budget=None, **options: Any) -> Metric:
    """A metric by name (or a user function by dotted path), given the dataset's label set. A judge
    charges its requests to `budget`."""
    if name == "llm_judge":
        try:
            return LLMJudge(labels=list(labels), budget=budget, **options)
        except TypeError:
            raise UserError(f"Metric 'llm_judge' takes rubric, scale and model; got {sorted(options)}.") from None
    if name in METRICS:
        try:
            return METRICS[name](labels=list(labels), **options)
        except TypeError:
            raise UserError(f"Metric {name!r} does not take options {sorted(options)}.") from None
    registered = _entry_point(name)
    if registered is not None:
        found = registered.load()
        if isinstance(found, type) and issubclass(found, Metric):
            return found(labels=list(labels), **options)
        return CustomMetric(function=found, path=name, labels=list(labels))
    if "." in name or ":" in name:
        if not _allowed(name):
            raise UserError(
                f"Metric {name!r} is not allowed: a dataset card cannot make promptyard import code. Register it "
                "under the entry-point group 'promptyard.metrics' and name it by its entry-point name, or add it to "
                "PROMPTYARD_METRIC_ALLOWLIST (e.g. PROMPTYARD_METRIC_ALLOWLIST=my_project.metrics).")
        return CustomMetric(function=_load_function(name), path=name, labels=list(labels))
    raise UserError(
        f"Unknown metric {name!r}: use one of {', '.join(METRICS)}, llm_judge, an entry point of "
        "'promptyard.metrics', or an allowed dotted path to your own function (or fix the dataset card)."
    )
