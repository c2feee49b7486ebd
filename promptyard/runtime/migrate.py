"""Move a local (SQLite) state into the team's PostgreSQL, losing nothing.

MLflow: every row of every table (experiments, runs with their params, metrics and tags, prompts as
registered models with their versions, aliases and tags, ...) is copied as it is, so run ids, version
numbers and timestamps stay the same and evidence in the audit log still points at the right runs;
the target schema is made by MLflow itself (`mlflow db upgrade`) and must be at the same revision as
the source; the artifacts folder is copied beside. promptyard's own tables (the audit log, A/B
events) are copied row for row, so the audit chain's hashes still verify. The target must hold no
runs or prompts yet: a migration never merges two histories.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from promptyard.errors import ServiceError, UserError

__all__ = ["MigrationReport", "migrate_mlflow", "copy_tables", "upgrade_mlflow_schema"]

BATCH = 5000


@dataclass
class MigrationReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied

    def add(self, prefix: str, rows: dict[str, int]) -> None:
        self.rows.update({f"{prefix}.{table}": n for table, n in rows.items()})


def _sqlite(path: Path) -> sa.Engine:
    if not path.is_file():
        raise UserError(f"No SQLite database at {path}: nothing to migrate from there (check PROMPTYARD_HOME).")
    return sa.create_engine(f"sqlite:///{path}")


def upgrade_mlflow_schema(target_url: str, env: dict[str, str]) -> None:
    """MLflow's own schema in the target database (idempotent)."""
    done = subprocess.run([str(Path(sys.executable).parent / "mlflow"), "db", "upgrade", target_url],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        raise ServiceError(f"`mlflow db upgrade` failed on the team database:\n{done.stderr[-1500:]}")


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.DatabaseError:
            return None


def migrate_mlflow(source_db: Path, target_url: str, artifacts: tuple[Path, Path] | None = None) -> dict[str, int]:
    """Copy an MLflow SQLite store into an (upgraded, empty) PostgreSQL one."""
    source, target = _sqlite(source_db), sa.create_engine(target_url)
    try:
        if _revision(source) != _revision(target):
            raise UserError(f"The MLflow store {source_db} is at schema revision {_revision(source)} and the team's at "
                            f"{_revision(target)}: run `mlflow db upgrade sqlite:///{source_db}` first.")
        with target.connect() as conn:
            runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar()
            prompts = conn.execute(sa.text("SELECT count(*) FROM registered_models")).scalar()
        if runs or prompts:
            raise UserError(f"The team's MLflow database already holds {runs} runs and {prompts} prompts or models; "
                            "a migration never merges two histories: migrate into a new team stack.")
        copied = copy_tables(source, target, replace=True, skip=("alembic_version",))
    finally:
        source.dispose()
        target.dispose()
    if artifacts and artifacts[0].is_dir():
        shutil.copytree(artifacts[0], artifacts[1], dirs_exist_ok=True)
    return copied


def copy_tables(source: sa.Engine, target: sa.Engine, *, replace: bool = False,
                skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Every row of every source table into the target's table of the same name (created from the source's
    definition when missing), in one transaction; `replace` empties the target tables first (else they must
    be empty). Sequences of integer keys are moved past the copied ids."""
    source_meta, target_meta = sa.MetaData(), sa.MetaData()
    source_meta.reflect(source)
    tables = [t for t in source_meta.sorted_tables if t.name not in skip]
    with target.begin() as conn:
        present = set(sa.inspect(conn).get_table_names())
        for table in tables:
            if table.name not in present:
                table.to_metadata(target_meta).create(conn)
        target_meta.clear()
        target_meta.reflect(conn, only=[t.name for t in tables])
        ordered = [target_meta.tables[t.name] for t in tables]
        for table in reversed(target_meta.sorted_tables):
            if table.name in {t.name for t in tables}:
                if replace:
                    conn.execute(table.delete())
                elif conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                    raise UserError(f"The team's table {table.name} already holds rows: a migration never merges two "
                                    "histories; migrate into a new team stack.")
        counts = {}
        with source.connect() as read:
            for src, dst in zip(tables, ordered, strict=True):
                columns = [c.name for c in src.columns if c.name in dst.columns]
                result = read.execute(sa.select(*[src.c[c] for c in columns]))
                counts[src.name] = 0
                while batch := result.fetchmany(BATCH):
                    conn.execute(dst.insert(), [dict(zip(columns, row, strict=True)) for row in batch])
                    counts[src.name] += len(batch)
        if conn.dialect.name == "postgresql":
            _advance_sequences(conn, ordered)
    return counts


def _advance_sequences(conn, tables) -> None:
    for table in tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, sa.Integer):
                continue
            sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                    {"t": f'"{table.name}"', "c": column.name}).scalar()
            if sequence:
                top = f'SELECT MAX("{column.name}") FROM "{table.name}"'
                conn.execute(sa.text(f"SELECT setval(:s, COALESCE(({top}), 0) + 1, false)"), {"s": sequence})
