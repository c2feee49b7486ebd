"""SQLAlchemy engines for promptyard's own tables (A/B events, audit log).

SQLite (the default, a file in the state directory) runs in WAL mode with writers serialised by
`BEGIN IMMEDIATE` and a busy timeout, so several processes can write without losing a row; any
other SQLAlchemy URL (e.g. `postgresql+psycopg://...`) is used as is.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

__all__ = ["engine_for"]


def engine_for(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # let SQLAlchemy's BEGIN below decide the lock
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection):  # take the write lock up front: no lock upgrade that could fail
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
