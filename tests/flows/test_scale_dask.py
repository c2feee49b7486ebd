"""Candidate scoring on a real two-worker Dask cluster (prefect-dask), reached by address."""

from __future__ import annotations

import pytest
from helpers import SEED_TEMPLATE, governed

from flows.optimize import optimize_prompt
from flows.runners import PROFILER_DEADLOCKS, no_worker_profiler, task_runner
from promptyard.runtime import Settings, budget

distributed = pytest.importorskip("distributed")


@pytest.fixture
def cluster():
    no_worker_profiler()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as c, \
            distributed.Client(c) as client:
        yield c.scheduler_address, client


def test_an_optimization_scores_its_candidates_on_two_dask_workers(fake_llm, tiny_dataset, registry, cluster):
    address, client = cluster
    fake_llm.latency_s = 0.05  # candidates take long enough that both workers get some
    version = governed(registry).register("sentiment", SEED_TEMPLATE, commit_message="seed")
    governed(registry).set_alias("sentiment", "production", int(version.version))
    runner = task_runner(Settings(task_runner="dask", dask_address=address))

    result = optimize_prompt.with_options(task_runner=runner)(
        prompt="sentiment@production", dataset=str(tiny_dataset),
        optimizer={"name": "copro", "breadth": 2, "depth": 1, "train_size": 8, "max_candidates": 3})

    assert result.registered_version == 2 and result.test.candidate == 1.0
    assert len(result.candidates) >= 2 and all(c.validation is not None for c in result.candidates)
    # each worker process ran tasks of this run: both hold a ledger under the run's budget key
    keys = client.run(lambda: sorted(budget._OPEN))
    assert len(keys) == 2 and all(keys.values()), keys


def test_a_capped_run_scores_nothing_on_dask_workers(fake_llm, tiny_dataset, registry, cluster):
    address, _ = cluster
    version = governed(registry).register("sentiment", SEED_TEMPLATE, commit_message="seed")
    governed(registry).set_alias("sentiment", "production", int(version.version))
    runner = task_runner(Settings(task_runner="dask", dask_address=address))
    result = optimize_prompt.with_options(task_runner=runner)(
        prompt="sentiment@production", dataset=str(tiny_dataset), budget={"calls": 500},
        optimizer={"name": "copro", "breadth": 2, "depth": 1, "train_size": 8, "max_candidates": 2})
    assert result.registered_version is None and result.candidates == []
    assert "run it with PROMPTYARD_TASK_RUNNER=threads, or without the budget caps" in result.decision


def test_workers_of_a_local_cluster_run_without_the_stack_sampler_where_it_deadlocks():
    import dask

    dask.config.set({"distributed.worker.profile.enabled": True})  # dask's default, as in a fresh process
    runner = task_runner(Settings(task_runner="dask", dask_workers=1))
    with distributed.LocalCluster(**runner.cluster_kwargs) as c, distributed.Client(c) as client:
        seen = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
    assert list(seen.values()) == [not PROFILER_DEADLOCKS]
