"""Where the optimize flow's tasks run: threads in the flow's process (the default), or a Dask cluster.

`PROMPTYARD_TASK_RUNNER=dask` runs the tasks (candidate scoring above all) through prefect-dask's
`DaskTaskRunner`: on the cluster at `PROMPTYARD_DASK_ADDRESS` (`tcp://host:8786`, its workers started
with the same `PROMPTYARD_*` environment), or on a local cluster of `PROMPTYARD_DASK_WORKERS`
processes. Tasks take plain data and open their clients inside, so they pickle.
"""

from __future__ import annotations

from promptyard.errors import UserError
from promptyard.runtime import Settings

__all__ = ["task_runner"]


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
    return DaskTaskRunner(cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 1,
                                          "processes": True, "host": "127.0.0.1",
                                          "dashboard_address": "127.0.0.1:0"})
