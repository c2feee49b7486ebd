"""The read path against a real MLflow server that stops or freezes: a cold start is served from the
last-known-good snapshot within a bounded time, a warm client never fails a read."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from helpers import free_port, governed

from promptyard.registry import Registry
from promptyard.runtime import Settings, get_settings, stack
from promptyard.serving import PromptClient

BOUND_S = 3.0  # a cold start never waits longer than this for a server that does not answer



@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One real MLflow server for the module (each test brings it back up if a test stopped it)."""
    home = tmp_path_factory.mktemp("server")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PROMPTYARD_MLFLOW_TRACKING_URI", raising=False)
        settings = Settings(home=home, mlflow_port=free_port())
    with stack.running(settings, ("mlflow",), echo=lambda _: None):
        registry = Registry(settings.tracking_uri)
        governed(registry).register("support", "Be kind.\n\nQ: {{question}}")
        governed(registry).set_alias("support", "production", 1)
        try:
            yield settings
        finally:
            stack.down(settings, ("mlflow",))  # the one the last test brought back up, not only the first


@pytest.fixture
def server(shared_server, monkeypatch):
    stack.up(shared_server, ("mlflow",), echo=lambda _: None)
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", shared_server.tracking_uri)
    get_settings.cache_clear()
    return shared_server


def _pid(settings: Settings) -> int:
    import json

    return int(json.loads((settings.home_dir / "run" / "mlflow.pid").read_text())["pid"])


def _cold_start(settings: Settings, snapshots) -> tuple[object, float]:
    started = time.monotonic()
    prompt = PromptClient(settings.tracking_uri, snapshot_dir=snapshots).get("support@production")
    return prompt, time.monotonic() - started


def test_a_cold_start_while_mlflow_is_stopped_is_served_from_the_snapshot(server, tmp_path):
    PromptClient(server.tracking_uri, snapshot_dir=tmp_path / "snap").get("support@production")  # last known good
    stack.down(server, ("mlflow",))
    prompt, took = _cold_start(server, tmp_path / "snap")
    assert (prompt.version, prompt.source) == (1, "snapshot") and took < BOUND_S, took
    assert prompt.format(question="x") == "Be kind.\n\nQ: x"


def test_a_cold_start_while_mlflow_is_frozen_is_served_from_the_snapshot(server, tmp_path):
    """A server that accepts connections and never answers (SIGSTOP): MLflow's own client would wait
    through its retries for minutes."""
    PromptClient(server.tracking_uri, snapshot_dir=tmp_path / "snap").get("support@production")
    os.killpg(_pid(server), signal.SIGSTOP)
    try:
        prompt, took = _cold_start(server, tmp_path / "snap")
    finally:
        os.killpg(_pid(server), signal.SIGCONT)
    assert (prompt.version, prompt.source) == (1, "snapshot") and took < BOUND_S, took


def test_a_warm_client_fails_no_read_while_mlflow_stops_and_comes_back(server, tmp_path):
    client = PromptClient(server.tracking_uri, ttl_seconds=0.2, snapshot_dir=tmp_path / "snap")
    assert client.get("support@production").version == 1
    failures, reads, stop = [], [0], threading.Event()

    def read_loop():
        while not stop.is_set():
            try:
                client.get("support@production").format(question="x")
            except Exception as exc:  # noqa: BLE001 - any failed read counts
                failures.append(exc)
            reads[0] += 1
            time.sleep(0.002)

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        time.sleep(0.5)
        stack.down(server, ("mlflow",))
        time.sleep(2.0)  # the cache expires many times over while the server is gone
        stack.up(server, ("mlflow",), echo=lambda _: None)
        time.sleep(0.5)
    finally:
        stop.set()
        reader.join()
    assert failures == [] and reads[0] > 100
