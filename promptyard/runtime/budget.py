"""A run's budget: LM calls, tokens, wall time — enforced at every request.

Every LM the run uses is wrapped (`make_lm(..., budget=b)`): before a request goes out the
budget is checked, and the request is refused with `BudgetExhausted` once the calls, tokens or
seconds are spent. Answers from DSPy's cache are free. A part of the calls can be held back
(`reserve`) so that a later phase — scoring the test split — always has what it needs.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from promptyard.errors import BudgetExhausted, UserError

__all__ = ["Budget", "BudgetUsage"]

_OPEN: dict[str, Budget] = {}  # budgets of the runs in this process, by key


@dataclass(frozen=True)
class BudgetUsage:
    """What a run spent, and its limits."""

    calls: int
    tokens: int
    prompt_tokens: int
    completion_tokens: int
    cached: int
    seconds: float
    max_calls: int | None
    max_tokens: int | None
    max_seconds: float | None


@dataclass
class Budget:
    max_calls: int | None = None
    max_tokens: int | None = None
    max_seconds: float | None = None
    calls: int = 0
    tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    reserved: int = 0  # calls held back for a later phase
    reserved_tokens: int = 0  # tokens held back for it
    reserved_seconds: float = 0.0  # and seconds
    started: float = field(default_factory=time.monotonic)
    tokens_per_request: float = 0.0  # an estimate (measured on the run's first scoring), for requests in flight
    _in_flight: int = 0
    _in_flight_tokens: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for name, value in (("budget_calls", self.max_calls), ("budget_tokens", self.max_tokens),
                            ("budget_seconds", self.max_seconds)):
            if value is not None and value <= 0:
                raise UserError(f"{name} must be above 0, got {value}: give a positive limit or leave it out.")

    @property
    def limited(self) -> bool:
        return any(v is not None for v in (self.max_calls, self.max_tokens, self.max_seconds))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def reserve(self, calls: int, *, tokens: int = 0, seconds: float = 0.0) -> None:
        """Hold back calls, tokens and seconds for a later phase (the test split) from what comes before it."""
        self.reserved, self.reserved_tokens, self.reserved_seconds = max(0, int(calls)), max(0, int(tokens)), \
            max(0.0, float(seconds))

    def release(self) -> None:
        self.reserved, self.reserved_tokens, self.reserved_seconds = 0, 0, 0.0

    def spent_reason(self, extra_calls: int = 0) -> str | None:
        """Why no further request may go out now (None: it may)."""
        if self.max_calls is not None and self.calls + self._in_flight + extra_calls >= self.max_calls - self.reserved:
            held = f", {self.reserved} held back for scoring" if self.reserved else ""
            return f"{self.calls} of {self.max_calls} LM calls used{held}"
        if self.max_tokens is not None and \
                self.tokens + self._in_flight_tokens + extra_calls * self.tokens_per_request >= \
                self.max_tokens - self.reserved_tokens:
            held = f", {self.reserved_tokens} held back for scoring" if self.reserved_tokens else ""
            return f"{self.tokens} of {self.max_tokens} tokens used{held}"
        if self.max_seconds is not None and self.elapsed >= self.max_seconds - self.reserved_seconds:
            held = f", {self.reserved_seconds:.0f} held back for scoring" if self.reserved_seconds else ""
            return f"{self.elapsed:.0f} of {self.max_seconds:g} seconds used{held}"
        return None

    def start_call(self, requests: int = 1) -> None:
        """Before `requests` requests go out (one LM call with n completions makes n requests)."""
        with self._lock:
            reason = self.spent_reason(extra_calls=requests - 1)
            if reason:
                raise BudgetExhausted(f"budget spent: {reason}")
            self._in_flight += requests
            self._in_flight_tokens += requests * self.tokens_per_request

    def end_call(self, *, cached: bool, tokens: int, requests: int = 1, prompt_tokens: int = 0,
                 completion_tokens: int = 0) -> None:
        """Record requests that went out (a failed one counts: the endpoint may have done the work)."""
        with self._lock:
            self._in_flight -= requests
            self._in_flight_tokens = max(0.0, self._in_flight_tokens - requests * self.tokens_per_request)
            if cached:
                self.cached += requests
            else:
                self.calls += requests
                self.tokens += tokens
                self.prompt_tokens += prompt_tokens
                self.completion_tokens += completion_tokens

    def can_afford(self, calls: int, *, tokens: int = 0, seconds: float = 0.0) -> bool:
        """Whether `calls` more requests (about `tokens` tokens, `seconds` s) fit, ignoring the reserve."""
        return ((self.max_calls is None or self.calls + calls <= self.max_calls)
                and (self.max_tokens is None or self.tokens + tokens <= self.max_tokens)
                and (self.max_seconds is None or self.elapsed + seconds <= self.max_seconds))

    def usage(self) -> BudgetUsage:
        return BudgetUsage(self.calls, self.tokens, self.prompt_tokens, self.completion_tokens, self.cached,
                           round(self.elapsed, 1), self.max_calls, self.max_tokens, self.max_seconds)

    # -- one budget per run, shared by the run's tasks by key (tasks take plain data) -------------
    def open(self) -> str:
        """Make this budget findable by the key returned (until `close`)."""
        key = uuid.uuid4().hex + ("-capped" if self.limited else "")
        _OPEN[key] = self
        return key

    @staticmethod
    def find(key: str) -> Budget:
        """The run's budget. In a Dask worker (the run's tasks on a cluster) an uncapped run gets a ledger of
        its own there; caps are enforced in one process, so a capped run refuses to run its tasks remotely."""
        try:
            return _OPEN[key]
        except KeyError:
            pass
        if not _in_dask_worker():
            raise RuntimeError(f"no open run budget {key!r} in this process (tasks of a run share one process)")
        if key.endswith("-capped"):
            raise BudgetExhausted("a run with --budget-calls/--budget-tokens/--budget-time checks every request in "
                                  "one process, and this task is on a Dask worker: run it with "
                                  "PROMPTYARD_TASK_RUNNER=threads, or without the budget caps")
        return _OPEN.setdefault(key, Budget())

    @staticmethod
    def close(key: str) -> None:
        _OPEN.pop(key, None)


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True
