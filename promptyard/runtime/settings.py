"""Settings: one `PROMPTYARD_` environment prefix and one state directory.

Precedence: explicit argument > environment > default. Every local file (servers' databases,
logs, DSPy's cache) lives under `PROMPTYARD_HOME` (default `./.promptyard`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "apply_offline_env", "BUNDLED_MODEL"]

BUNDLED_MODEL = "smollm2-135m-instruct"

# Variables that keep every library quiet and offline (measured traps in the stack notes).
_OFFLINE_ENV = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "TOKENIZERS_PARALLELISM": "false",
    # MLflow's client retries a dead server for minutes by default: bound it (1 + 2 + 4 s, 30 s a request)
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class Settings(BaseSettings):
    """All promptyard settings. Each field reads `PROMPTYARD_<NAME>` from the environment."""

    model_config = SettingsConfigDict(env_prefix="PROMPTYARD_", extra="ignore")

    home: Path = Field(Path(".promptyard"), description="State directory: databases, logs, caches.")
    lm_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (…/v1). Default: the bundled local model."
    )
    lm_model: str = Field(BUNDLED_MODEL, description="Model name sent to the endpoint.")
    lm_api_key: SecretStr = Field(
        SecretStr("not-needed"), description="API key for the endpoint; never logged."
    )
    lm_timeout: float = Field(60.0, gt=0, description="Seconds before one LLM request fails.")
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="USD per million (input, output) tokens by model name, e.g. "
        '\'{"gpt-4o-mini": [0.15, 0.6]}\'. Models not listed (the bundled one) cost 0.',
    )
    lm_cache: bool = Field(True, description="Answer repeated requests from DSPy's disk cache.")
    resume: bool = Field(True, description="Re-running an optimization with the same inputs reuses the proposals and "
                         "scores an earlier (killed) attempt finished, instead of asking the LM again.")
    lm_attempts: int = Field(6, ge=1, le=20, description="HTTP attempts per LM request: transient failures (429 "
                             "with its Retry-After, 5xx, timeouts, broken bodies) are retried with backoff and jitter.")
    max_error_rate: float = Field(0.02, ge=0, lt=1, description="Share of requests that may still fail after their "
                                  "retries before a comparison refuses to decide (errors are never scored).")
    lm_concurrency: int = Field(4, ge=1, le=256, description="Concurrent requests when scoring. Default: 4, or "
                                "with a global limit (lm_limit), the whole limit: lm_limit x replicas.")
    lm_replicas: str = Field("", description="Comma-separated base URLs (…/v1) of replicas serving the same model; "
                             "requests are spread over them round-robin. Default: PROMPTYARD_LM_BASE_URL alone.")
    lm_limit: int | None = Field(None, ge=1, le=4096, description="Requests in flight at once per endpoint replica, "
                                 "across every process and machine: a Prefect global concurrency limit per replica, "
                                 "created by `promptyard up`. Default: no global limit (lm_concurrency per scoring "
                                 "job).")
    task_runner: str = Field("threads", pattern="^(threads|dask)$", description="Where the optimize flow's tasks "
                             "run: 'threads' in its process, or 'dask' (prefect-dask) on a Dask cluster.")
    dask_address: str | None = Field(None, pattern=r"^(tcp|tls|inproc|ucx)://\S+$", description="Scheduler of an "
                                     "existing Dask cluster (tcp://host:8786). Default: a local cluster.")
    dask_workers: int = Field(2, ge=1, le=256, description="Worker processes of the local Dask cluster.")
    llm_port: int = Field(8089, ge=1, le=65535, description="Port of the bundled LLM server.")
    llm_slots: int = Field(4, ge=1, le=64, description="Parallel slots of the bundled LLM server.")
    llm_slot_context: int = Field(
        2048, ge=512, le=8192, description="Context tokens per slot of the bundled LLM server."
    )
    team: bool = Field(False, description="Team mode: MLflow and Prefect on PostgreSQL, the audit log and A/B events "
                       "there too, MLflow with basic-auth and the alias guard (`promptyard up --team` turns it on for "
                       "the state directory).")
    postgres_url: str | None = Field(None, pattern=r"^postgresql(\+\w+)?://", description="A PostgreSQL server for "
                                     "team mode (its user may create databases); the database part is ignored. "
                                     "Default: a local server promptyard runs.")
    postgres_port: int = Field(5544, ge=1, le=65535, description="Port of the local PostgreSQL of team mode.")
    postgres_os_user: str | None = Field(None, description="Unprivileged account the local PostgreSQL runs as when "
                                         "promptyard runs as root (default: the system's 'postgres' account).")
    mlflow_port: int = Field(5500, ge=1, le=65535, description="Port of the local MLflow server.")
    mlflow_auth: bool = Field(
        False, description="Start the local MLflow server with authentication and promptyard's alias guard "
        "(`--app-name promptyard-auth`; needs MLFLOW_AUTH_ADMIN_PASSWORD and MLFLOW_FLASK_SERVER_SECRET_KEY).",
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI. Default: the local MLflow server."
    )
    prefect_port: int = Field(4200, ge=1, le=65535, description="Port of the local Prefect server.")
    prefect_api_url: str | None = Field(
        None, description="Prefect API URL. Default: the local Prefect server."
    )
    work_pool: str = Field("promptyard-local", min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                           description="Process work pool of the deployments; `promptyard up` starts workers for it.")
    workers: int = Field(1, ge=0, le=64, description="Prefect process workers `promptyard up` starts for the work "
                         "pool (0: none; `promptyard worker --count N` changes it while running).")
    worker_limit: int = Field(1, ge=1, le=64, description="Flow runs one worker runs at once.")
    proposer_style: str = Field(
        "auto",
        pattern="^(auto|plain|standard)$",
        description="How optimizers talk to the proposer LM: 'plain' text for small models, "
        "'standard' DSPy adapters for capable ones, 'auto' = plain for the bundled model.",
    )
    proposer_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (…/v1) of the model that proposes rewrites (a stronger one "
        "than the task model, say). Default: the task endpoint.")
    proposer_model: str | None = Field(None, description="Model that proposes rewrites. Default: the task model.")
    proposer_api_key: SecretStr | None = Field(
        None, description="API key of the proposer endpoint; never logged. Default: the task endpoint's key.")
    also_on_api_key: SecretStr | None = Field(
        None, description="API key for the second model of `optimize --also-on`; never logged. Default: the task "
        "endpoint's key.")
    experiment: str = Field("promptyard", description="MLflow experiment for optimization runs.")
    audit_url: str | None = Field(
        None, description="SQLAlchemy URL of the audit log. Default: SQLite in the state directory."
    )
    metric_allowlist: str = Field(
        "", description="Comma-separated dotted paths (or module prefixes) of your own metric functions that dataset "
        "cards may name, e.g. 'my_project.metrics'. Registering under the entry-point group 'promptyard.metrics' "
        "needs no listing.")
    ab_store_url: str | None = Field(
        None, description="SQLAlchemy URL of the A/B event store, e.g. postgresql+psycopg://host/db. "
        "Default: SQLite in the state directory.",
    )

    @model_validator(mode="after")
    def _scoring_fills_the_limit(self) -> Settings:
        """Under a global limit, one scoring job may keep every slot of every replica busy (the limit, not
        the job, bounds what the endpoint sees); a concurrency the user set stays as set."""
        if self.lm_limit and "lm_concurrency" not in self.model_fields_set:
            self.lm_concurrency = min(256, self.lm_limit * max(1, len(self.replica_urls)))
        return self

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def uses_bundled_model(self) -> bool:
        return self.lm_base_url is None and not self.replica_urls

    @property
    def replica_urls(self) -> list[str]:
        return [u.strip() for u in self.lm_replicas.split(",") if u.strip()]

    def cost(self, prompt_tokens: int, completion_tokens: int, model: str | None = None) -> float:
        """What the tokens cost on `model` (default: the configured one), in USD."""
        price_in, price_out = self.prices.get(model or self.lm_model, (0.0, 0.0))
        return (prompt_tokens * price_in + completion_tokens * price_out) / 1e6

    @property
    def plain_proposer(self) -> bool:
        return self.proposer_style == "plain" or (self.proposer_style == "auto" and self.uses_bundled_model
                                                  and not self.own_proposer)

    @property
    def own_proposer(self) -> bool:
        """Rewrites are proposed by another endpoint or model than the task's (budgeted and costed on their own)."""
        return self.proposer_base_url is not None or (self.proposer_model or self.lm_model) != self.lm_model

    @property
    def lm_url(self) -> str:
        return self.lm_base_url or next(iter(self.replica_urls), None) or f"http://127.0.0.1:{self.llm_port}/v1"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def audit_store_url(self) -> str:
        if self.audit_url is None and self.team_mode:
            return self.team_db_url("promptyard")
        return self.audit_url or f"sqlite:///{self.home_dir / 'audit.db'}"

    @property
    def events_url(self) -> str:
        if self.ab_store_url is None and self.team_mode:
            return self.team_db_url("promptyard")
        return self.ab_store_url or f"sqlite:///{self.home_dir / 'ab_events.db'}"

    @property
    def team_mode(self) -> bool:
        """Team mode by setting, or because `promptyard up --team` marked the state directory."""
        return self.team or (self.home_dir / "team" / "team.json").is_file()

    def team_db_url(self, database: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of one of the team's PostgreSQL databases (password included: never log it)."""
        from sqlalchemy.engine import URL, make_url

        if self.postgres_url:
            url = make_url(self.postgres_url).set(drivername=f"postgresql+{driver}", database=database)
        else:
            secret = self.home_dir / "team" / "pg-password"
            password = secret.read_text().strip() if secret.is_file() else None
            url = URL.create(f"postgresql+{driver}", "promptyard", password, "127.0.0.1", self.postgres_port, database)
        return url.render_as_string(hide_password=False)

    @property
    def prefect_url(self) -> str:
        return self.prefect_api_url or f"http://127.0.0.1:{self.prefect_port}/api"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def apply_offline_env(settings: Settings | None = None) -> None:
    """Set the offline variables and point DSPy's and Prefect's state into the state directory.

    Values the user already set are kept.
    """
    for key, value in _OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    home = (settings or get_settings()).home_dir
    os.environ.setdefault("DSPY_CACHEDIR", str(home / "dspy_cache"))
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
