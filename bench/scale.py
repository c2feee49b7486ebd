"""Scale-out of scoring: workers (threads, or processes of a local Dask cluster) and endpoint replicas,
every request holding a slot of the endpoint's Prefect global concurrency limit.

Each replica is a mock OpenAI-compatible server (`tests/fake_llm.py`), in a process of its own as a real
endpoint is, that takes `--latency` seconds per request, refuses (429) anything beyond `--cap` requests in
flight and counts its own peak. Requests are retried
as in an optimization (a refusal would show as a retried 429 in "refused"). A local
Prefect server holds one global limit of `--cap` slots per replica. Each worker scores its share of
the candidates with `--concurrency` requests at a time (default: the whole limit, replicas x cap, as
`promptyard` scores by default under a global limit). Printed: throughput against the limit
(replicas x cap / latency), speed-up over one worker, and the peak in flight each replica saw.

    .venv/bin/python bench/scale.py [--latency 0.1] [--cap 4] [--examples 200] [--candidates 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
sys.path.append(str(ROOT / "tests"))  # the fake endpoint is a test double
_home = Path(tempfile.mkdtemp(prefix="promptyard-bench-"))
os.environ.update(PROMPTYARD_HOME=str(_home), PROMPTYARD_LM_CACHE="false", PREFECT_LOGGING_LEVEL="WARNING")

from fake_llm import FakeLLM  # noqa: E402
from helpers import tiny_rows  # noqa: E402
from promptyard.runtime import Settings, apply_offline_env, stack  # noqa: E402

apply_offline_env()

TEMPLATE = "Classify the sentiment of the review as positive or negative (variant {i}).\n\nReview: {{{{text}}}}"


def score_candidate(template: str, rows: list[dict], replicas: tuple[str, ...], api: str | None,
                    concurrency: int, quiet: bool = False) -> int:
    """One candidate on the rows; plain data in and out, so it runs in a Dask worker too."""
    from promptyard.evaluation import get_metric, score_template
    from promptyard.runtime import Endpoint, apply_offline_env, make_lm

    apply_offline_env()
    lm = make_lm(Endpoint(base_url=replicas[0], model="fake", replicas=replicas, limit_api=api), cache=False)
    result = score_template(template, rows, lm=lm, metric=get_metric("exact_label", ["positive", "negative"]),
                            input_fields=["text"], label_field="label", concurrency=concurrency)
    if result.errors and not quiet:
        print("  an error:", next(e.error for e in result.examples if e.error)[:200], flush=True)
    return result.errors


class Replicas:
    """`count` mock replicas served from a process of their own; `stats()` reads each one's (peak, refused)."""

    def __init__(self, count: int, latency: float, cap: int):
        import multiprocessing

        self._conn, child = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve_replicas, args=(count, latency, cap, child), daemon=True)
        self._process.start()
        self.urls: list[str] = self._conn.recv()

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def stats(self) -> list[tuple[int, int]]:
        self._conn.send("stats")
        return self._conn.recv()

    def __enter__(self) -> Replicas:
        return self

    def __exit__(self, *exc) -> None:
        self._conn.send("stop")
        self._process.join(10)


def _serve_replicas(count: int, latency: float, cap: int, conn) -> None:
    with ExitStack() as stack_:
        fakes = [stack_.enter_context(FakeLLM(latency_s=latency, cap=cap, keep_alive=True)) for _ in range(count)]
        conn.send([f.base_url for f in fakes])
        while (command := conn.recv()) != "stop":
            for fake in fakes if command == "reset" else ():
                fake.peak, fake.over_cap = 0, 0
                fake.requests.clear()
            conn.send([(f.peak, f.over_cap) for f in fakes])


def run_threads(workers: int, jobs: list[tuple]) -> int:
    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(lambda job: score_candidate(*job), jobs))


def run_dask(client, jobs: list[tuple]) -> int:
    futures = [client.submit(score_candidate, *job, pure=False) for job in jobs]
    return sum(client.gather(futures))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per request at the mock")
    parser.add_argument("--cap", type=int, default=4, help="requests in flight each replica serves (C)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="requests in flight per worker (default: the limit, replicas x cap)")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--modes", default="threads,dask")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    replica_counts = [int(r) for r in args.replicas.split(",")]
    rows = tiny_rows(args.examples)
    templates = [TEMPLATE.format(i=i) for i in range(args.candidates)]
    settings = Settings(home=_home, prefect_port=_free_port())
    from promptyard.runtime.limits import ensure_limits

    with ExitStack() as stack_:
        mocks = stack_.enter_context(Replicas(max(replica_counts), args.latency, args.cap))
        started = time.perf_counter()
        stack_.enter_context(stack.running(settings, ("prefect",), echo=lambda _: None))
        print(f"Prefect server up in {time.perf_counter() - started:.1f} s")
        api = settings.prefect_url
        ensure_limits(api, mocks.urls, args.cap)
        per_worker = "the limit" if args.concurrency is None else str(args.concurrency)
        print(f"\n{args.candidates} candidates x {args.examples} examples; mock: latency {args.latency * 1000:.0f} ms, "
              f"cap C={args.cap} per replica; {per_worker} requests in flight per worker; global limit "
              f"{args.cap} per replica\n")
        print(f"{'mode':<8}{'workers':>8}{'replicas':>9}{'req/s':>9}{'limit':>8}{'of limit':>9}{'speed-up':>9}"
              f"  peak per replica (<= C)   refused  errors")
        for mode in args.modes.split(","):
            client = cluster = None
            for workers in worker_counts:
                if mode == "dask":
                    if client is not None:
                        client.close()
                        cluster.close()
                    import distributed

                    from flows.runners import no_worker_profiler

                    no_worker_profiler()
                    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
                    client = distributed.Client(cluster)
                    client.run(score_candidate, templates[0], rows[:4], (mocks.urls[0],), api, 1)  # warm each
                for replicas in replica_counts:
                    urls = tuple(mocks.urls[:replicas])
                    mocks.reset()
                    concurrency = args.concurrency or replicas * args.cap
                    jobs = [(t, rows, urls, api, concurrency) for t in templates]
                    clock = time.perf_counter()
                    errors = run_threads(workers, jobs) if mode == "threads" else run_dask(client, jobs)
                    rate = len(templates) * len(rows) / (time.perf_counter() - clock)
                    limit = replicas * args.cap / args.latency
                    speed = _speed_up(mode, workers, replicas, rate)
                    seen = mocks.stats()[:replicas]
                    peaks = " ".join(str(peak) for peak, _ in seen)
                    refused = sum(over for _, over in seen)
                    print(f"{mode:<8}{workers:>8}{replicas:>9}{rate:>9.1f}{limit:>8.0f}{rate / limit:>9.0%}"
                          f"{speed:>9}  {peaks:<25}{refused:>8}{errors:>8}", flush=True)
            if client is not None:
                client.close()
                cluster.close()
        _control(mocks, rows, templates, args)


_RATES: dict[tuple[str, int], float] = {}


def _speed_up(mode: str, workers: int, replicas: int, rate: float) -> str:
    """This rate over the same mode's one-worker rate on the same replicas."""
    if workers == 1:
        _RATES[(mode, replicas)] = rate
    one = _RATES.get((mode, replicas))
    return f"{rate / one:.2f}x" if one else "-"


def _control(mocks: Replicas, rows, templates, args) -> None:
    """Without the global limit, four workers oversubscribe one replica: the mock refuses (429s, retried)."""
    mocks.reset()
    jobs = [(t, rows[:50], (mocks.urls[0],), None, args.concurrency or args.cap, True) for t in templates[:4]]
    try:
        run_threads(4, jobs)
    except Exception as exc:  # scoring stops after a streak of refusals: that is the point
        print(f"\ncontrol stopped: {type(exc).__name__}")
    peak, refused = mocks.stats()[0]
    print(f"\ncontrol, no global limit, 4 workers on 1 replica: peak {peak} in flight (cap {args.cap}), "
          f"{refused} requests refused by the mock")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    main()
