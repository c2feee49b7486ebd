"""Buffered A/B events: the request path appends to memory, one background thread writes batches.

`PromptClient.assign` and `record_outcome` hand their row to `EventWriter.exposure` / `.outcome`,
which append a tuple to an in-memory queue: no I/O and no lock on the request path. A daemon
thread wakes every `interval` seconds (default 0.2 s), or as soon as `batch` rows wait, and writes
what is queued with `EventStore.write_batch`, one transaction per batch, in the order recorded.

- Clean exit: `PromptClient.close()` and an `atexit` hook write everything still queued, so after
  a normal shutdown the rows written equal the rows recorded.
- Crash: a process killed without running its exit handlers (SIGKILL, out of memory, power loss)
  loses the events recorded since the last write — at most `interval` seconds of them, and never
  more than `backlog` rows (default 10,000) while the store answers: a process that records faster
  than the store takes rows writes a batch itself on the request path (backpressure) once that
  many wait. While the store does not answer, rows are kept and retried with backoff (up to 5 s
  between tries); past `max_pending` rows the oldest are dropped, each drop logged as an error.
- Outcomes are checked at once when this process issued the assignment (unknown format, or a
  second outcome: an error raised to the caller). An outcome for an assignment another process
  issued (the id string passed along) is matched to its exposure when written; if that exposure
  has not reached the store within `grace` seconds (default 60) the outcome is dropped and logged
  as an error, and counted in `stats()["dropped"]`. `close()` waits up to `close_grace` seconds
  (default 5) for such exposures (the other process writes them within its own interval) before it
  gives up on them.
- `fork()` waits for a write under way to finish; the child starts with an empty queue (the
  parent's rows stay the parent's to write) and its own connections.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque

from promptyard.errors import UserError
from promptyard.serving.events import EXPOSURE, OUTCOME, EventStore, register_buffer

__all__ = ["EventWriter"]

log = logging.getLogger("promptyard.serving")
_live: weakref.WeakSet = weakref.WeakSet()
_MAX_BACKOFF = 5.0


class EventWriter:
    """Queue A/B events in memory and write them in batches from a background thread."""

    def __init__(self, store: EventStore, *, interval: float = 0.2, batch: int = 2000, max_pending: int = 1_000_000,
                 grace: float = 60.0, track: int = 200_000, backlog: int = 10_000, close_grace: float = 5.0):
        self.store = store
        self.interval, self.batch, self.max_pending, self.grace, self.track = interval, batch, max_pending, grace, track
        self.backlog, self.close_grace = backlog, close_grace
        self._start_lock = threading.Lock()
        self._reset()
        register_buffer(store.url, self)
        _install_hooks()
        _live.add(self)

    def _reset(self) -> None:
        self.issued: dict[str, list] = {}  # assignment id -> [experiment id, version, has an outcome]
        self._queue: deque[tuple] = deque()
        self._deferred: dict[str, tuple[float, tuple]] = {}  # outcomes waiting for another process' exposure
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._give_up = False  # at the end of close(): outcomes still without an exposure are dropped
        self._store_down_until = 0.0  # the background writer's backoff: no backpressure while the store is away
        self.counts = {"exposures": 0, "outcomes": 0, "dropped": 0, "duplicates": 0}

    # -- the request path ------------------------------------------------------------------------
    def exposure(self, assignment_id: str, experiment_id: str, unit_id: str, prompt: str, version: int,
                 epoch: int) -> None:
        issued = self.issued
        issued[assignment_id] = [experiment_id, version, False]
        if len(issued) > self.track:  # forget the oldest: its outcome is then matched when written
            try:
                issued.pop(next(iter(issued)), None)
            except (RuntimeError, StopIteration):
                pass
        self._put((EXPOSURE, assignment_id, experiment_id, unit_id, prompt, version, epoch, time.time()))

    def outcome(self, assignment_id: str, value: float, latency_ms: float | None, cost: float | None) -> None:
        entry = self.issued.get(assignment_id)
        if entry is None:
            self._put((OUTCOME, assignment_id, None, None, value, latency_ms, cost, time.time()))
            return
        if entry[2]:
            raise UserError(f"Assignment {assignment_id} already has an outcome: record one outcome per "
                            "assignment (assign again for the next request).")
        entry[2] = True
        self._put((OUTCOME, assignment_id, entry[0], entry[1], value, latency_ms, cost, time.time()))

    def _put(self, row: tuple) -> None:
        if self._closed:  # recorded after close(): written at once rather than lost
            with self._write_lock:
                self._write([row])
            return
        self._queue.append(row)
        if self._thread is None:
            self._start()
        elif len(self._queue) >= self.backlog and time.monotonic() >= self._store_down_until:
            self._catch_up()  # recording faster than the store takes rows: this caller writes (backpressure)
        elif len(self._queue) >= self.batch:
            self._wake.set()

    def _catch_up(self) -> None:
        """Write the backlog on the request path, so what a crash can lose stays bounded by `backlog` rows."""
        try:
            self.flush()
        except Exception:  # the store went away: the background writer keeps the rows and backs off
            self._store_down_until = time.monotonic() + _MAX_BACKOFF

    # -- writing ---------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="promptyard-ab-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        wait = self.interval
        while not self._closed:
            self._wake.wait(wait)
            self._wake.clear()
            try:
                self.flush()
                wait = self.interval
            except Exception as exc:  # the store does not answer: keep the rows, try again later
                wait = min(max(wait * 2, 0.5), _MAX_BACKOFF)
                self._store_down_until = time.monotonic() + wait
                log.warning("A/B event store %s unreachable (%s: %s); %d events kept, next try in %.1f s",
                            self.store._where(), type(exc).__name__, exc, len(self._queue), wait)

    def flush(self) -> None:
        """Write everything queued so far (in the caller's thread); raise if the store fails."""
        with self._write_lock:
            retry = [row for _, row in self._deferred.values()]
            while True:
                rows = []
                queue = self._queue
                while queue and len(rows) < self.batch:
                    rows.append(queue.popleft())
                if not rows and not retry:
                    return
                try:
                    self._write(retry + rows)
                except Exception:
                    queue.extendleft(reversed(rows))
                    self._trim()
                    raise
                retry = []

    def _write(self, rows: list[tuple]) -> None:
        written_exposures, written_outcomes, unresolved, duplicates = self.store.write_batch(rows)
        self.counts["exposures"] += written_exposures
        self.counts["outcomes"] += written_outcomes
        now = time.monotonic()
        waiting = {}
        for row in unresolved:
            first_seen = self._deferred.get(row[1], (now, row))[0]
            if now - first_seen >= self.grace or self._give_up:
                self.counts["dropped"] += 1
                log.error("dropped the outcome of assignment %s: %s has no exposure with that id after %.0f s (record "
                          "outcomes for ids returned by client.assign against the same event store)",
                          row[1], self.store._where(), now - first_seen)
            else:
                waiting[row[1]] = (first_seen, row)
        self._deferred = waiting
        if duplicates:
            self.counts["duplicates"] += len(duplicates)
            log.error("skipped %d outcome(s) for assignments that already had one (one outcome per assignment): %s",
                      len(duplicates), ", ".join(duplicates[:5]))

    def _trim(self) -> None:
        extra = len(self._queue) - self.max_pending
        if extra > 0:
            for _ in range(extra):
                self._queue.popleft()
            self.counts["dropped"] += extra
            log.error("dropped the %d oldest A/B events: the store %s has not answered and more than %d wait",
                      extra, self.store._where(), self.max_pending)

    def stats(self) -> dict[str, int]:
        """Rows written so far, rows waiting, and rows dropped or skipped (see the module docstring)."""
        return {**self.counts, "pending": len(self._queue) + len(self._deferred)}

    def close(self, timeout: float = 30.0) -> None:
        """Stop the background thread and write everything still queued."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.flush()
        deadline = time.monotonic() + self.close_grace  # outcomes of another process' assignments: its writer
        while self._deferred and time.monotonic() < deadline:  # writes their exposures within its interval
            time.sleep(min(0.05, self.interval))
            self.flush()
        self._give_up = True
        self.flush()


def _close_all() -> None:
    for writer in list(_live):
        try:
            writer.close()
        except Exception as exc:  # at exit: say what was lost, do not raise
            log.error("A/B events not written at exit to %s (%s): %d rows lost", writer.store._where(), exc,
                      len(writer._queue))


_held: list = []  # writers whose write lock the forking thread holds across fork()


def _before_fork() -> None:
    """No write is under way when the process forks (a child must not inherit a store mid-write)."""
    for writer in list(_live):
        writer._write_lock.acquire()
        _held.append(writer)


def _after_fork_in_parent() -> None:
    while _held:
        _held.pop()._write_lock.release()


def _after_fork_in_child() -> None:
    _held.clear()
    for writer in list(_live):
        writer._start_lock = threading.Lock()
        writer._reset()
        writer.store.engine.dispose(close=False)  # the parent's connections are not ours


_hooks: list[bool] = []


def _install_hooks() -> None:
    """At the first writer (importing this module changes nothing): flush at exit, reset in a fork's child."""
    if not _hooks:
        _hooks.append(True)
        atexit.register(_close_all)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                                after_in_child=_after_fork_in_child)
