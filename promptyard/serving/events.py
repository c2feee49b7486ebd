"""Durable A/B events: exposures (a unit was served a version) and outcomes (what came of it).

SQLAlchemy over SQLite by default (`<home>/ab_events.db`, WAL, writers serialised with
`BEGIN IMMEDIATE` and a busy timeout, so several processes can write at once without losing a
row) or any SQLAlchemy URL, e.g. `postgresql+psycopg://user@host/db` (install the driver).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from promptyard.errors import UnknownAssignmentError, UserError
from promptyard.runtime import engine_for

__all__ = ["EventStore", "Observation"]

_metadata = sa.MetaData()

exposures = sa.Table(
    "promptyard_ab_exposures", _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("experiment_id", sa.String(200), nullable=False),
    sa.Column("unit_id", sa.String(200), nullable=False),
    sa.Column("prompt", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
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


@dataclass(frozen=True)
class Observation:
    version: int
    value: float
    latency_ms: float | None
    cost: float | None
    at: float


class EventStore:
    """Record and read A/B exposures and outcomes."""

    def __init__(self, url: str):
        self.url = url
        self.engine = engine_for(url)
        _metadata.create_all(self.engine, checkfirst=True)

    def record_exposure(self, experiment_id: str, unit_id: str, prompt: str, version: int) -> str:
        """Store one exposure and return its assignment id."""
        assignment_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(exposures.insert().values(id=assignment_id, experiment_id=experiment_id, unit_id=unit_id,
                                                   prompt=prompt, version=int(version), at=time.time()))
        return assignment_id

    def record_outcome(self, assignment_id: str, value: float, *, latency_ms: float | None = None,
                       cost: float | None = None) -> None:
        """Store the outcome of one exposure; one outcome per assignment."""
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise UserError(f"Outcome value {value!r} is not a number: record 1/0 (or True/False) or a score.") from None
        if value != value:
            raise UserError("Outcome value is NaN: record a number.")
        for name, extra in (("latency_ms", latency_ms), ("cost", cost)):
            if extra is not None and (extra != extra or extra < 0):
                raise UserError(f"{name}={extra!r} is not valid: give a number ≥ 0, or leave it out.")
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

    def version_of(self, experiment_id: str, unit_id: str) -> int | None:
        """The version this unit was first served in this experiment, if any."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(exposures.c.version)
                .where(exposures.c.experiment_id == experiment_id, exposures.c.unit_id == unit_id)
                .order_by(exposures.c.at).limit(1)
            ).scalar()

    def exposure_counts(self, experiment_id: str) -> dict[int, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(exposures.c.version, sa.func.count())
                                .where(exposures.c.experiment_id == experiment_id)
                                .group_by(exposures.c.version)).all()
        return {int(version): int(count) for version, count in rows}

    def observations(self, experiment_id: str) -> list[Observation]:
        """Every outcome of the experiment, in arrival order."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(outcomes.c.version, outcomes.c.value, outcomes.c.latency_ms,
                                          outcomes.c.cost, outcomes.c.at)
                                .where(outcomes.c.experiment_id == experiment_id)
                                .order_by(outcomes.c.at, outcomes.c.id)).all()
        return [Observation(int(r.version), float(r.value), r.latency_ms, r.cost, float(r.at)) for r in rows]

    def _where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()
