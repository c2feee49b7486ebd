"""Durable A/B events: exposures (a unit was served a version) and outcomes (what came of it).

SQLAlchemy over SQLite by default (`<home>/ab_events.db`, WAL, writers serialised with
`BEGIN IMMEDIATE` and a busy timeout, so several processes can write at once without losing a
row) or any SQLAlchemy URL, e.g. `postgresql+psycopg://user@host/db` (install the driver).

Apps do not write here on the request path: `PromptClient` buffers events and a background
writer stores them with `write_batch` (see `writer`). `record_exposure` / `record_outcome` are the
synchronous one-row path (one transaction each). Reads through an `EventStore` first flush the
events this process has buffered for the same store, so a process reads its own writes.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from promptyard.errors import UnknownAssignmentError, UserError
from promptyard.runtime import engine_for

__all__ = ["EventStore", "Observation", "check_outcome", "register_buffer"]

_metadata = sa.MetaData()

exposures = sa.Table(
    "promptyard_ab_exposures", _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", sa.String(200), nullable=False),
    sa.Column("unit_id", sa.String(200), nullable=False),
    sa.Column("prompt", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_promptyard_ab_exposures_unit", "experiment_id", "unit_id"),
)

outcomes = sa.Table(
    "promptyard_ab_outcomes", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("assignment_id", sa.String(32), sa.ForeignKey(exposures.c.id), nullable=False, unique=True),
    sa.Column("experiment_id", sa.String(200), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float),
    sa.Column("cost", sa.Float),
    sa.Column("at", sa.Float, nullable=False),
)

EXPOSURE, OUTCOME = "e", "o"  # the kinds of buffered rows `write_batch` takes
_buffers: dict[str, weakref.WeakSet] = {}  # store URL -> this process' buffers of unwritten events
_buffers_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _buffers_lock
    _buffers_lock = threading.Lock()


def register_buffer(url: str, buffer) -> None:
    """Let reads of the store at `url` flush `buffer` (anything with `flush()`) first."""
    if not _buffers and hasattr(os, "register_at_fork"):  # a lock another thread holds at fork() stays held
        os.register_at_fork(after_in_child=_reset_after_fork)
    with _buffers_lock:
        _buffers.setdefault(url, weakref.WeakSet()).add(buffer)


@dataclass(frozen=True)
class Observation:
    version: int  # the version of the unit's first exposure: the arm it was randomised to
    value: float
    latency_ms: float | None
    cost: float | None
    at: float
    unit: str | None = None  # None: the outcome is its own unit
    epoch: int = 0  # the allocation epoch of the unit's first exposure
    served: int | None = None  # the version that produced this outcome (differs from `version` after a switch)


def check_outcome(value, latency_ms, cost) -> tuple[float, float | None, float | None]:
    """The outcome value, latency and cost as floats, or a UserError naming what is wrong."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"Outcome value {value!r} is not a number: record 1/0 (or True/False) or a score.") from None
    if number != number:
        raise UserError("Outcome value is NaN: record a number.")
    extras = []
    for name, given in (("latency_ms", latency_ms), ("cost", cost)):
        try:
            extra = None if given is None else float(given)
        except (TypeError, ValueError):
            extra = float("nan")
        if extra is not None and (extra != extra or extra < 0):
            raise UserError(f"{name}={given!r} is not valid: give a number ≥ 0, or leave it out.")
        extras.append(extra)
    return number, extras[0], extras[1]


class EventStore:
    """Record and read A/B exposures and outcomes."""

    def __init__(self, url: str):
        self.url = url
        self.engine = engine_for(url)
        _metadata.create_all(self.engine, checkfirst=True)
        columns = {c["name"] for c in sa.inspect(self.engine).get_columns(exposures.name)}
        if "epoch" not in columns:  # a store written before epochs were recorded: every unit entered in epoch 0
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {exposures.name} ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0")

    # -- the synchronous path ---------------------------------------------------------------------
    def record_exposure(self, experiment_id: str, unit_id: str, prompt: str, version: int, *, epoch: int = 0) -> str:
        """Store one exposure now and return its assignment id."""
        assignment_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(exposures.insert().values(id=assignment_id, experiment_id=experiment_id, unit_id=unit_id,
                                                   prompt=prompt, version=int(version), at=time.time(), epoch=epoch))
        return assignment_id

    def record_outcome(self, assignment_id: str, value: float, *, latency_ms: float | None = None,
                       cost: float | None = None) -> None:
        """Store the outcome of one exposure now; one outcome per assignment."""
        value, latency_ms, cost = check_outcome(value, latency_ms, cost)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(sa.select(exposures.c.experiment_id, exposures.c.version)
                                   .where(exposures.c.id == assignment_id)).first()
                if row is None:
                    raise UnknownAssignmentError(
                        f"No exposure with assignment id {assignment_id!r} in {self._where()}: record outcomes "
                        "for assignments returned by `client.assign(...)` against this same event store."
                    )
                conn.execute(outcomes.insert().values(
                    assignment_id=assignment_id, experiment_id=row.experiment_id, version=row.version,
                    value=value, latency_ms=latency_ms, cost=cost, at=time.time()))
        except IntegrityError:
            raise UserError(f"Assignment {assignment_id} already has an outcome: record one outcome per "
                            "assignment (assign again for the next request).") from None

    # -- the batched path -------------------------------------------------------------------------
    def write_batch(self, rows: list[tuple]) -> tuple[int, int, list[tuple], list[str]]:
        """Write buffered rows in one transaction, in order.

        Rows are `(EXPOSURE, id, experiment_id, unit_id, prompt, version, epoch, at)` and
        `(OUTCOME, assignment_id, experiment_id | None, version | None, value, latency_ms, cost, at)`;
        an outcome without experiment is resolved against the stored exposures. Returns (exposures
        written, outcomes written, outcomes whose exposure is not stored (yet), ids that already had
        an outcome and were skipped)."""
        exposure_rows = [dict(id=r[1], experiment_id=r[2], unit_id=r[3], prompt=r[4], version=r[5], epoch=r[6],
                              at=r[7]) for r in rows if r[0] == EXPOSURE]
        pending = [r for r in rows if r[0] == OUTCOME]
        unresolved, duplicates = [], []
        with self.engine.begin() as conn:
            if exposure_rows:
                conn.execute(exposures.insert(), exposure_rows)
            if not pending:
                return len(exposure_rows), 0, [], []
            ids = list({r[1] for r in pending})
            done = set(conn.execute(sa.select(outcomes.c.assignment_id)
                                    .where(outcomes.c.assignment_id.in_(ids))).scalars())
            foreign = list({r[1] for r in pending if r[2] is None})
            found = {row.id: (row.experiment_id, row.version) for row in conn.execute(
                sa.select(exposures.c.id, exposures.c.experiment_id, exposures.c.version)
                .where(exposures.c.id.in_(foreign)))} if foreign else {}
            outcome_rows = []
            for r in pending:
                assignment_id, experiment_id, version = r[1], r[2], r[3]
                if experiment_id is None:
                    if assignment_id not in found:
                        unresolved.append(r)
                        continue
                    experiment_id, version = found[assignment_id]
                if assignment_id in done:
                    duplicates.append(assignment_id)
                    continue
                done.add(assignment_id)
                outcome_rows.append(dict(assignment_id=assignment_id, experiment_id=experiment_id, version=version,
                                         value=r[4], latency_ms=r[5], cost=r[6], at=r[7]))
            if outcome_rows:
                conn.execute(outcomes.insert(), outcome_rows)
        return len(exposure_rows), len(outcome_rows), unresolved, duplicates

    # -- reads ------------------------------------------------------------------------------------
    def flush_buffers(self) -> None:
        """Write what this process has buffered for this store (read your own writes)."""
        with _buffers_lock:
            buffers = list(_buffers.get(self.url, ()))
        for buffer in buffers:
            buffer.flush()

    def version_of(self, experiment_id: str, unit_id: str, *, flush: bool = True) -> int | None:
        """The version this unit was first served in this experiment, if any (`flush`: after writing what
        this process has buffered)."""
        if flush:
            self.flush_buffers()
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(exposures.c.version)
                .where(exposures.c.experiment_id == experiment_id, exposures.c.unit_id == unit_id)
                .order_by(exposures.c.at, exposures.c.id).limit(1)
            ).scalar()

    def _first_exposures(self, conn, experiment_id: str, before_epoch: int | None = None) -> dict[str, tuple[int, int]]:
        """unit id -> (version, epoch) of its first exposure in the experiment: its arm and its entry epoch."""
        query = (sa.select(exposures.c.unit_id, exposures.c.version, exposures.c.epoch)
                 .where(exposures.c.experiment_id == experiment_id).order_by(exposures.c.at, exposures.c.id))
        first: dict[str, tuple[int, int]] = {}
        for unit, version, epoch in conn.execute(query):
            if unit not in first:
                first[unit] = (int(version), int(epoch))
        if before_epoch is not None:
            first = {unit: found for unit, found in first.items() if found[1] < before_epoch}
        return first

    def first_versions(self, experiment_id: str, *, before_epoch: int | None = None) -> dict[str, int]:
        """unit id -> the version of its first exposure, for units that entered before `before_epoch`."""
        self.flush_buffers()
        with self.engine.connect() as conn:
            return {unit: version for unit, (version, _) in
                    self._first_exposures(conn, experiment_id, before_epoch).items()}

    def exposure_counts(self, experiment_id: str) -> dict[int, int]:
        self.flush_buffers()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(exposures.c.version, sa.func.count())
                                .where(exposures.c.experiment_id == experiment_id)
                                .group_by(exposures.c.version)).all()
        return {int(version): int(count) for version, count in rows}

    def observations(self, experiment_id: str) -> list[Observation]:
        """Every outcome of the experiment in arrival order, each with its unit's arm and entry epoch."""
        self.flush_buffers()
        query = (sa.select(exposures.c.unit_id, outcomes.c.version, outcomes.c.value, outcomes.c.latency_ms,
                           outcomes.c.cost, outcomes.c.at)
                 .select_from(outcomes.join(exposures, exposures.c.id == outcomes.c.assignment_id))
                 .where(outcomes.c.experiment_id == experiment_id)
                 .order_by(outcomes.c.at, outcomes.c.id))
        with self.engine.connect() as conn:
            first = self._first_exposures(conn, experiment_id)
            rows = conn.execute(query).all()
        return [Observation(first[r.unit_id][0], float(r.value), r.latency_ms, r.cost, float(r.at), r.unit_id,
                            first[r.unit_id][1], int(r.version)) for r in rows]

    def history(self, prompt: str, version: int, *, limit: int = 200_000) -> tuple[list[str], list[float]]:
        """(unit ids, values) of the latest outcomes `prompt` version `version` produced, in any experiment."""
        self.flush_buffers()
        query = (sa.select(exposures.c.experiment_id, exposures.c.unit_id, outcomes.c.value)
                 .select_from(outcomes.join(exposures, exposures.c.id == outcomes.c.assignment_id))
                 .where(exposures.c.prompt == prompt, outcomes.c.version == int(version))
                 .order_by(outcomes.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [f"{r.experiment_id}\x1f{r.unit_id}" for r in rows], [float(r.value) for r in rows]

    def _where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()
