"""promptyard: a prompt registry on MLflow and prompt optimization with DSPy and Prefect.

The public API, re-exported from the packages that own it (see ARCHITECTURE.md):

    import promptyard
    prompt = promptyard.register_prompt("greeting", "Hello {{name}}, how can I help?")
    client = promptyard.PromptClient()              # cached reads for apps
    client.get("greeting@production").format(name="Ada")

Importing promptyard changes nothing in the process (no environment variables, no files); the
command line and the flows call `apply_offline_env()` themselves.
"""

from promptyard.errors import (
    AuditTamperedError,
    BudgetExhausted,
    DatasetError,
    EndpointUnreachableError,
    ExperimentError,
    OptimizerError,
    OrchestratorUnavailableError,
    PermissionDeniedError,
    PolicyError,
    PromptNotFoundError,
    PromptyardError,
    ServiceError,
    TemplateError,
    TrackingUnavailableError,
    UnknownAssignmentError,
    UserError,
)
from promptyard.evaluation import (
    DatasetCard,
    LoadedDataset,
    Metric,
    PairedComparison,
    ScoreResult,
    get_metric,
    list_datasets,
    load_dataset,
    paired_bootstrap,
    score_template,
)
from promptyard.governance import AuditLog, Governance, Policy, load_policy
from promptyard.registry import GenerationConfig, PromptRef, Registry, Template, render, variables
from promptyard.runtime import Endpoint, Settings, apply_offline_env, check_endpoint, get_settings, make_lm
from promptyard.serving import (
    Assignment,
    EventStore,
    Experiment,
    Experiments,
    PromptClient,
    ServedPrompt,
    load_prompt,
    register_prompt,
    sequential_comparison,
)

__all__ = [
    "Assignment",
    "AuditLog",
    "AuditTamperedError",
    "BudgetExhausted",
    "DatasetCard",
    "DatasetError",
    "Endpoint",
    "EndpointUnreachableError",
    "EventStore",
    "Experiment",
    "ExperimentError",
    "Experiments",
    "GenerationConfig",
    "Governance",
    "LoadedDataset",
    "Metric",
    "OptimizerError",
    "OrchestratorUnavailableError",
    "PairedComparison",
    "PermissionDeniedError",
    "Policy",
    "PolicyError",
    "PromptClient",
    "PromptNotFoundError",
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
    "UnknownAssignmentError",
    "UserError",
    "apply_offline_env",
    "check_endpoint",
    "get_metric",
    "get_settings",
    "list_datasets",
    "load_dataset",
    "load_policy",
    "load_prompt",
    "make_lm",
    "paired_bootstrap",
    "register_prompt",
    "render",
    "score_template",
    "sequential_comparison",
    "variables",
]
