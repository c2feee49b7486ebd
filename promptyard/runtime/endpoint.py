"""The LLM endpoint: any OpenAI-compatible server, by default the bundled local model.

`make_lm` builds a `dspy.LM` on the endpoint; its responses are cached by DSPy on disk under the
state directory, so re-running the same work makes no new calls. The API key is a `SecretStr`
and never leaves this module except in the request's Authorization header.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
from pydantic import SecretStr

from promptyard.errors import EmptyReplyError, EndpointUnreachableError
from promptyard.runtime.settings import Settings, get_settings

__all__ = ["Endpoint", "check_endpoint", "make_lm", "is_transport_error", "is_transient"]

_turns = itertools.count()  # the process's round-robin over replicas (thread-safe in CPython)


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key: SecretStr = field(default_factory=lambda: SecretStr("not-needed"), repr=False)
    timeout: float = 60.0
    replicas: tuple[str, ...] = ()  # requests spread round-robin over these (same model), when given
    limit_api: str | None = None  # Prefect API whose global limit every request takes a slot of (see `limits`)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Endpoint:
        s = settings or get_settings()
        return cls(base_url=s.lm_url.rstrip("/"), model=s.lm_model, api_key=s.lm_api_key, timeout=s.lm_timeout,
                   replicas=tuple(u.rstrip("/") for u in s.replica_urls),
                   limit_api=s.prefect_url if s.lm_limit else None)

    @classmethod
    def proposer_from_settings(cls, settings: Settings | None = None) -> Endpoint:
        """The endpoint that proposes rewrites: PROMPTYARD_PROPOSER_* where set, else the task endpoint's."""
        s = settings or get_settings()
        if s.proposer_base_url is None:
            task = cls.from_settings(s)
            return cls(task.base_url, s.proposer_model or task.model, s.proposer_api_key or task.api_key,
                       task.timeout, task.replicas, task.limit_api)
        url = s.proposer_base_url.rstrip("/")
        task = cls.from_settings(s)
        shared = task.limit_api is not None and _same_server(url, task.urls)  # a replica's limit counts it too
        return cls(base_url=url, model=s.proposer_model or s.lm_model, api_key=s.proposer_api_key or s.lm_api_key,
                   timeout=s.lm_timeout, limit_api=task.limit_api if shared else None)

    @property
    def urls(self) -> tuple[str, ...]:
        """Where requests go: the replicas, or the one base URL."""
        return self.replicas or (self.base_url,)

    def describe(self) -> dict[str, str]:
        """What may be logged about the endpoint (never the key)."""
        return {"lm_base_url": self.base_url, "lm_model": self.model}


def _same_server(url: str, urls: tuple[str, ...]) -> bool:
    from promptyard.runtime.limits import limit_name

    return limit_name(url) in {limit_name(u) for u in urls}


def check_endpoint(endpoint: Endpoint, timeout: float = 5.0) -> None:
    """Raise `EndpointUnreachableError` unless the endpoint (each replica) answers `GET /models`."""
    headers = {"Authorization": f"Bearer {endpoint.api_key.get_secret_value()}"}
    for url in endpoint.urls:
        try:
            response = httpx.get(f"{url}/models", headers=headers, timeout=timeout)
        except httpx.HTTPError as exc:
            raise EndpointUnreachableError(
                f"No LLM answers at {url} ({type(exc).__name__}: {exc}). Start the bundled "
                "model with `promptyard up`, or set PROMPTYARD_LM_BASE_URL (PROMPTYARD_LM_REPLICAS) to a running "
                "OpenAI-compatible endpoint."
            ) from None
        if response.status_code in (401, 403):
            raise EndpointUnreachableError(
                f"The LLM endpoint {url} refused the API key (HTTP {response.status_code}): "
                "set PROMPTYARD_LM_API_KEY to a valid key."
            )


def make_lm(endpoint: Endpoint, *, cache: bool = True, budget=None, attempts: int | None = None, **defaults: Any):
    """A `dspy.LM` on the endpoint (temperature 0 unless given). Each HTTP attempt — a first try or
    a retry — goes through `budget` when given; transient failures are retried (see `MeteredLM`)."""
    from promptyard.runtime.settings import get_settings

    defaults.setdefault("temperature", 0.0)
    defaults.setdefault("max_tokens", 256)
    lm = _metered_lm_class()(f"openai/{endpoint.model}", api_base=endpoint.base_url,
                             api_key=endpoint.api_key.get_secret_value(), cache=cache, num_retries=0,
                             timeout=endpoint.timeout, **defaults)
    lm.budget = budget  # shared by reference with the copies DSPy optimizers make
    lm.attempts = attempts or get_settings().lm_attempts
    lm.replicas, lm.limit_api = endpoint.replicas, endpoint.limit_api
    return lm


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: rate limits, timeouts, 5xx, broken connections (DSPy's classification),
    and a response body that did not parse. A bad request, a refused key or a bug is not."""
    from dspy.utils.exceptions import LMProviderError, is_retryable_lm_error

    if is_retryable_lm_error(exc) or isinstance(exc, EmptyReplyError):
        return True
    return isinstance(exc, LMProviderError) and getattr(exc, "status", None) == 200  # a success whose body is broken


def _reply_problem(response) -> str | None:
    """Why a completion is not an answer (None: it is one)."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        return "the endpoint answered 200 with no choices"
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if getattr(message, "tool_calls", None):
        return None
    if not isinstance(content, str) or not content.strip():
        return (f"the endpoint answered 200 with no text (content {content!r}, finish_reason "
                f"{getattr(choices[0], 'finish_reason', None)!r})")
    return None


class _RetryAfterOrJitter:
    """Wait what the server asked for (Retry-After), else exponential backoff with jitter."""

    def __init__(self, cap: float = 60.0, budget=None):
        from tenacity import wait_exponential_jitter

        self.cap, self.backoff = cap, wait_exponential_jitter(initial=0.5, max=cap, jitter=0.5)
        self.budget = budget

    def __call__(self, retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float) and 0 <= hint < float("inf"):
            wait = min(float(hint), self.cap)
        else:
            wait = self.backoff(retry_state)
        left = _seconds_left(self.budget)
        if left is not None and wait >= left:  # waiting would outlast the time budget: stop now, not after it
            from promptyard.errors import BudgetExhausted

            raise BudgetExhausted(f"budget spent: the endpoint asked to wait {wait:.0f} s, {max(0.0, left):.0f} s of "
                                  "the time budget are left") from exc
        return wait


def _seconds_left(budget) -> float | None:
    """Seconds a budget with a time cap has left for this phase (None: no time cap)."""
    own = getattr(budget, "max_seconds", None)
    if own is None:
        run = getattr(budget, "run", None)  # a proposer's charge: the run's clock
        return _seconds_left(run) if run is not None else None
    return own - getattr(budget, "reserved_seconds", 0.0) - budget.elapsed


def _remember_model_prices() -> None:
    """DSPy looks a model up in its table of ~2,700 models to price each completion (and to read its
    capabilities); a model not in the table (any self-hosted one) is scanned for, entry by entry, twice
    per call: 9 ms of a 15 ms call on a local endpoint. The answer depends only on the arguments (the
    table loads once), so it is kept per (provider, model, namespaces); each caller gets its own copy."""
    import copy

    from dspy.clients import capabilities, costs, model_metadata

    original = model_metadata.model_info
    lookup = lru_cache(maxsize=256)(lambda provider, model, namespaces: original(provider, model,
                                                                               namespaces=namespaces))

    def model_info(provider, model, *, namespaces=None):
        try:
            return copy.deepcopy(lookup(provider, model, tuple(namespaces) if namespaces is not None else None))
        except TypeError:  # an unhashable argument: ask the table itself
            return original(provider, model, namespaces=namespaces)

    for module in (costs, capabilities):
        module.model_info = model_info


@lru_cache(maxsize=1)
def _metered_lm_class():
    import dspy

    _remember_model_prices()

    class MeteredLM(dspy.LM):
        """A dspy.LM whose HTTP attempts are each charged to a `Budget` (cache hits are free), with
        transient failures retried by tenacity: `attempts` in all, Retry-After honoured."""

        budget = None
        attempts = 6
        replicas: tuple[str, ...] = ()
        limit_api: str | None = None

        def forward(self, *args, **kwargs):
            from tenacity import Retrying, retry_if_exception, stop_after_attempt

            retrying = Retrying(stop=stop_after_attempt(max(1, self.attempts)), wait=_RetryAfterOrJitter(
                budget=self.budget), retry=retry_if_exception(is_transient), reraise=True)
            fresh = {}  # after an empty reply, DSPy's cache (which may hold it) is skipped

            def once():
                response = self._attempt(*args, **{**kwargs, **fresh})
                problem = _reply_problem(response)
                if problem:
                    fresh["cache"] = False
                    raise EmptyReplyError(problem)
                return response

            return retrying(once)

        async def aforward(self, *args, **kwargs):
            """Async calls take the same path as sync ones (limit, budget, retries), in a thread."""
            import asyncio

            return await asyncio.to_thread(self.forward, *args, **kwargs)

        def _attempt(self, *args, **kwargs):
            if self.limit_api is not None:  # no request goes out without a slot of a replica's limit
                from promptyard.runtime.limits import slot

                with slot(self.limit_api, self.replicas or self.kwargs.get("api_base")) as url:
                    return self._metered(*args, **{**kwargs, "api_base": url})
            if self.replicas:  # round-robin: a retry goes to the next replica
                kwargs["api_base"] = self.replicas[next(_turns) % len(self.replicas)]
            return self._metered(*args, **kwargs)

        def _metered(self, *args, **kwargs):
            if self.budget is None:
                return super().forward(*args, **kwargs)
            requests = int(kwargs.get("n") or self.kwargs.get("n") or 1)  # DSPy sends n completions as n requests
            self.budget.start_call(requests)
            response = None
            try:
                response = super().forward(*args, **kwargs)
                return response
            finally:
                usage = (response.get("usage") if response is not None else None) or {}
                cached = bool(response is not None and response.get("cache_hit", False))
                self.budget.end_call(cached=cached, tokens=int(usage.get("total_tokens", 0) or 0), requests=requests,
                                     prompt_tokens=int(usage.get("prompt_tokens", 0) or 0),
                                     completion_tokens=int(usage.get("completion_tokens", 0) or 0))

    return MeteredLM


def is_transport_error(exc: BaseException) -> bool:
    """True when the request never reached a working endpoint (refused, reset, DNS)."""
    from dspy.utils.exceptions import LMTransportError

    return isinstance(exc, LMTransportError)
