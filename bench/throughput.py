"""Scoring throughput and orchestration overhead against a fake endpoint with a fixed latency.

Prints achieved calls/s beside the limit (concurrency / latency) and beside `dspy.Evaluate` on the
same work, then the Prefect + MLflow overhead as a share of LM time for 200 examples x 10 candidates.

    .venv/bin/python bench/throughput.py [--latency 0.1] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
sys.path.append(str(ROOT / "tests"))  # the fake endpoint is a test double
_home = Path(tempfile.mkdtemp(prefix="promptyard-bench-"))
os.environ.update(PROMPTYARD_HOME=str(_home), PROMPTYARD_MLFLOW_TRACKING_URI=f"sqlite:///{_home / 'mlflow.db'}",
                  PROMPTYARD_LM_CACHE="false", PROMPTYARD_RESUME="false", PREFECT_LOGGING_LEVEL="WARNING",
                  MLFLOW_LOGGING_LEVEL="WARNING")

from fake_llm import FakeLLM  # noqa: E402
from helpers import SEED_TEMPLATE, tiny_rows  # noqa: E402
from promptyard.evaluation import get_metric, score_template  # noqa: E402
from promptyard.runtime import Endpoint, apply_offline_env, make_lm  # noqa: E402

apply_offline_env()

METRIC = get_metric("exact_label", ["positive", "negative"])


def ours(lm, rows, concurrency: int) -> float:
    started = time.perf_counter()
    score_template(SEED_TEMPLATE, rows, lm=lm, metric=METRIC, input_fields=["text"], label_field="label",
                   concurrency=concurrency)
    return len(rows) / (time.perf_counter() - started)


def dspy_evaluate(lm, rows, concurrency: int) -> float:
    import dspy

    from optimizers import OptimizationTask
    from optimizers.program import adapter_for, dspy_metric, program_for, trainset_for
    from promptyard.registry import Template

    task = OptimizationTask(Template.parse(SEED_TEMPLATE), rows, ["text"], "label", METRIC)
    evaluate = dspy.Evaluate(devset=trainset_for(task), metric=dspy_metric(task), num_threads=concurrency,
                             display_progress=False)
    started = time.perf_counter()
    with dspy.context(lm=lm, adapter=adapter_for(task)):
        evaluate(program_for(task))
    return len(rows) / (time.perf_counter() - started)


def overhead(lm, rows, candidates: int, concurrency: int) -> tuple[float, float]:
    """Wall time of scoring + logging `candidates` through Prefect tasks and MLflow, and of the same
    requests sent from plain threads."""
    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.optimize_tasks import LMSpec, evaluate_candidate
    from helpers import write_dataset
    from optimizers import Candidate
    from promptyard.evaluation import load_dataset
    from promptyard.optimization import SeedPrompt
    from promptyard.runtime import Budget, Tracker, get_settings

    data = load_dataset(write_dataset(_home / "datasets" / "bench", tiny_rows(len(rows) + 60), test=40, validation=len(rows)))
    validation = data.rows("validation")
    os.environ["PROMPTYARD_LM_BASE_URL"], os.environ["PROMPTYARD_LM_MODEL"] = lm.kwargs["api_base"], "fake"
    get_settings.cache_clear()
    tracker = Tracker(get_settings().tracking_uri, "bench")
    seed = SeedPrompt("bench", 1, SEED_TEMPLATE)
    spec = LMSpec(Budget().open(), cache=False, concurrency=concurrency // 2)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def score_and_log() -> None:
        parent = tracker.start_run("bench")
        futures = [evaluate_candidate.submit(i, Candidate(SEED_TEMPLATE, "bench"), validation, data.card, spec, parent,
                                             f"bench-{i}", seed, {}) for i in range(1, candidates + 1)]
        [future.result() for future in futures]
        tracker.finish(parent)

    def plain() -> None:  # the same requests, same concurrency, no Prefect and no MLflow
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: score_template(SEED_TEMPLATE, validation, lm=lm, metric=METRIC,
                                                   input_fields=["text"], label_field="label",
                                                   concurrency=concurrency // 2), range(candidates)))

    score_and_log()  # warm up Prefect (its start-up is not per-optimization overhead)
    started = time.perf_counter()
    score_and_log()
    wall = time.perf_counter() - started
    started = time.perf_counter()
    plain()
    return wall, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=10)
    args = parser.parse_args()
    rows = tiny_rows(args.examples)
    limit = args.concurrency / args.latency
    with FakeLLM(latency_s=args.latency) as fake:
        lm = make_lm(Endpoint(fake.base_url, "fake"), cache=False)
        ours(lm, rows[:20], args.concurrency)  # warm up
        promptyard_rate = ours(lm, rows, args.concurrency)
        dspy_rate = dspy_evaluate(lm, rows, args.concurrency)
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):  # a temporary Prefect API for the flow
            wall, lm_time = overhead(lm, rows, args.candidates, args.concurrency)

    print(f"\nscoring {args.examples} examples, endpoint latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}")
    print(f"{'':<28}{'calls/s':>10}{'of limit':>10}")
    print(f"{'limit (concurrency/latency)':<28}{limit:>10.1f}{1:>10.0%}")
    print(f"{'promptyard score_template':<28}{promptyard_rate:>10.1f}{promptyard_rate / limit:>10.0%}")
    print(f"{'dspy.Evaluate':<28}{dspy_rate:>10.1f}{dspy_rate / limit:>10.0%}")
    ideal = args.candidates * args.examples * args.latency / args.concurrency
    print(f"\n{args.candidates} candidates x {args.examples} examples, same concurrency:")
    print(f"  through Prefect tasks + MLflow child runs  {wall:6.1f} s")
    print(f"  the same requests, plain threads           {lm_time:6.1f} s   (at the limit: {ideal:.1f} s)")
    print(f"  orchestration + logging overhead           {(wall - lm_time) / lm_time:6.1%}   (goal <= 10%)")


if __name__ == "__main__":
    main()
