"""Team mode: MLflow and Prefect on PostgreSQL, with the audit log and A/B events in it too.

`up` checks everything it can before starting anything (PostgreSQL binaries or URL, never root),
marks the state directory as a team one (`team/team.json`, so every later command uses the team's
stores), starts or reaches PostgreSQL, creates the databases, then the stack's services on them:
MLflow with basic-auth and promptyard's alias guard, Prefect, and the workers. `status` names each
service's database; `down` stops what promptyard started (a given PostgreSQL URL is left alone).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from promptyard.runtime import postgres, stack
from promptyard.runtime.settings import Settings

__all__ = ["up", "down", "status", "mark"]


def mark(s: Settings) -> Settings:
    """Record team mode in the state directory; return the settings with it on."""
    folder = s.home_dir / "team"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.json").write_text(json.dumps({"team": True, "postgres": postgres.describe(s)}))
    return s.model_copy(update={"team": True})


def up(s: Settings, names: tuple[str, ...] = stack.SERVICE_NAMES,
       echo: Callable[[str], None] = print) -> list[stack.ServiceStatus]:
    postgres.check(s)  # before anything starts
    s = mark(s)
    postgres.start(s, echo)
    postgres.ensure_databases(s)
    stack.up(s, names, echo)
    return status(s)


def down(s: Settings, echo: Callable[[str], None] = lambda _: None) -> list[str]:
    stopped = stack.down(s, echo=echo)
    if postgres.stop(s):
        stopped.append("postgres")
    return stopped


def status(s: Settings) -> list[stack.ServiceStatus]:
    """The stack's services, each with its database, and PostgreSQL."""
    databases = {"mlflow": "mlflow (runs, prompts), mlflow_auth (users)",
                 "prefect": f"prefect; sign-in PREFECT_API_AUTH_STRING (team/{postgres.PREFECT_AUTH_FILE})"}
    result = []
    for item in stack.status(s):
        if item.name in databases:
            item.note = "; ".join(filter(None, [item.note, f"database {databases[item.name]}"]))
        result.append(item)
    where = postgres.describe(s)
    origin = "given by PROMPTYARD_POSTGRES_URL" if s.postgres_url else \
        (postgres.binaries() or (None, "no PostgreSQL binaries"))[1]
    result.append(stack.ServiceStatus("postgres", where, postgres.ready(s), None, origin))
    result.append(stack.ServiceStatus("audit", postgres.describe(s, "promptyard"), result[-1].healthy, None,
                                      "audit log and A/B events (database promptyard)"))
    return result
