"""The exception tree: every error promptyard raises, each naming the problem and the fix.

    PromptyardError                    base: catch this to catch everything we raise
    ├── UserError                      acts = "user": change an input, then run again
    │   ├── PromptNotFoundError        unknown prompt, version or alias
    │   ├── TemplateError              bad template, or variables that do not match the data
    │   ├── DatasetError               dataset missing, empty, malformed or lacking a field
    │   ├── OptimizerError             unknown optimizer, or a setting it does not accept
    │   ├── PolicyError                a policy file that does not parse or names unknown roles
    │   ├── PermissionDeniedError      a role, an approval or a promotion check is missing
    │   ├── ExperimentError            an A/B experiment that cannot start, change or stop so
    │   └── UnknownAssignmentError     an outcome for an assignment the event store never saw
    ├── BudgetExhausted                acts = "user": the run spent its budget (work so far is kept)
    ├── ServiceError                   acts = "service": a service the run needs is not there
    │   ├── EndpointUnreachableError   the LLM endpoint does not answer
    │   ├── EmptyReplyError            the LLM endpoint answered 200 with no answer in it
    │   ├── TrackingUnavailableError   the MLflow tracking server does not answer
    │   ├── OrchestratorUnavailableError  the Prefect API does not answer
    │   └── TooManyErrorsError         too many requests failed after their retries to decide honestly
    └── AuditTamperedError             acts = "service": the audit log's hash chain is broken

`acts` tells a caller (and the CLI's exit code) who must act: the user changes an input; an
operator brings a service back or investigates its store.
"""

from __future__ import annotations

from typing import ClassVar, Literal

__all__ = [
    "PromptyardError",
    "UserError",
    "PromptNotFoundError",
    "TemplateError",
    "DatasetError",
    "OptimizerError",
    "PolicyError",
    "PermissionDeniedError",
    "ExperimentError",
    "UnknownAssignmentError",
    "BudgetExhausted",
    "ServiceError",
    "EndpointUnreachableError",
    "EmptyReplyError",
    "TrackingUnavailableError",
    "OrchestratorUnavailableError",
    "TooManyErrorsError",
    "AuditTamperedError",
]


class PromptyardError(Exception):
    """Base of every error promptyard raises."""

    acts: ClassVar[Literal["user", "service"]] = "user"


class UserError(PromptyardError):
    """An input is wrong; the message says which and how to fix it."""


class PromptNotFoundError(UserError):
    """A prompt, version or alias does not exist in the registry."""


class TemplateError(UserError):
    """A template is malformed or its variables do not match what is provided."""


class DatasetError(UserError):
    """A dataset is missing, empty or lacks a field it needs."""


class OptimizerError(UserError):
    """An optimizer name or setting is not accepted."""


class PolicyError(UserError):
    """A policy file that does not parse or names unknown roles."""


class PermissionDeniedError(UserError):
    """The user lacks the role the action needs, or a promotion check failed."""


class ExperimentError(UserError):
    """An A/B experiment cannot be started, changed or stopped as asked."""


class UnknownAssignmentError(UserError):
    """An outcome names an assignment id the event store has no exposure for."""


class BudgetExhausted(PromptyardError):
    """The run spent its budget (calls, tokens or seconds); the work so far is kept."""


class ServiceError(PromptyardError):
    """A service the operation needs is not reachable."""

    acts = "service"


class EndpointUnreachableError(ServiceError):
    """The OpenAI-compatible LLM endpoint does not answer."""


class EmptyReplyError(ServiceError):
    """The LLM endpoint answered 200 with no answer in it (no choices, empty or null content): retried,
    then a failed request, never a wrong answer."""


class TrackingUnavailableError(ServiceError):
    """The MLflow tracking server does not answer."""


class OrchestratorUnavailableError(ServiceError):
    """The Prefect API does not answer."""


class TooManyErrorsError(ServiceError):
    """More requests failed (after their retries) than a comparison tolerates; errors are never scored."""


class AuditTamperedError(PromptyardError):
    """The audit log's hash chain does not verify: an entry was edited or removed."""

    acts = "service"
