"""Serving benchmark: promptyard's PromptClient beside plain `mlflow.genai.load_prompt`, and the A/B
request path beside the synchronous one.

Starts its own MLflow server (SQLite, temp dir, free port), then prints, side by side:
hot reads, cold reads, failed reads while the server is stopped during a read loop; then the p50
and p99 of `assign` and `record_outcome` on a warm client (events queued, written in the
background) against the synchronous path measured in the same run (hash + one SQLite transaction
per exposure, one per outcome: what the request path cost before), and the rows written after a
clean shutdown of 4 app processes against the rows they recorded.

    .venv/bin/python bench/serving.py
"""

from __future__ import annotations

import json
import logging
import signal
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from promptyard.governance import Governance
from promptyard.registry import Registry
from promptyard.runtime import apply_offline_env, get_settings, stack
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


def timed(fn, n: int) -> np.ndarray:
    """Seconds each of n calls took."""
    spent = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        started = clock()
        fn(i)
        spent[i] = clock() - started
    return spent / 1e9


APP = """
import json, sys
from promptyard.serving import PromptClient
worker, count, url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
app = PromptClient(sys.argv[4], events_url=url, snapshot_dir=sys.argv[5])
for i in range(count):
    app.record_outcome(app.assign("support@production", f"p{worker}-u{i % 500}"), i % 2, latency_ms=50.0)
print(json.dumps({"recorded": 2 * count}))
"""  # exits without close(): the exit hook writes what is queued


def four_processes(uri: str, home: Path, count: int) -> tuple[int, int]:
    """(rows recorded, rows written) by 4 app processes that exit normally."""
    import sqlalchemy as sa

    url = f"sqlite:///{home / 'four.db'}"
    root = Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", APP, str(w), str(count), url, uri, str(home / f"snap{w}")],
                              stdout=subprocess.PIPE, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
             for w in range(4)]
    recorded = sum(json.loads(p.communicate(timeout=600)[0])["recorded"] for p in procs)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        written = sum(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()
                      for table in ("promptyard_ab_exposures", "promptyard_ab_outcomes"))
    engine.dispose()
    return recorded, written


def main() -> None:
    import mlflow

    logging.getLogger("promptyard.serving").setLevel(logging.ERROR)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM runs the `finally` below: no server left
    home = Path(tempfile.mkdtemp(prefix="promptyard-bench-"))
    os.environ.update(PROMPTYARD_HOME=str(home), PROMPTYARD_MLFLOW_PORT=str(free_port()))  # all state in the temp dir
    get_settings.cache_clear()
    settings = get_settings()
    print(f"starting MLflow on {settings.tracking_uri} ...")
    stack.up(settings, ("mlflow",), echo=lambda _: None)
    try:
        uri = settings.tracking_uri
        registry = Registry(uri)
        author = Governance.from_settings(registry, user="bench-author")  # the experiment's starter is someone else
        version = author.register("support", "Be kind.\n\nQ: {{question}}")
        author.set_alias("support", "production", int(version.version))
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

        # A/B: the request path (queued, written in the background) beside the synchronous path
        from promptyard.serving import EventStore, Experiments, choose_version

        author.register("support", "Be brief.\n\nQ: {{question}}")
        experiment = Experiments(registry).start(ref, {int(version.version): 0.5, int(version.version) + 1: 0.5})
        n = 20_000
        sync = EventStore(f"sqlite:///{home / 'sync.db'}")
        ids = []
        sync_assign = timed(lambda i: ids.append(sync.record_exposure(
            experiment.id, f"user-{i}", "support", choose_version(experiment, f"user-{i}"))), 2_000)
        sync_record = timed(lambda i: sync.record_outcome(ids[i], 1.0, latency_ms=100.0), 2_000)
        sync.close()
        ab = PromptClient(uri, ttl_seconds=30, snapshot_dir=home / "snap", events_url=f"sqlite:///{home / 'ab.db'}")
        ab.assign(ref, "warm-up")
        assignments = []
        ours_assign = timed(lambda i: assignments.append(ab.assign(ref, f"user-{i % 5000}")), n)
        ours_record = timed(lambda i: ab.record_outcome(assignments[i], i % 2, latency_ms=100.0), n)
        ab.close()
        store = EventStore(f"sqlite:///{home / 'ab.db'}")
        written_here = sum(store.exposure_counts(experiment.id).values()) + len(store.observations(experiment.id))
        recorded, written = four_processes(uri, home, 5_000)
    finally:
        stack.down(settings, ("mlflow",))

    print()
    print(f"{'read path':<34}{'promptyard':>14}{'mlflow':>14}{'ratio':>10}")
    print(f"{'hot (cached alias)':<34}{hot_ours * 1e6:>11.2f} us{hot_mlflow * 1e6:>11.2f} us{hot_mlflow / hot_ours:>9.0f}x")
    print(f"{'cold (uncached, via server)':<34}{cold_ours * 1e3:>11.2f} ms{cold_mlflow * 1e3:>11.2f} ms"
          f"{cold_mlflow / cold_ours:>9.2f}x")
    print(f"{'failed reads, server stopped':<34}{stats['failed']:>14}{'-':>14}  "
          f"({stats['reads']} reads, {outage:.1f} s outage)")
    print()
    print(f"{'A/B request path (p50 / p99)':<34}{'promptyard':>22}{'synchronous':>24}{'p50 ratio':>11}")
    for name, ours, base in (("assign", ours_assign, sync_assign), ("record_outcome", ours_record, sync_record)):
        print(f"{name:<34}{np.median(ours) * 1e6:>9.1f} / {np.percentile(ours, 99) * 1e6:>6.1f} us"
              f"{np.median(base) * 1e6:>11.0f} / {np.percentile(base, 99) * 1e6:>6.0f} us"
              f"{np.median(base) / np.median(ours):>10.0f}x")
    print(f"{'rows written / recorded, 1 client':<34}{written_here:>14} / {2 * n + 1}  (+1: the warm-up assign)")
    print(f"{'rows written / recorded, 4 procs':<34}{written:>14} / {recorded}  (clean exit, no close())")
    print("\ngoals: hot >= 50x faster than mlflow's cached load_prompt; 0 failed reads during the outage; "
          "assign and record_outcome p50 <= 50 us; rows written = rows recorded")


if __name__ == "__main__":
    main()
