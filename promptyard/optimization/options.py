"""What an optimization is asked to do, grouped as the flow's parameters (typed, with descriptions,
so the Prefect deployment form shows them), and checked before any service is contacted."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from promptyard.errors import UserError

__all__ = ["SearchOptions", "SelectionOptions", "BudgetLimits", "checked"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchOptions(_Options):
    """How the search runs and how strict the final test is."""

    seed: int = Field(0, description="Random seed of the optimizer's search and of the bootstrap.")
    limit_train: int | None = Field(None, ge=1, description="Use only the first N training examples.")
    limit_validation: int | None = Field(None, ge=1, description="Use only the first N validation examples.")
    limit_test: int | None = Field(None, ge=1, description="Use only the first N test examples.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence of the paired interval on the test split "
                                                              "that decides registration.")


class SelectionOptions(_Options):
    """How the best candidate is chosen on validation."""

    policy: Literal["quality", "weighted"] = Field(
        "quality", description="'quality': the best quality within the budgets below; 'weighted': quality minus "
        "weighted cost and latency.")
    max_cost_per_example: float | None = Field(None, gt=0, description="Highest cost per example in USD "
                                                                       "(prices from PROMPTYARD_PRICES).")
    max_latency_s: float | None = Field(None, gt=0, description="Highest mean latency per request, in seconds.")
    weights: dict[Literal["cost", "latency"], float] | None = Field(
        None, description="For 'weighted': how much cost and latency (each scaled to the largest) count against "
        "quality.")


class BudgetLimits(_Options):
    """Caps on the whole run; when spent, the search stops and the best so far is kept."""

    calls: int | None = Field(None, gt=0, description="Most LM calls (answers from the cache are free).")
    tokens: int | None = Field(None, gt=0, description="Most tokens, prompt and completion.")
    seconds: float | None = Field(None, gt=0, description="Most seconds of wall time.")
    proposer_calls: int | None = Field(
        None, gt=0, description="Most calls to the model that proposes rewrites (PROMPTYARD_PROPOSER_*), counted on "
        "their own; with the task model as proposer they count against `calls` too.")
    proposer_tokens: int | None = Field(None, gt=0, description="Most tokens of the model that proposes rewrites.")


def checked(model: type[_Options], value, parameter: str) -> _Options:
    """`value` (a model or a mapping) validated as `model`; an invalid field fails naming it and the fix."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(value)"
        field = model.model_fields.get(str(first["loc"][0])) if first["loc"] else None
        about = f" ({field.description})" if field is not None and field.description else ""
        raise UserError(f"{parameter}.{key}={first.get('input')!r} is not valid: {first['msg']}{about}.") from None
