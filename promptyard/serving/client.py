"""The read path for apps: a cached prompt client that keeps answering when the registry does not.

    client = PromptClient()                       # tracking URI from settings
    prompt = client.get("support@production")     # ServedPrompt
    text = prompt.format(question="Where is my order?")

- In-process cache with a TTL (aliases; versions never change). After the TTL the cached prompt
  is served at once and one background refresh runs per prompt (stale-while-revalidate, no
  thundering herd); an alias moved by another process is seen within about one TTL.
- A last-known-good snapshot on disk: when the registry is unreachable `get` answers from it,
  even at cold start, and logs that it did. `fallback=` covers the very first start.
- Prompts stay plain MLflow prompts: `mlflow.genai.load_prompt` reads the same versions.

A/B tests (see `promptyard.experiments`): while an alias runs an experiment,

    a = client.assign("support@production", unit_id=user_id)   # sticky version for this user
    reply = call_llm(a.prompt.format(question=q))
    client.record_outcome(a, 1 if thumbs_up else 0, latency_ms=..., cost=...)

records one exposure per `assign` and one outcome per assignment in the event store — through an
in-memory queue written in batches by a background thread (`writer`), never on the request path:
`client.close()` (or the exit of the process) writes what is left; a crash loses at most the last
`flush_interval` seconds of events. Assignment reads nothing either: a unit's version is the hash
of (experiment id, unit id) onto the weights; after a reallocation, units that entered an earlier
epoch keep their first version through an in-memory map of them, loaded with one query when the
client first sees the new epoch (the assignments arriving meanwhile wait for it, up to 5 s).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from promptyard.errors import PromptNotFoundError, ServiceError, UnknownAssignmentError, UserError
from promptyard.registry import (
    PromptRef,
    PromptTemplate,
    Registry,
    is_chat,
    render,
    render_messages,
    template_variables,
)
from promptyard.serving.events import check_outcome
from promptyard.serving.experiments import Experiment, check_unit, choose_version, tag_key

__all__ = ["PromptClient", "ServedPrompt", "Assignment"]

log = logging.getLogger("promptyard.serving")
_ASSIGNMENT_ID = re.compile(r"[0-9a-f]{32}").fullmatch
_LOAD_WAIT = 5.0  # seconds the first assignments after a reallocation wait for the map of earlier units


@dataclass(frozen=True)
class ServedPrompt:
    name: str
    version: int
    template: PromptTemplate  # text, or chat messages (MLflow's chat format)
    model_config: dict[str, Any] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None
    source: str = "registry"  # registry | snapshot | fallback
    experiment: str | None = None  # the running A/B experiment on this alias, as stored in the registry

    @property
    def variables(self) -> list[str]:
        return template_variables(self.template)

    def format(self, **values: Any) -> str | list[dict[str, str]]:
        """The text, or for a chat prompt its messages, with the values filled in (as MLflow's `format`)."""
        return render_messages(self.template, values) if is_chat(self.template) else render(self.template, values)


@dataclass(frozen=True)
class Assignment:
    """What `PromptClient.assign` served to one unit; pass it to `record_outcome`."""

    id: str | None  # None when no experiment runs on the alias (outcomes are then not recorded)
    experiment_id: str | None
    unit_id: str
    prompt: ServedPrompt

    @property
    def version(self) -> int:
        return self.prompt.version


class _Sticky:
    """Where units go in one epoch of one experiment: the hash, except units that entered an earlier
    epoch with another version (loaded with one query when the client first sees the epoch)."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.moved: dict[str, int] = {}
        self.ready = threading.Event()
        self.loading = experiment.epoch > 0
        if not self.loading:
            self.ready.set()

    def load(self, client: PromptClient) -> None:
        try:
            experiment = self.experiment
            first = client.events.first_versions(experiment.id, before_epoch=experiment.epoch)
            self.moved = {unit: version for unit, version in first.items()
                          if version in experiment.weights and version != choose_version(experiment, unit)}
            self.ready.set()
        except Exception as exc:  # read units one by one instead
            log.warning("could not load the units of %s before epoch %s (%s); reading them one by one",
                        self.experiment.id, self.experiment.epoch, exc)
        finally:
            self.loading = False

    def version(self, client: PromptClient, unit: str) -> int:
        if not self.ready.is_set():
            if self.loading:  # once per reallocation: wait for the map (one query)
                self.ready.wait(_LOAD_WAIT)
            if not self.ready.is_set():  # the store is slow or down: this unit's first version, on its own
                try:
                    found = client.events.version_of(self.experiment.id, unit, flush=False)
                except Exception as exc:
                    log.warning("cannot read the first version of unit %s (%s); assigning by hash", unit, exc)
                    found = None
                if found in self.experiment.weights:
                    return found
        moved = self.moved.get(unit)  # read once the map is loaded (the first assignments wait for it)
        return moved if moved is not None else choose_version(self.experiment, unit)


@dataclass
class _Entry:
    prompt: ServedPrompt
    fetched_at: float
    immutable: bool = False  # `name/3` from the registry never changes
    refreshing: bool = False


class PromptClient:
    """Thread-safe cached reads of `name@alias` and `name/version` references."""

    def __init__(self, tracking_uri: str | None = None, *, ttl_seconds: float = 30.0,
                 snapshot_dir: str | Path | None = None, probe_timeout: float = 1.0,
                 events_url: str | None = None, flush_interval: float = 0.2):
        from promptyard.runtime import get_settings

        settings = get_settings()
        self.registry = Registry(tracking_uri or settings.tracking_uri)
        self.ttl = ttl_seconds
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else settings.home_dir / "snapshots"
        self.probe_timeout = probe_timeout
        self.events_url = events_url or settings.events_url
        self.flush_interval = flush_interval
        self._events = None
        self._writer = None
        self._sticky: dict[str, _Sticky] = {}  # experiment JSON (one per epoch) -> where units go
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="promptyard-refresh")

    # -- public ----------------------------------------------------------------------------------
    def get(self, ref: str, *, fallback: str | None = None) -> ServedPrompt:
        entry = self._cache.get(ref)
        if entry is not None:
            if entry.immutable:
                return entry.prompt
            if time.monotonic() - entry.fetched_at >= self.ttl:
                self._refresh_in_background(ref, entry)
            return entry.prompt
        return self._load_cold(ref, fallback)

    def assign(self, ref: str, unit_id: str, *, fallback: str | None = None) -> Assignment:
        """The version `ref` serves to this unit: sticky under a running experiment, and recorded.

        No I/O on a warm client: the exposure is queued and written in the background."""
        unit = check_unit(unit_id)
        served = self.get(ref, fallback=fallback)
        if not served.experiment:
            return Assignment(None, None, unit, served)
        sticky = self._sticky.get(served.experiment) or self._sticky_for(served.experiment)
        experiment = sticky.experiment
        version = sticky.version(self, unit)
        prompt = served
        if version != served.version:
            try:
                prompt = self.get(f"{experiment.prompt}/{version}")
            except Exception as exc:  # version unreadable and never cached: serve the control, honestly recorded
                log.warning("cannot read %s/%s (%s); serving version %s", experiment.prompt, version, exc,
                            served.version)
        assignment_id = os.urandom(16).hex()
        self.writer.exposure(assignment_id, experiment.id, unit, experiment.prompt, prompt.version, experiment.epoch)
        return Assignment(assignment_id, experiment.id, unit, prompt)

    def record_outcome(self, assignment: Assignment | str, value: float, *, latency_ms: float | None = None,
                       cost: float | None = None) -> bool:
        """Record the outcome of an assignment (1/0 or a score); False when no experiment was running.

        Queued, not written: an assignment this client issued is checked at once (a second outcome is
        an error); an id from another process is matched to its exposure when written (see `writer`)."""
        if isinstance(assignment, Assignment):
            if assignment.id is None:
                return False
            assignment_id = assignment.id
        elif isinstance(assignment, str) and assignment:
            assignment_id = assignment
        else:
            raise UserError(f"record_outcome needs the Assignment returned by assign() (or its id), got {assignment!r}.")
        number, latency_ms, cost = check_outcome(value, latency_ms, cost)
        if not _ASSIGNMENT_ID(assignment_id):
            raise UnknownAssignmentError(
                f"No exposure with assignment id {assignment_id!r}: record outcomes for the Assignment returned by "
                "`client.assign(...)` (or its `.id`, 32 hex characters).")
        self.writer.outcome(assignment_id, number, latency_ms, cost)
        return True

    @property
    def events(self):
        if self._events is None:
            from promptyard.serving.events import EventStore

            with self._lock:
                if self._events is None:
                    self._events = EventStore(self.events_url)
        return self._events

    @property
    def writer(self):
        """The background writer of this client's A/B events (created at the first event)."""
        if self._writer is None:
            from promptyard.serving.writer import EventWriter

            events = self.events
            with self._lock:
                if self._writer is None:
                    self._writer = EventWriter(events, interval=self.flush_interval)
        return self._writer

    def flush(self) -> None:
        """Write the A/B events recorded so far now (they are otherwise written within `flush_interval`)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Write the remaining A/B events, stop background work and release connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._writer is not None:
            self._writer.close()
        if self._events is not None:
            self._events.close()

    def _sticky_for(self, text: str) -> _Sticky:
        sticky = _Sticky(Experiment.from_json(text))
        with self._lock:
            found = self._sticky.get(text)
            if found is not None:
                return found
            for key in [k for k, v in self._sticky.items() if v.experiment.id == sticky.experiment.id]:
                del self._sticky[key]  # an earlier epoch of the same experiment
            self._sticky[text] = sticky
        if not sticky.ready.is_set():
            threading.Thread(target=sticky.load, args=(self,), name="promptyard-ab-units", daemon=True).start()
        return sticky

    # -- loading ---------------------------------------------------------------------------------
    def _load_cold(self, ref: str, fallback: str | None) -> ServedPrompt:
        with self._lock:
            key_lock = self._key_locks.setdefault(ref, threading.Lock())
        with key_lock:  # one fetch per reference, however many threads arrive at once
            entry = self._cache.get(ref)
            if entry is not None:
                return entry.prompt
            try:
                prompt = self._fetch(ref)
            except PromptNotFoundError:
                raise
            except Exception as exc:  # the registry is unreachable: last known good, then fallback
                prompt = self._offline(ref, fallback, exc)
            live = prompt.source == "registry"
            immutable = live and PromptRef.parse(ref).version is not None
            self._cache[ref] = _Entry(prompt, time.monotonic() if live else 0.0, immutable)
            return prompt

    def _refresh_in_background(self, ref: str, entry: _Entry) -> None:
        with self._lock:
            if entry.refreshing:
                return
            entry.refreshing = True
        self._pool.submit(self._refresh, ref, entry)

    def _refresh(self, ref: str, entry: _Entry) -> None:
        try:
            prompt = self._fetch(ref)
            if prompt.version != entry.prompt.version:
                log.info("prompt %s now points to version %s (was %s)", ref, prompt.version, entry.prompt.version)
            self._cache[ref] = _Entry(prompt, time.monotonic())
        except Exception as exc:
            log.warning("registry unreachable while refreshing %s (%s); serving version %s from cache",
                        ref, type(exc).__name__, entry.prompt.version)
            entry.fetched_at = time.monotonic()  # try again after another TTL
        finally:
            entry.refreshing = False

    def _fetch(self, ref: str) -> ServedPrompt:
        self._probe()
        parsed = PromptRef.parse(ref)
        version, found = self.registry.get_with_prompt(parsed)  # one read for the version and the split
        experiment = (found.tags or {}).get(tag_key(parsed.alias)) if parsed.alias else None
        prompt = ServedPrompt(
            name=version.name, version=int(version.version), template=self.registry.template(version),
            model_config=dict(version.model_config or {}), response_format=version.response_format,
            experiment=experiment,
        )
        self._write_snapshot(ref, prompt)
        return prompt

    def _probe(self) -> None:
        """Fail fast when an HTTP tracking server is down (MLflow's own client retries for minutes)."""
        self.registry.check(timeout=self.probe_timeout)

    # -- last known good -------------------------------------------------------------------------
    def _snapshot_path(self, ref: str) -> Path:
        digest = hashlib.sha256(f"{self.registry.tracking_uri}|{ref}".encode()).hexdigest()[:16]
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in ref)
        return self.snapshot_dir / f"{safe}-{digest}.json"

    def _write_snapshot(self, ref: str, prompt: ServedPrompt) -> None:
        path = self._snapshot_path(ref)
        data = json.dumps(asdict(prompt), sort_keys=True)
        try:
            if path.is_file() and path.read_text() == data:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                handle.write(data)
            os.replace(tmp, path)  # readers never see a half-written file
        except OSError as exc:
            log.warning("could not write the prompt snapshot %s: %s", path, exc)

    def _offline(self, ref: str, fallback: str | None, exc: Exception) -> ServedPrompt:
        path = self._snapshot_path(ref)
        if path.is_file():
            prompt = replace(ServedPrompt(**json.loads(path.read_text())), source="snapshot")
            log.warning("registry unreachable (%s); serving %s version %s from the last-known-good snapshot %s",
                        type(exc).__name__, ref, prompt.version, path)
            return prompt
        if fallback is not None:
            log.warning("registry unreachable (%s) and no snapshot of %s yet; serving the fallback template",
                        type(exc).__name__, ref)
            return ServedPrompt(name=PromptRef.parse(ref).name, version=0, template=fallback, source="fallback")
        raise ServiceError(
            f"Cannot read prompt {ref}: the registry at {self.registry.tracking_uri} is unreachable ({exc}) and "
            f"there is no snapshot of it in {self.snapshot_dir}. Pass fallback='...' for the first start, or "
            "start MLflow (`promptyard up`)."
        ) from None
