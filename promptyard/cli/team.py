"""`promptyard migrate`: move the local (SQLite) state into the team stack."""

from __future__ import annotations

import os

import click

from promptyard.cli.common import emit
from promptyard.errors import UserError
from promptyard.runtime import get_settings

__all__ = ["migrate"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def migrate(as_json: bool) -> None:
    """Copy this state directory's local stores (MLflow's SQLite database and artifacts, the audit log, the A/B
    events) into the team stack's PostgreSQL, losing nothing: prompts, versions, aliases, tags, runs with their
    params and metrics keep their ids; the audit chain is verified on the team database afterwards.

    \b
    Example:
      promptyard up --team && promptyard migrate
    """
    from promptyard.governance.audit import AuditLog
    from promptyard.runtime import postgres
    from promptyard.runtime.migrate import MigrationReport, copy_tables, migrate_mlflow, upgrade_mlflow_schema
    from promptyard.runtime.sqlstore import engine_for

    settings = get_settings()
    home = settings.home_dir
    source = home / "mlflow" / "mlflow.db"
    if not settings.team_mode:
        raise UserError("This state directory is not in team mode: start the team stack with `promptyard up --team` "
                        "first, then migrate.")
    if not source.is_file():
        raise UserError(f"No local MLflow store at {source}: nothing to migrate (PROMPTYARD_HOME={home}).")
    if not postgres.ready(settings):
        raise UserError(f"The team's PostgreSQL ({postgres.describe(settings)}) does not answer: start it with "
                        "`promptyard up --team`.")
    report = MigrationReport()
    upgrade_mlflow_schema(settings.team_db_url("mlflow"), {**os.environ})
    report.add("mlflow", migrate_mlflow(source, settings.team_db_url("mlflow"),
                                        (home / "mlflow" / "artifacts", home / "team" / "artifacts")))
    for label, path in (("audit", home / "audit.db"), ("ab", home / "ab_events.db")):
        if path.is_file():
            team_db = engine_for(settings.team_db_url("promptyard"))
            report.add(label, copy_tables(engine_for(f"sqlite:///{path}"), team_db))
    before = AuditLog(f"sqlite:///{home / 'audit.db'}").verify() if (home / "audit.db").is_file() else 0
    after = AuditLog(settings.audit_store_url).verify()
    if after != before:
        raise UserError(f"The team's audit log holds {after} entries where the local one held {before}.")
    emit({"copied": report.rows, "audit_entries_verified": after}, as_json,
         "\n".join([f"  {table:<40} {rows:>8} rows" for table, rows in report.rows.items() if rows] +
                   [f"migrated into {postgres.describe(settings)}; audit chain verified ({after} entries)"]))
