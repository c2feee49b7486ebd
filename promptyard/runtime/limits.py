"""One limit for an endpoint across every worker, process and machine: a Prefect global concurrency limit.

With `PROMPTYARD_LM_LIMIT=N`, `promptyard up` creates (or resizes) one global concurrency limit of N
slots per endpoint replica on the Prefect server (`limit_name(url)`, e.g. `lm-127.0.0.1-8089-v1`),
and every HTTP attempt to that replica holds one of its slots: no request goes out without one, so
all processes together never have more than N requests in flight at a replica.

Taking a slot from the server costs a round trip (≈0.1 s under load), too much for every short
request; so each process keeps the slots it took in a small pool (`SlotPool`) and lends them to its
requests one at a time. A slot goes back to the server once it has been held `hold_s` (10) seconds
(so other processes get their turn; a process refused a slot asks again every ≈0.5 s) or has been
idle `idle_s` seconds, and every slot is a lease the pool renews: a process that dies frees its slots
when their lease (60 s) runs out. With replicas, a request takes a free slot of any replica (`lend`)
and goes to that replica. Talks to Prefect's REST API directly (`/v2/concurrency_limits/...`), so it
works from any thread.
"""

from __future__ import annotations

import atexit
import base64
import itertools
import os
import random
import re
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from promptyard.errors import PermissionDeniedError, ServiceError, UserError

__all__ = ["limit_name", "ensure_limits", "SlotPool", "lend", "slot", "read_limits"]

LEASE_S = 60.0  # the shortest lease Prefect grants
_THIS_MACHINE = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "localhost.localdomain"}  # one name for loopback


def limit_name(base_url: str) -> str:
    """The global limit's name for an endpoint (one per replica URL)."""
    parts = urlsplit(base_url)
    if not parts.scheme or not parts.hostname:
        raise UserError(f"Endpoint URL {base_url!r} has no scheme or host: give one like http://host:8000/v1.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = "127.0.0.1" if parts.hostname in _THIS_MACHINE else parts.hostname  # one server, one limit
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"lm-{host}-{port}{parts.path.rstrip('/')}").strip("-")


def _api(api_url: str) -> str:
    return api_url.rstrip("/")


def prefect_headers() -> dict[str, str]:
    """What Prefect's own client sends to an API that asks for credentials: PREFECT_API_AUTH_STRING, else in
    team mode the team's string from the state directory (a Dask worker or a script signs in as the CLI does)."""
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if not auth:
        from promptyard.runtime.settings import get_settings

        settings = get_settings()
        if settings.team_mode:
            from promptyard.runtime.postgres import prefect_auth

            auth = prefect_auth(settings)
    return {"Authorization": f"Basic {base64.b64encode(auth.encode()).decode()}"} if auth else {}


def refuse_if_unauthorized(api_url: str, response: httpx.Response) -> None:
    """A 401 is a setting to fix, not a fault to retry: one message that names it."""
    if response.status_code == 401:
        raise PermissionDeniedError(
            f"The Prefect API at {_api(api_url)} refuses this process's credentials (401): set "
            "PREFECT_API_AUTH_STRING to the team's auth string (in team/prefect-api-auth where `promptyard up "
            "--team` ran).")


def ensure_limits(api_url: str, urls: list[str] | tuple[str, ...], size: int) -> list[str]:
    """Create the limit of each endpoint URL with `size` slots, or resize it; returns their names."""
    names = []
    with httpx.Client(timeout=10, headers=prefect_headers()) as client:
        for url in urls:
            name = limit_name(url)
            try:
                found = client.get(f"{_api(api_url)}/v2/concurrency_limits/{name}")
                refuse_if_unauthorized(api_url, found)
                if found.status_code == 404:
                    client.post(f"{_api(api_url)}/v2/concurrency_limits/",
                                json={"name": name, "limit": size, "active": True}).raise_for_status()
                else:
                    found.raise_for_status()
                    if found.json()["limit"] != size or not found.json().get("active", True):
                        client.patch(f"{_api(api_url)}/v2/concurrency_limits/{name}",
                                     json={"limit": size, "active": True}).raise_for_status()
            except httpx.HTTPError as exc:
                raise ServiceError(f"Could not create the concurrency limit {name!r} on the Prefect API at {api_url} "
                                   f"({type(exc).__name__}: {exc}). Start Prefect with `promptyard up`.") from None
            names.append(name)
    return names


def read_limits(api_url: str, urls: list[str] | tuple[str, ...]) -> dict[str, dict | None]:
    """Each endpoint's limit as the server has it (`limit`, `active_slots`), None when missing."""
    result: dict[str, dict | None] = {}
    for url in urls:
        name = limit_name(url)
        try:
            response = httpx.get(f"{_api(api_url)}/v2/concurrency_limits/{name}", headers=prefect_headers(), timeout=5)
        except httpx.HTTPError:
            result[name] = None
            continue
        refuse_if_unauthorized(api_url, response)
        result[name] = response.json() if response.status_code == 200 else None
    return result


class SlotPool:
    """This process's slots of one global limit (one endpoint replica), lent to its requests one at a time."""

    def __init__(self, api_url: str, name: str, hold_s: float = 10.0, idle_s: float = 0.3,
                 cond: threading.Condition | None = None):
        self.api, self.name, self.hold_s, self.idle_s = _api(api_url), name, hold_s, idle_s
        self._client = httpx.Client(timeout=30, headers=prefect_headers())
        self._cond = cond or threading.Condition()  # shared by a process's pools: a slot freed anywhere wakes waiters
        self._idle: list[tuple[str, float, float]] = []  # (lease, taken at, idle since)
        self._busy: dict[str, float] = {}  # lease -> taken at
        self._renewed: dict[str, float] = {}
        self._fetching = False
        self._returning = 0  # slots on their way back to the server: still held there
        self._refused_until = 0.0  # the server said all slots are taken: ask again after this
        self._closed = False
        self._thread = threading.Thread(target=self._upkeep, name=f"slots {name}", daemon=True)
        self._thread.start()

    # -- lending (through `lend`) -------------------------------------------------------------
    def _lend_idle(self) -> str | None:
        """A slot this process already holds and nobody uses, if any (one held too long goes back)."""
        stale, lease = [], None
        with self._cond:
            now = time.monotonic()
            while self._idle and lease is None:
                candidate, taken, _ = self._idle.pop()
                if now - taken < self.hold_s:
                    lease, self._busy[candidate] = candidate, taken
                else:
                    stale.append(candidate)
            self._returning += len(stale)
        self._give_back(stale)
        return lease

    def _held(self) -> int:
        return len(self._busy) + len(self._idle) + self._returning

    def release(self, lease: str) -> None:
        with self._cond:
            taken = self._busy.pop(lease, None)
            if taken is None:
                return
            if time.monotonic() - taken < self.hold_s:
                self._idle.append((lease, taken, time.monotonic()))
                self._cond.notify()
                return
            self._returning += 1
        self._give_back([lease])

    # -- the server ---------------------------------------------------------------------------
    def _take(self) -> tuple[str | None, float]:
        for attempt in range(6):  # a reset or refused connection under load gets a few tries (≈6 s in all)
            try:
                response = self._client.post(f"{self.api}/v2/concurrency_limits/increment-with-lease", json={
                    "names": [self.name], "slots": 1, "mode": "concurrency", "lease_duration": LEASE_S})
                break
            except httpx.TransportError as exc:
                failure = exc
                time.sleep(0.2 * 2 ** attempt * random.uniform(0.5, 1.0))
        else:
            exc = failure
            raise ServiceError(f"The Prefect API at {self.api} did not answer for a slot of the endpoint limit "
                               f"{self.name!r} ({type(exc).__name__}: {exc}). Start it with `promptyard up`, or "
                               "unset PROMPTYARD_LM_LIMIT to send requests without the global limit.") from None
        refuse_if_unauthorized(self.api, response)
        if response.status_code in (423, 429, 502, 503, 504):  # all taken, or the server is busy: wait, then again
            hint = float(response.headers.get("Retry-After", 0.1) or 0.1)
            return None, min(hint, 0.5) * random.uniform(0.5, 1.0)
        if response.status_code == 422:
            raise ServiceError(f"The endpoint limit {self.name!r} has 0 slots on {self.api}: give it at least one "
                               "(PROMPTYARD_LM_LIMIT and `promptyard up`).")
        response.raise_for_status()
        body = response.json()
        if not body.get("limits"):
            with self._cond:
                self._returning += 1
            self._give_back([body["lease_id"]])
            raise ServiceError(f"No concurrency limit {self.name!r} on the Prefect API at {self.api}: `promptyard up` "
                               f"creates it (PROMPTYARD_LM_LIMIT=N), or `prefect gcl create {self.name} --limit N`.")
        self._renewed[body["lease_id"]] = time.monotonic()
        return body["lease_id"], 0.0

    def _give_back(self, leases: list[str]) -> None:
        """Free these slots on the server (each counted in `_returning` by the caller until it is)."""
        for lease in leases:
            self._renewed.pop(lease, None)
            for attempt in range(5):  # a busy server (503) gets a few tries; else the lease runs out by itself
                try:
                    response = self._client.post(f"{self.api}/v2/concurrency_limits/decrement-with-lease",
                                                 json={"lease_id": lease})
                except httpx.HTTPError:
                    break
                if response.status_code < 500:
                    break
                time.sleep(0.1 * (attempt + 1))
            with self._cond:
                self._returning -= 1

    def _upkeep(self) -> None:
        while not self._closed:
            time.sleep(0.1)
            now = time.monotonic()
            with self._cond:
                done = [item for item in self._idle if now - item[2] >= self.idle_s or now - item[1] >= self.hold_s]
                self._idle = [item for item in self._idle if item not in done]
                self._returning += len(done)
                due = [lease for lease, at in list(self._renewed.items()) if now - at > LEASE_S / 3]
            self._give_back([lease for lease, _, _ in done])
            for lease in due:
                try:
                    self._client.post(f"{self.api}/v2/concurrency_limits/leases/{lease}/renew",
                                      json={"lease_duration": LEASE_S})
                    self._renewed[lease] = now
                except (httpx.HTTPError, KeyError):
                    pass

    def close(self) -> None:
        self._closed = True
        with self._cond:
            leases, self._idle = [lease for lease, _, _ in self._idle], []
            self._returning += len(leases)
        self._give_back(leases)


def lend(pools: list[SlotPool]) -> tuple[SlotPool, str]:
    """A slot of any of the pools (the replicas of one endpoint): one this process holds idle first, else a
    new one from the replica whose pool holds fewest, else wait for one to come free. Starting from a
    turning offset spreads requests over replicas; no request waits on a full replica while another
    has a slot free."""
    cond = pools[0]._cond
    while True:
        start = next(_turns) % len(pools)
        order = pools[start:] + pools[:start]
        for pool in order:
            if (lease := pool._lend_idle()) is not None:
                return pool, lease
        with cond:
            now = time.monotonic()
            askable = [p for p in order if not p._fetching and p._refused_until <= now]
            pool = min(askable, key=SlotPool._held) if askable else None
            if pool is None:
                cond.wait(0.05)
                continue
            pool._fetching = True
        lease, wait = None, 0.0
        try:
            lease, wait = pool._take()
        finally:
            with cond:
                pool._fetching = False
                if lease is not None:
                    pool._busy[lease] = time.monotonic()
                else:
                    pool._refused_until = time.monotonic() + wait
                cond.notify_all()
        if lease is not None:
            return pool, lease


_POOLS: dict[tuple[int, str, str], SlotPool] = {}
_POOLS_LOCK = threading.Lock()
_FREED: dict[int, threading.Condition] = {}  # per process: one condition for all its pools
_turns = itertools.count()


def _pool(api_url: str, name: str) -> SlotPool:
    key = (os.getpid(), _api(api_url), name)  # a forked child makes its own
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = SlotPool(api_url, name, cond=_FREED.setdefault(os.getpid(), threading.Condition()))
        return _POOLS[key]


@contextmanager
def slot(api_url: str, base_urls: str | tuple[str, ...] | list[str]):
    """Hold one slot of the global limit of one of the endpoint's replicas for the block; yields that
    replica's URL, where the request goes."""
    urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
    pools = [_pool(api_url, limit_name(url)) for url in urls]
    pool, lease = lend(pools)
    try:
        yield urls[pools.index(pool)]
    finally:
        pool.release(lease)


@atexit.register
def _close_all() -> None:
    for key, pool in list(_POOLS.items()):
        if key[0] == os.getpid():
            pool.close()
