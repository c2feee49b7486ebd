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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from promptyard.errors import PromptNotFoundError, ServiceError
from promptyard.registry import PromptRef, Registry
from promptyard.templates import render, variables

__all__ = ["PromptClient", "ServedPrompt"]

log = logging.getLogger("promptyard.serving")


@dataclass(frozen=True)
class ServedPrompt:
    name: str
    version: int
    template: str
    model_config: dict[str, Any] = field(default_factory=dict)
    response_format: dict[str, Any] | None = None
    source: str = "registry"  # registry | snapshot | fallback

    @property
    def variables(self) -> list[str]:
        return variables(self.template)

    def format(self, **values: Any) -> str:
        return render(self.template, values)


@dataclass
class _Entry:
    prompt: ServedPrompt
    fetched_at: float
    immutable: bool = False  # `name/3` from the registry never changes
    refreshing: bool = False


class PromptClient:
    """Thread-safe cached reads of `name@alias` and `name/version` references."""

    def __init__(self, tracking_uri: str | None = None, *, ttl_seconds: float = 30.0,
                 snapshot_dir: str | Path | None = None, probe_timeout: float = 1.0):
        from promptyard.settings import get_settings

        settings = get_settings()
        self.registry = Registry(tracking_uri or settings.tracking_uri)
        self.ttl = ttl_seconds
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else settings.home_dir / "snapshots"
        self.probe_timeout = probe_timeout
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

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

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
        version = self.registry.get(PromptRef.parse(ref))
        prompt = ServedPrompt(
            name=version.name, version=int(version.version), template=self.registry.template_text(version),
            model_config=dict(version.model_config or {}), response_format=version.response_format,
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
