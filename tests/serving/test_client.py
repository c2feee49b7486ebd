"""The cached read path: TTL, stale-while-revalidate, single flight, snapshots, fallback."""

import logging
import threading
import time

import mlflow
import pytest
from mlflow import MlflowClient

from promptyard.errors import PromptNotFoundError, ServiceError
from promptyard.serving import PromptClient
from promptyard.runtime import get_settings

DOWN = "http://127.0.0.1:9"


def counting(client):
    calls = []
    fetch = client._fetch

    def wrapped(ref):
        calls.append(ref)
        return fetch(ref)

    client._fetch = wrapped
    return calls


def test_get_and_format(support, tmp_path):
    client = PromptClient(snapshot_dir=tmp_path / "snap")
    prompt = client.get("support@production")
    assert (prompt.name, prompt.version, prompt.source) == ("support", 1, "registry")
    assert prompt.variables == ["question"]
    assert prompt.format(question="Where?") == "Be kind.\n\nQ: Where?"
    assert client.get("support/2").template == "Be brief.\n\nQ: {{question}}"
    # plain MLflow reads the same prompt
    mlflow.set_tracking_uri(get_settings().tracking_uri)
    assert mlflow.genai.load_prompt("prompts:/support@production").template == prompt.template


def test_hot_reads_hit_the_cache(support, tmp_path):
    client = PromptClient(ttl_seconds=60, snapshot_dir=tmp_path)
    calls = counting(client)
    for _ in range(1000):
        client.get("support@production")
    assert calls == ["support@production"]


def test_alias_moved_elsewhere_is_seen_after_the_ttl(support, tmp_path):
    client = PromptClient(ttl_seconds=0.2, snapshot_dir=tmp_path)
    assert client.get("support@production").version == 1
    MlflowClient(support.tracking_uri, support.tracking_uri).set_prompt_alias("support", "production", 2)  # elsewhere
    assert client.get("support@production").version == 1  # within the TTL: cached
    time.sleep(0.25)
    assert client.get("support@production").version == 1  # stale served at once, refresh started
    deadline = time.monotonic() + 5
    while client.get("support@production").version != 2:
        assert time.monotonic() < deadline, "the background refresh never picked up the move"
        time.sleep(0.02)


def test_no_thundering_herd(support, tmp_path):
    client = PromptClient(ttl_seconds=0.05, snapshot_dir=tmp_path)
    calls = counting(client)
    barrier = threading.Barrier(16)

    def read():
        barrier.wait()
        client.get("support@production")

    threads = [threading.Thread(target=read) for _ in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert calls == ["support@production"]  # one cold fetch for 16 threads
    time.sleep(0.06)
    threads = [threading.Thread(target=read) for _ in range(16)]
    barrier.reset()
    [t.start() for t in threads]
    [t.join() for t in threads]
    client._pool.shutdown(wait=True)
    assert len(calls) == 2  # one background refresh after expiry


def test_probe_fails_fast_on_a_dead_server(tmp_path):
    started = time.monotonic()
    with pytest.raises(ServiceError, match="does not answer"):
        PromptClient(DOWN, snapshot_dir=tmp_path)._probe()
    assert time.monotonic() - started < 2


def test_registry_down_with_nothing_known(tmp_path, caplog):
    client = PromptClient(DOWN, snapshot_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="promptyard.serving"):
        prompt = client.get("support@production", fallback="Answer.\n\nQ: {{question}}")
    assert (prompt.version, prompt.source) == (0, "fallback") and "fallback template" in caplog.text
    with pytest.raises(ServiceError, match="no snapshot of it.*fallback="):
        PromptClient(DOWN, snapshot_dir=tmp_path).get("other@production")


# a stopped or frozen real server, cold and warm: tests/serving/test_outage.py


def test_unknown_prompt_is_an_error_not_an_outage(support, tmp_path):
    with pytest.raises(PromptNotFoundError):
        PromptClient(snapshot_dir=tmp_path).get("support@nope")
