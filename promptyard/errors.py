"""The exception tree. Every error names the problem and the fix.

    PromptyardError                 base: catch this to catch everything we raise
    ├── UserError                   the caller must change an input
    │   ├── PromptNotFoundError     unknown prompt, version or alias
    │   ├── TemplateError           bad template or variables that do not match the data
    │   ├── DatasetError            dataset missing, empty, malformed or lacking a field
    │   └── OptimizerError          unknown optimizer or settings it does not accept
    └── ServiceError                a service the run needs is not there
        ├── EndpointUnreachableError  the LLM endpoint does not answer
        ├── TrackingUnavailableError  the MLflow tracking server does not answer
        └── OrchestratorUnavailableError  the Prefect server does not answer
"""

from __future__ import annotations

__all__ = [
    "PromptyardError",
    "UserError",
    "PromptNotFoundError",
    "TemplateError",
    "DatasetError",
    "OptimizerError",
    "ServiceError",
    "EndpointUnreachableError",
    "TrackingUnavailableError",
    "OrchestratorUnavailableError",
]


class PromptyardError(Exception):
    """Base of every error promptyard raises."""


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


class ServiceError(PromptyardError):
    """A service the operation needs is not reachable."""


class EndpointUnreachableError(ServiceError):
    """The OpenAI-compatible LLM endpoint does not answer."""


class TrackingUnavailableError(ServiceError):
    """The MLflow tracking server does not answer."""


class OrchestratorUnavailableError(ServiceError):
    """The Prefect API does not answer."""


class PolicyError(UserError):
    """A policy file that does not parse or names unknown roles."""


class PermissionDeniedError(UserError):
    """The user lacks the role the action needs, or a promotion check failed."""
