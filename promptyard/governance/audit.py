"""An append-only, tamper-evident audit log of everything that changes prompts.

Each entry records who, when, what (action, prompt, version, alias), before/after, reason and
evidence run id, plus the hash of the previous entry; its own hash covers all of it. Editing an
entry breaks its hash; deleting one breaks the chain after it; `verify` reports the first break.
Deleting the newest entries is caught by comparing with a head hash recorded elsewhere
(`verify(expected_head=...)`, `promptyard audit verify --head HASH`).

Stored through SQLAlchemy (SQLite in the state directory by default, PostgreSQL by URL); appends
are serialised, so concurrent writers cannot fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from promptyard.errors import AuditTamperedError
from promptyard.runtime import engine_for

__all__ = ["AuditLog", "AuditEntry", "ACTIONS", "ALIAS_MOVES"]

ACTIONS = ("register", "alias", "approve", "reject", "promote", "rollback", "policy", "experiment", "tag",
           "evidence", "refused", "delete", "intent", "abandoned")
ALIAS_MOVES = ("alias", "promote", "rollback")
GENESIS = "0" * 64

_metadata = sa.MetaData()
_entries = sa.Table(
    "promptyard_audit", _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("prompt", sa.String(300)),
    sa.Column("version", sa.Integer),
    sa.Column("alias", sa.String(100)),
    sa.Column("before", sa.Text),
    sa.Column("after", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("evidence_run_id", sa.String(64)),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    user: str
    action: str
    prompt: str | None
    version: int | None
    alias: str | None
    before: str | None
    after: str | None
    reason: str | None
    evidence_run_id: str | None
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        data = asdict(self)
        data.pop("hash")
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


class AuditLog:
    def __init__(self, url: str):
        self.url = url
        self.engine = engine_for(url)
        _metadata.create_all(self.engine, checkfirst=True)

    def append(self, user: str, action: str, *, prompt: str | None = None, version: int | None = None,
               alias: str | None = None, before: Any = None, after: Any = None, reason: str | None = None,
               evidence_run_id: str | None = None) -> AuditEntry:
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one appender at a time: the chain never forks
                conn.exec_driver_sql("LOCK TABLE promptyard_audit IN SHARE ROW EXCLUSIVE MODE")
            last = conn.execute(sa.select(_entries.c.seq, _entries.c.hash).order_by(_entries.c.seq.desc())
                                .limit(1)).first()
            seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
            draft = AuditEntry(seq, datetime.now(UTC).isoformat(timespec="microseconds"), user, action, prompt,
                               None if version is None else int(version), alias, _text(before), _text(after),
                               reason or None, evidence_run_id, prev, "")
            entry = AuditEntry(**{**asdict(draft), "hash": draft.expected_hash()})
            conn.execute(_entries.insert().values(**asdict(entry)))
        return entry

    def entries(self, prompt: str | None = None) -> list[AuditEntry]:
        query = sa.select(_entries).order_by(_entries.c.seq)
        if prompt:
            query = query.where(_entries.c.prompt == prompt)
        with self.engine.connect() as conn:
            return [AuditEntry(**row._mapping) for row in conn.execute(query)]

    def last(self, action: str | None = None, *, without_prompt: bool = False) -> AuditEntry | None:
        """The newest entry (of `action`; with `without_prompt`, only entries about no prompt)."""
        query = sa.select(_entries).order_by(_entries.c.seq.desc()).limit(1)
        if action:
            query = query.where(_entries.c.action == action)
        if without_prompt:
            query = query.where(_entries.c.prompt.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return AuditEntry(**row._mapping) if row else None

    def find(self, action: str, *, prompt: str | None = None, version: int | None = None,
             evidence_run_id: str | None = None) -> list[AuditEntry]:
        """Entries of one action (about one prompt / version / evidence run), oldest first."""
        query = sa.select(_entries).where(_entries.c.action == action).order_by(_entries.c.seq)
        if prompt is not None:
            query = query.where(_entries.c.prompt == prompt)
        if version is not None:
            query = query.where(_entries.c.version == int(version))
        if evidence_run_id is not None:
            query = query.where(_entries.c.evidence_run_id == evidence_run_id)
        with self.engine.connect() as conn:
            return [AuditEntry(**row._mapping) for row in conn.execute(query)]

    def alias_history(self, prompt: str, alias: str) -> list[AuditEntry]:
        """Every audited move of `prompt@alias`, oldest first."""
        query = (sa.select(_entries).where(_entries.c.prompt == prompt, _entries.c.alias == alias,
                                           _entries.c.action.in_(ALIAS_MOVES)).order_by(_entries.c.seq))
        with self.engine.connect() as conn:
            return [AuditEntry(**row._mapping) for row in conn.execute(query)]

    def head(self) -> str:
        newest = self.last()
        return f"{newest.seq}:{newest.hash}" if newest else f"0:{GENESIS}"

    def problems(self, expected_head: str | None = None) -> Iterator[str]:
        previous_hash, expected_seq = GENESIS, 1
        entries = self.entries()
        for entry in entries:
            if entry.seq != expected_seq:
                yield (f"entry {expected_seq}" + (f"..{entry.seq - 1}" if entry.seq - 1 > expected_seq else "")
                       + " is missing (deleted)")
            if entry.prev_hash != previous_hash:
                yield f"entry {entry.seq} does not follow the entry before it (an entry was deleted or edited)"
            if entry.expected_hash() != entry.hash:
                yield f"entry {entry.seq} was edited: its content does not match its hash"
            previous_hash, expected_seq = entry.hash, entry.seq + 1
        if expected_head:
            seq, _, digest = expected_head.partition(":")
            found = {e.seq: e.hash for e in entries}
            if not seq.isdigit() or found.get(int(seq)) != digest:
                yield f"the recorded head {expected_head} is not in the log (entries after it were removed or rewritten)"

    def verify(self, expected_head: str | None = None) -> int:
        """Raise `AuditTamperedError` naming the first problem; return the number of entries."""
        problems = list(self.problems(expected_head))
        if problems:
            raise AuditTamperedError(f"The audit log at {self.engine.url.render_as_string(hide_password=True)} "
                                     f"was tampered with: {'; '.join(problems[:5])}.")
        return len(self.entries())

    def export_jsonl(self, prompt: str | None = None) -> str:
        return "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in self.entries(prompt))

    def close(self) -> None:
        self.engine.dispose()
