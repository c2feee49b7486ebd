"""Read-path benchmark: promptyard's PromptClient beside plain `mlflow.genai.load_prompt`.

Starts its own MLflow server (SQLite, temp dir, free port), then prints, side by side:
hot reads, cold reads, and failed reads while the server is stopped during a read loop.

    .venv/bin/python bench/serving.py
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
from pathlib import Path

from promptyard.registry import Registry
from promptyard.runtime import Settings, apply_offline_env, stack
from promptyard.serving import PromptClient

apply_offline_env()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def per_call(fn, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def main() -> None:
    import mlflow

    logging.getLogger("promptyard.serving").setLevel(logging.ERROR)
    home = Path(tempfile.mkdtemp(prefix="promptyard-bench-"))
    settings = Settings(home=home, mlflow_port=free_port())
    print(f"starting MLflow on {settings.tracking_uri} ...")
    stack.up(settings, ("mlflow",), echo=lambda _: None)
    try:
        uri = settings.tracking_uri
        registry = Registry(uri)
        version = registry.register("support", "Be kind.\n\nQ: {{question}}")
        registry.set_alias("support", "production", int(version.version))
        mlflow.set_tracking_uri(uri)
        ref, uri_ref = "support@production", "prompts:/support@production"

        client = PromptClient(uri, ttl_seconds=30, snapshot_dir=home / "snap")
        client.get(ref)
        mlflow.genai.load_prompt(uri_ref)
        hot_ours = per_call(lambda: client.get(ref), 200_000)
        hot_mlflow = per_call(lambda: mlflow.genai.load_prompt(uri_ref), 5_000)

        cold_ours = per_call(lambda: PromptClient(uri, snapshot_dir=home / "snap").get(ref), 50)
        cold_mlflow = per_call(lambda: mlflow.genai.load_prompt(uri_ref, cache_ttl_seconds=0), 50)

        # an outage in the middle of a read loop
        reader = PromptClient(uri, ttl_seconds=0.5, snapshot_dir=home / "snap")
        reader.get(ref)
        stats = {"reads": 0, "failed": 0}
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                try:
                    reader.get(ref).format(question="Where is my order?")
                except Exception:
                    stats["failed"] += 1
                stats["reads"] += 1
                time.sleep(0.002)

        thread = threading.Thread(target=loop)
        thread.start()
        time.sleep(1.0)
        stack.down(settings, ("mlflow",))
        outage_started = time.monotonic()
        time.sleep(3.0)
        outage = time.monotonic() - outage_started
        stack.up(settings, ("mlflow",), echo=lambda _: None)
        time.sleep(1.0)
        stop.set()
        thread.join()
        restarted = PromptClient(uri, snapshot_dir=home / "snap")  # cold start after recovery
        restarted.get(ref)

        # A/B: assignment (hash + exposure row) and outcome writes on the default SQLite store
        from promptyard.serving import Experiments

        registry.register("support", "Be brief.\n\nQ: {{question}}")
        Experiments(registry).start(ref, {int(version.version): 0.5, int(version.version) + 1: 0.5})
        ab = PromptClient(uri, ttl_seconds=30, snapshot_dir=home / "snap", events_url=f"sqlite:///{home / 'ab.db'}")
        units = iter(range(10**9))
        assignments = []
        assign = per_call(lambda: assignments.append(ab.assign(ref, f"user-{next(units)}")), 2_000)
        outcomes = iter(assignments)
        record = per_call(lambda: ab.record_outcome(next(outcomes), 1.0, latency_ms=100.0), 2_000)
    finally:
        stack.down(settings, ("mlflow",))

    print()
    print(f"{'read path':<34}{'promptyard':>14}{'mlflow':>14}{'ratio':>10}")
    print(f"{'hot (cached alias)':<34}{hot_ours * 1e6:>11.2f} us{hot_mlflow * 1e6:>11.2f} us{hot_mlflow / hot_ours:>9.0f}x")
    print(f"{'cold (uncached, via server)':<34}{cold_ours * 1e3:>11.2f} ms{cold_mlflow * 1e3:>11.2f} ms"
          f"{cold_mlflow / cold_ours:>9.2f}x")
    print(f"{'failed reads, server stopped':<34}{stats['failed']:>14}{'-':>14}  "
          f"({stats['reads']} reads, {outage:.1f} s outage)")
    print(f"{'A/B assign (hash + exposure write)':<34}{assign * 1e3:>11.2f} ms{'-':>14}")
    print(f"{'A/B record_outcome':<34}{record * 1e3:>11.2f} ms{'-':>14}")
    print("\ngoals: hot >= 50x faster than mlflow's cached load_prompt; 0 failed reads during the outage")


if __name__ == "__main__":
    main()
