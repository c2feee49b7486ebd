"""Runtime: what every other package stands on.

Owns settings (one `PROMPTYARD_` prefix, one state directory, the offline environment), the LLM
endpoint and `dspy.LM` construction, run budgets, the MLflow run tracker (the one door to MLflow's
runs), progress bars, SQL engines for promptyard's own tables, and the local stack of services
(`stack`, `llm_server`), its Prefect workers (`workers`), the endpoint's global concurrency limit
(`limits`), and team mode on PostgreSQL (`postgres`, `team`, `migrate`). May import:
`promptyard.errors` only.
"""

from promptyard.runtime.budget import Budget, BudgetUsage
from promptyard.runtime.endpoint import Endpoint, check_endpoint, is_transient, is_transport_error, make_lm
from promptyard.runtime.files import read_text
from promptyard.runtime.health import require_answer
from promptyard.runtime.logs import quiet_known_errors
from promptyard.runtime.progress import scoring_progress
from promptyard.runtime.settings import BUNDLED_MODEL, Settings, apply_offline_env, get_settings
from promptyard.runtime.sqlstore import engine_for
from promptyard.runtime.tracking import Tracker
from promptyard.runtime.transient import is_transient_service_error

__all__ = [
    "BUNDLED_MODEL",
    "Budget",
    "BudgetUsage",
    "Endpoint",
    "Settings",
    "Tracker",
    "apply_offline_env",
    "check_endpoint",
    "engine_for",
    "get_settings",
    "is_transient",
    "is_transient_service_error",
    "is_transport_error",
    "make_lm",
    "read_text",
    "quiet_known_errors",
    "require_answer",
    "scoring_progress",
]
