"""The audit log and the registry never disagree: one governed writer per prompt, write-ahead intents.

Every governed write to a prompt (register a version, move an alias) runs under a lock on that
prompt, shared by every process that uses the same audit store (an advisory lock in PostgreSQL, a
lock file beside a SQLite store), so a check and the write it allows are one step and two
processes cannot both register the same template. Before the write an `intent` entry goes to the
audit log; after it, the entry that records it. A process killed between the two leaves an open
intent; the next governed write to that prompt (or `audit verify`) settles it under the same lock:
if the registry shows the write happened, the missing entry is appended ("recorded after an
interrupted write"), otherwise an `abandoned` entry closes the intent.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from filelock import FileLock, Timeout

from promptyard.errors import ServiceError
from promptyard.governance.audit import ALIAS_MOVES, AuditEntry, AuditLog
from promptyard.governance.tags import TAG_AUTHOR
from promptyard.registry import Registry

__all__ = ["Journal", "template_sha256"]

LOCK_TIMEOUT_S = 120
_held = threading.local()  # prompts whose lock this thread holds: taking it again is a no-op


def template_sha256(template) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()


def _lock_key(prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big", signed=True)


class Journal:
    """Serialised, write-ahead governed writes for one audit store and one registry."""

    def __init__(self, audit: AuditLog, registry: Registry):
        self.audit, self.registry = audit, registry

    # -- the lock ---------------------------------------------------------------------------------
    @contextmanager
    def locked(self, prompt: str) -> Iterator[None]:
        """Hold the prompt's lock (for every process sharing this audit store); re-entrant per thread."""
        held = _held.__dict__.setdefault("prompts", set())
        key = (self.audit.url, prompt)
        if key in held:
            yield
            return
        held.add(key)
        try:
            with self._lock(prompt):
                self.settle(prompt)
                yield
        finally:
            held.discard(key)

    @contextmanager
    def _lock(self, prompt: str) -> Iterator[None]:
        if self.audit.engine.dialect.name == "postgresql":
            with self.audit.engine.connect() as conn:
                conn.execute(sa.text(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'"))
                try:
                    conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _lock_key(prompt)})
                except sa.exc.OperationalError:
                    raise self._busy(prompt) from None
                try:
                    yield
                finally:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key(prompt)})
                    conn.commit()
            return
        database = self.audit.engine.url.database
        folder = Path(database).expanduser().parent if database and database != ":memory:" else Path.home()
        folder = folder / "promptyard-locks"
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / f"{hashlib.sha256(prompt.encode()).hexdigest()[:32]}.lock",
                        timeout=LOCK_TIMEOUT_S)
        try:
            with lock:
                yield
        except Timeout:
            raise self._busy(prompt) from None

    @staticmethod
    def _busy(prompt: str) -> ServiceError:
        return ServiceError(f"Another process has held the write lock of prompt {prompt!r} for over "
                            f"{LOCK_TIMEOUT_S} s: wait for it to finish, then try again.")

    # -- write-ahead ------------------------------------------------------------------------------
    @contextmanager
    def writing(self, user: str, prompt: str, action: str, *, alias: str | None = None,
                version: int | None = None, template=None) -> Iterator[None]:
        """Lock the prompt, settle an interrupted write, record the intent; the caller then writes the
        registry and appends the entry that records it. A write that fails is settled at once."""
        with self.locked(prompt):
            self.audit.append(user, "intent", prompt=prompt, version=version, alias=alias,
                              after={"action": action, "template_sha256":
                                     template_sha256(template) if template is not None else None})
            try:
                yield
            except BaseException:
                try:
                    self.settle(prompt)
                except Exception:  # noqa: BLE001 - the next writer settles it; the first error is the story
                    pass
                raise

    def open_intent(self, prompt: str) -> AuditEntry | None:
        """The prompt's newest intent if nothing after it records or abandons it."""
        intents = self.audit.find("intent", prompt=prompt)
        if not intents:
            return None
        intent = intents[-1]
        action = json.loads(intent.after or "{}").get("action")
        for entry in self.audit.entries(prompt):
            if entry.seq <= intent.seq:
                continue
            if entry.action == "abandoned" and entry.reason and f"intent #{intent.seq}" in entry.reason:
                return None
            if entry.action == action and entry.user == intent.user and entry.alias == intent.alias \
                    and (intent.version is None or entry.version == intent.version):
                return None
        return intent

    def settle(self, prompt: str) -> AuditEntry | None:
        """Close the prompt's open intent from what the registry shows; return the entry appended."""
        intent = self.open_intent(prompt)
        if intent is None:
            return None
        recorded = json.loads(intent.after or "{}")
        note = f"recorded after an interrupted write (intent #{intent.seq})"
        if recorded.get("action") == "register":
            version = self._unrecorded_version(prompt, intent.user, recorded.get("template_sha256"))
            if version is not None:
                return self.audit.append(intent.user, "register", prompt=prompt, version=int(version.version),
                                         reason=note, after={"template": version.template,
                                                             "response_format": version.response_format,
                                                             "model_config": version.model_config})
        elif recorded.get("action") in ALIAS_MOVES and intent.alias and intent.version is not None:
            now = self.registry.alias_version(prompt, intent.alias)
            history = self.audit.alias_history(prompt, intent.alias)
            audited = int(history[-1].after) if history and history[-1].after not in (None, "null") else None
            if now == intent.version and audited != now:
                return self.audit.append(intent.user, recorded["action"], prompt=prompt, version=now,
                                         alias=intent.alias, before=audited, after=now, reason=note)
        return self.audit.append(intent.user, "abandoned", prompt=prompt, version=intent.version, alias=intent.alias,
                                 reason=f"the write did not happen (intent #{intent.seq})")

    def settle_all(self) -> list[AuditEntry]:
        """Settle every prompt's interrupted write (what `audit verify` does first)."""
        settled = []
        for prompt in sorted({e.prompt for e in self.audit.find("intent") if e.prompt}):
            if self.open_intent(prompt) is not None:
                with self.locked(prompt):  # settles on taking the lock
                    settled.extend(e for e in self.audit.entries(prompt)[-1:] if "intent #" in (e.reason or ""))
        return settled

    def _unrecorded_version(self, prompt: str, user: str, digest: str | None):
        if digest is None or self.registry.prompt(prompt) is None:
            return None
        registered = {e.version for e in self.audit.find("register", prompt=prompt)}
        for version in self.registry.versions(prompt):
            if int(version.version) in registered or (version.tags or {}).get(TAG_AUTHOR) != user:
                continue
            if template_sha256(version.template) == digest:
                return version
        return None
