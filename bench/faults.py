"""Faults against decisions: the same optimization on a clean endpoint, on one failing a share of
requests (429 with Retry-After, 500, hangs past the client timeout, 200 with a broken body), through
a burst of 429s, and killed with `kill -9` half way and run again.

Prints, side by side: the decision and test scores (must match the clean run), candidates scored and
lost, requests sent and the extra share the faults cost, and for the killed run the share of
requests done twice.

    .venv/bin/python bench/faults.py [--rate 0.2] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
sys.path.append(str(ROOT / "tests"))  # the fake endpoint is a test double
_home = Path(tempfile.mkdtemp(prefix="promptyard-bench-faults-"))
os.environ.update(PROMPTYARD_HOME=str(_home), PROMPTYARD_MLFLOW_TRACKING_URI=f"sqlite:///{_home / 'mlflow.db'}",
                  PROMPTYARD_LM_CACHE="false", PROMPTYARD_RESUME="false", PROMPTYARD_LM_TIMEOUT="1",
                  PROMPTYARD_PROPOSER_STYLE="plain", PROMPTYARD_LM_MODEL="fake", PROMPTYARD_USER="bench",
                  PREFECT_LOGGING_LEVEL="ERROR", MLFLOW_LOGGING_LEVEL="WARNING")

from fake_llm import Faults, FakeLLM  # noqa: E402
from helpers import SEED_TEMPLATE, tiny_rows, write_dataset  # noqa: E402
from promptyard.runtime import apply_offline_env, get_settings  # noqa: E402

apply_offline_env()
OPTIMIZER = {"name": "copro", "breadth": 4, "depth": 1, "train_size": 8, "max_candidates": 4}


def _seed(name: str) -> None:
    from promptyard.governance import Governance

    governance = Governance.from_settings(user="bench")
    governance.register(name, SEED_TEMPLATE)
    governance.set_alias(name, "production", 1)


def _verdict(decision: str) -> str:
    """What was decided, without the prompt's name: 'registered v2' or the reason nothing was."""
    if decision.startswith(("registered", "found the same template")):
        return "registered v" + decision.split(" version ", 1)[1].split(" ", 1)[0]
    return decision.split(":")[0]


def _row(label: str, result, fake: FakeLLM, before: int, seconds: float) -> dict:
    return {"scenario": label, "decision": _verdict(result.decision),
        "baseline": result.test.baseline if result.test else None,
        "candidate": result.test.candidate if result.test else None,
        "scored": sum(1 for c in result.candidates if not c.failed),
        "lost": sum(1 for c in result.candidates if c.failed),
        "requests": len(fake.requests) - before, "faults": sum(fake.faults_served.values()), "seconds": seconds}


def in_process(fake: FakeLLM, dataset: Path, rate: float) -> list[dict]:
    from flows.optimize import optimize_prompt

    rows = []
    for label, faults, burst in (("clean", None, 0), (f"{rate:.0%} of requests fail", Faults(rate=rate, seed=3,
                                                                                               hang_s=2.0), 0),
                                 ("burst of 20 x 429", None, 20)):
        name = "bench_" + str(len(rows))
        _seed(name)
        fake.faults, fake.faults_served = faults, Counter()
        if burst:
            fake.burst("429", burst)
        before, started = len(fake.requests), time.perf_counter()
        result = optimize_prompt(prompt=f"{name}@production", dataset=str(dataset), optimizer=OPTIMIZER)
        rows.append(_row(label, result, fake, before, time.perf_counter() - started))
        print(f"  {label}: {rows[-1]['decision']}", flush=True)
    fake.faults = None
    return rows


def killed_half_way(fake: FakeLLM, dataset: Path) -> dict:
    """`kill -9` of the flow process once half the candidates are scored, then the same command again."""
    import mlflow

    name = "bench_killed"
    _seed(name)
    env = {**os.environ, "PROMPTYARD_RESUME": "true", "PROMPTYARD_LM_CACHE": "true",
           "DSPY_CACHEDIR": str(_home / "lm-cache")}
    command = [str(Path(sys.executable).parent / "promptyard"), "optimize", f"{name}@production", "--dataset",
               str(dataset), "--max-candidates", "4", "--set", "breadth=4", "--set", "depth=1", "--set",
               "train_size=8", "--json"]
    client = mlflow.MlflowClient(get_settings().tracking_uri)

    def finished() -> int:
        experiment = client.get_experiment_by_name(get_settings().experiment)
        runs = client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []
        return sum(1 for r in runs if r.data.tags.get("mlflow.runName", "").startswith("candidate-")
                   and r.info.status == "FINISHED" and name in r.data.params.get("parent_prompt", ""))

    before = len(fake.requests)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    while finished() < 2 and first.poll() is None:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    served_first = [json.dumps(r, sort_keys=True) for r in fake.requests[before:]]
    started = time.perf_counter()
    second = subprocess.run(command, env=env, capture_output=True, text=True)
    if second.returncode:
        raise SystemExit(f"the resumed run failed:\n{second.stderr[-2000:]}")
    served_second = [json.dumps(r, sort_keys=True) for r in fake.requests[before + len(served_first):]]
    redone = sum((Counter(served_first) & Counter(served_second)).values())
    summary = json.loads(second.stdout)
    return {"scenario": "kill -9 at 2/4 candidates, run again", "decision": _verdict(summary["decision"]),
            "baseline": summary["test"]["baseline"] if summary.get("test") else None,
            "candidate": summary["test"]["candidate"] if summary.get("test") else None,
            "scored": sum(1 for c in summary["candidates"] if not c.get("failed")),
            "lost": sum(1 for c in summary["candidates"] if c.get("failed")),
            "requests": len(served_first) + len(served_second), "faults": 0,
            "seconds": time.perf_counter() - started, "redone": redone}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=0.2, help="share of task requests that fail")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per request at the fake endpoint")
    args = parser.parse_args()
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    dataset = write_dataset(_home / "datasets" / "bench", tiny_rows(300), test=100, validation=60)
    with FakeLLM(latency_s=args.latency) as fake, prefect_test_harness(server_startup_timeout=60):
        os.environ["PROMPTYARD_LM_BASE_URL"] = fake.base_url
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        get_settings.cache_clear()
        print("running the optimizations ...", flush=True)
        rows = in_process(fake, dataset, args.rate)
        rows.append(killed_half_way(fake, dataset))

    clean = rows[0]
    print(f"\n{'scenario':<38}{'decision':<22}{'test base→cand':>16}{'scored':>8}{'lost':>6}{'requests':>10}"
          f"{'extra':>8}{'faults':>8}")
    for r in rows:
        scores = f"{r['baseline']:.3f}→{r['candidate']:.3f}" if r["baseline"] is not None else "-"
        extra = r["requests"] / clean["requests"] - 1
        print(f"{r['scenario']:<38}{r['decision'][:21]:<22}{scores:>16}{r['scored']:>8}{r['lost']:>6}"
              f"{r['requests']:>10}{extra:>8.0%}{r['faults']:>8}")
    same = all((r["decision"], r["baseline"], r["candidate"]) == (clean["decision"], clean["baseline"],
                                                                    clean["candidate"]) for r in rows)
    killed = rows[-1]
    print(f"\nsame decision and test scores in every scenario: {'yes' if same else 'NO'}")
    print("(the resumed run sends fewer requests than the clean one: its LM cache is on, as by default)")
    print(f"requests done twice after kill -9: {killed['redone']} of {killed['requests']} "
          f"({killed['redone'] / killed['requests']:.1%})")
    print("goals: the same decision everywhere, no candidate lost, re-done requests <= 5% after a kill")


if __name__ == "__main__":
    main()
