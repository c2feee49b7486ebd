"""One limit for the endpoint: requests from two processes share a Prefect global concurrency limit,
and the endpoint never sees more in flight than the limit (it does without the limit)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fake_llm import FakeLLM
from promptyard.errors import ServiceError, UserError
from promptyard.runtime import Endpoint, make_lm
from promptyard.runtime.limits import ensure_limits, limit_name, read_limits

CLIENT = """
import sys, threading
from promptyard.runtime import Endpoint, apply_offline_env, make_lm
apply_offline_env()
url, api, threads, each = sys.argv[1], sys.argv[2] or None, int(sys.argv[3]), int(sys.argv[4])
lm = make_lm(Endpoint(base_url=url, model="fake", limit_api=api), cache=False, attempts=1)
errors = []
def work(t):
    for i in range(each):
        try:
            lm.forward(messages=[{"role": "user", "content": f"{sys.argv[5]} {t} {i}: good"}])
        except Exception as exc:
            errors.append(repr(exc))
workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
[w.start() for w in workers]
[w.join() for w in workers]
print(len(errors), errors[:1], flush=True)
"""


def _two_processes(url: str, api: str | None, threads: int = 6, each: int = 5) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, url, api or "", str(threads), str(each), name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in ("a", "b")]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        outs.append(out.strip())
    return outs


def test_the_limit_holds_across_two_processes(prefect_server):
    api = prefect_server.prefect_url
    with FakeLLM(latency_s=0.3) as fake:
        assert ensure_limits(api, [fake.base_url], 3) == [limit_name(fake.base_url)]
        assert _two_processes(fake.base_url, api) == ["0 []", "0 []"]
        assert len(fake.chat_requests()) == 60
        assert 2 <= fake.peak <= 3, f"peak in flight {fake.peak} with a limit of 3"
        texts = {r["messages"][-1]["content"][0] for r in fake.chat_requests()}
        assert texts == {"a", "b"}
    deadline = time.monotonic() + 10  # idle slots go back to the server at once; nothing is left held
    while read_limits(api, [fake.base_url])[limit_name(fake.base_url)]["active_slots"]:
        assert time.monotonic() < deadline, "slots still held after both processes ended"
        time.sleep(0.2)


def test_without_the_limit_the_endpoint_sees_more(prefect_server):
    with FakeLLM(latency_s=0.3) as fake:
        _two_processes(fake.base_url, None, each=2)
        assert fake.peak > 3  # what the limit above prevents


def test_resizing_and_a_missing_limit(prefect_server):
    api = prefect_server.prefect_url
    url = "http://127.0.0.1:9/v1"
    ensure_limits(api, [url], 2)
    ensure_limits(api, [url], 5)
    assert read_limits(api, [url])[limit_name(url)]["limit"] == 5
    lm = make_lm(Endpoint(base_url="http://127.0.0.1:9/other/v1", model="fake", limit_api=api), cache=False,
                 attempts=1)
    with pytest.raises(ServiceError, match=r"No concurrency limit 'lm-127.0.0.1-9-other-v1' .* `promptyard up`"):
        lm.forward(messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(UserError, match="no scheme or host"):
        limit_name("localhost:8000")
    assert httpx.get(f"{api}/health", timeout=5).status_code == 200


def test_requests_go_to_the_replica_with_a_free_slot_and_never_past_its_limit(prefect_server):
    """Another process holds every slot of replica A: requests go to B at once (none waits on A), and
    once A's slots come free both replicas serve, never more in flight at one than its limit."""
    from concurrent.futures import ThreadPoolExecutor

    api = prefect_server.prefect_url
    with FakeLLM(latency_s=0.2) as a, FakeLLM(latency_s=0.2) as b:
        ensure_limits(api, [a.base_url, b.base_url], 2)
        held = [httpx.post(f"{api}/v2/concurrency_limits/increment-with-lease", timeout=10, json={
            "names": [limit_name(a.base_url)], "slots": 1, "mode": "concurrency", "lease_duration": 60}).json()
            for _ in range(2)]
        lm = make_lm(Endpoint(base_url=a.base_url, model="fake", replicas=(a.base_url, b.base_url), limit_api=api),
                     cache=False, attempts=1)
        ask = lambda i: lm.forward(messages=[{"role": "user", "content": f"{i}: good"}])  # noqa: E731
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(ask, range(12)))
        assert len(a.chat_requests()) == 0 and len(b.chat_requests()) == 12
        assert b.peak == 2 and time.monotonic() - started < 12 * 0.2 / 2 + 1.5  # B's two slots, kept busy
        for lease in held:
            httpx.post(f"{api}/v2/concurrency_limits/decrement-with-lease", json={"lease_id": lease["lease_id"]},
                       timeout=10).raise_for_status()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, range(100, 140)))
        assert len(a.chat_requests()) >= 10 and len(a.chat_requests()) + len(b.chat_requests()) == 52
        assert a.peak <= 2 and b.peak <= 2, (a.peak, b.peak)


def test_under_a_global_limit_scoring_may_fill_it_unless_told_otherwise(monkeypatch):
    from promptyard.runtime import Settings

    monkeypatch.setenv("PROMPTYARD_LM_REPLICAS", "http://127.0.0.1:8001/v1,http://127.0.0.1:8002/v1")
    assert Settings().lm_concurrency == 4  # no limit: the plain default
    monkeypatch.setenv("PROMPTYARD_LM_LIMIT", "6")
    assert Settings().lm_concurrency == 12  # 6 slots on each of 2 replicas
    monkeypatch.setenv("PROMPTYARD_LM_CONCURRENCY", "3")
    assert Settings().lm_concurrency == 3


def test_side_doors_to_a_limited_server_take_its_slots(prefect_server, monkeypatch):
    """Async calls, the same server spelled `localhost`, and a proposer on a task replica's URL all count
    against the one limit: with 1 slot, the server never sees 2 requests at once."""
    import asyncio

    from promptyard.runtime import Settings

    api = prefect_server.prefect_url
    with FakeLLM(latency_s=0.3) as fake:
        ensure_limits(api, [fake.base_url], 1)
        assert limit_name(fake.base_url.replace("127.0.0.1", "localhost")) == limit_name(fake.base_url)
        lm = make_lm(Endpoint(base_url=fake.base_url, model="fake", limit_api=api), cache=False, attempts=1)

        async def five():
            await asyncio.gather(*[lm.acall(messages=[{"role": "user", "content": f"{i}: good"}]) for i in range(5)])

        asyncio.run(five())
        assert len(fake.chat_requests()) == 5 and fake.peak == 1

        monkeypatch.setenv("PROMPTYARD_LM_BASE_URL", fake.base_url)
        monkeypatch.setenv("PROMPTYARD_LM_LIMIT", "1")
        monkeypatch.setenv("PROMPTYARD_PREFECT_API_URL", api)
        monkeypatch.setenv("PROMPTYARD_PROPOSER_BASE_URL", fake.base_url.replace("127.0.0.1", "localhost") + "/")
        proposer = Endpoint.proposer_from_settings(Settings())
        assert proposer.limit_api == api
        monkeypatch.setenv("PROMPTYARD_PROPOSER_BASE_URL", "http://127.0.0.1:9/v1")  # another server: no limit of ours
        assert Endpoint.proposer_from_settings(Settings()).limit_api is None
