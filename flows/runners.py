"""Where the optimize flow's tasks run: threads in the flow's process (the default), or a Dask cluster.

`PROMPTYARD_TASK_RUNNER=dask` runs the tasks (candidate scoring above all) through prefect-dask's
`DaskTaskRunner`: on the cluster at `PROMPTYARD_DASK_ADDRESS` (`tcp://host:8786`, its workers started
with the same `PROMPTYARD_*` environment), or on a local cluster of `PROMPTYARD_DASK_WORKERS`
processes. Tasks take plain data and open their clients inside, so they pickle.
"""

from __future__ import annotations

import sys

from promptyard.errors import UserError
from promptyard.runtime import Settings

__all__ = ["task_runner", "no_worker_profiler"]

# Dask workers sample every thread's stack 100 times a second (`sys._current_frames`). Before CPython
# 3.11.9 that call can deadlock against a thread starting or ending (cpython#106883, dask/distributed#8616),
# and scoring starts threads for every candidate: a worker hung for good, every thread waiting on the GIL.
PROFILER_DEADLOCKS = sys.version_info < (3, 11, 9)


def no_worker_profiler() -> None:
    """Local Dask clusters started from this process run their workers without the stack sampler (its only
    use is the dashboard's profile page) where the interpreter can deadlock on it."""
    if PROFILER_DEADLOCKS:
        import dask

        dask.config.set({"distributed.worker.profile.enabled": False})  # workers inherit it from the nanny


def task_runner(settings: Settings):
    """The task runner the settings ask for."""
    from prefect.task_runners import ThreadPoolTaskRunner

    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=2)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise UserError("PROMPTYARD_TASK_RUNNER=dask needs prefect-dask: pip install 'promptyard[dask]'.") from None
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    no_worker_profiler()
    return DaskTaskRunner(cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 1,
                                          "processes": True, "host": "127.0.0.1",
                                          "dashboard_address": "127.0.0.1:0"})
