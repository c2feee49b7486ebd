"""promptyard: a prompt registry on MLflow and prompt optimization with DSPy and Prefect."""

from promptyard.settings import Settings, apply_offline_env, get_settings

apply_offline_env()  # before MLflow, litellm or Prefect are imported by anything below

from promptyard.data import DatasetCard, LoadedDataset, list_datasets, load_dataset  # noqa: E402
from promptyard.errors import (  # noqa: E402
    DatasetError,
    PermissionDeniedError,
    PolicyError,
    EndpointUnreachableError,
    OptimizerError,
    OrchestratorUnavailableError,
    PromptNotFoundError,
    PromptyardError,
    ServiceError,
    TemplateError,
    TrackingUnavailableError,
    UserError,
)
from promptyard.lm import Endpoint, GenerationConfig, check_endpoint, make_lm  # noqa: E402
from promptyard.metrics import Metric, get_metric  # noqa: E402
from promptyard.registry import PromptRef, Registry  # noqa: E402
from promptyard.scoring import ScoreResult, score_template  # noqa: E402
from promptyard.audit import AuditLog  # noqa: E402
from promptyard.events import EventStore  # noqa: E402
from promptyard.governance import Governance  # noqa: E402
from promptyard.policy import Policy, load_policy  # noqa: E402
from promptyard.quick import load_prompt, register_prompt  # noqa: E402
from promptyard.experiments import Experiment, Experiments  # noqa: E402
from promptyard.sequential import sequential_comparison  # noqa: E402
from promptyard.serving import Assignment, PromptClient, ServedPrompt  # noqa: E402
from promptyard.stats import PairedComparison, paired_bootstrap  # noqa: E402
from promptyard.templates import Template, render, variables  # noqa: E402

__all__ = [
    "AuditLog",
    "Governance",
    "Policy",
    "load_policy",
    "load_prompt",
    "register_prompt",
    "Assignment",
    "EventStore",
    "Experiment",
    "Experiments",
    "DatasetCard",
    "DatasetError",
    "PermissionDeniedError",
    "PolicyError",
    "Endpoint",
    "EndpointUnreachableError",
    "GenerationConfig",
    "LoadedDataset",
    "Metric",
    "OptimizerError",
    "OrchestratorUnavailableError",
    "PairedComparison",
    "PromptNotFoundError",
    "PromptClient",
    "PromptRef",
    "PromptyardError",
    "Registry",
    "ScoreResult",
    "ServedPrompt",
    "ServiceError",
    "Settings",
    "Template",
    "TemplateError",
    "TrackingUnavailableError",
    "UserError",
    "apply_offline_env",
    "check_endpoint",
    "get_metric",
    "get_settings",
    "list_datasets",
    "load_dataset",
    "make_lm",
    "paired_bootstrap",
    "render",
    "score_template",
    "sequential_comparison",
    "variables",
]
