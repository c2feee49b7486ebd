"""One round of a release: is the canary still running → analyse and act (the A/B analysis flow) →
audit what came of it. Schedule it hourly to run a release without a process that stays up:

    deployments:
      - name: release-intent-2
        entrypoint: flows/release.py:release_round
        parameters: {name: intent, version: 2}
        schedules: [{cron: "15 * * * *", timezone: UTC}]

`promptyard release NAME VERSION` starts the release (offline evidence, canary) and, unless told
otherwise, runs these rounds itself every `--every` seconds.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.ab_analysis import analyze_experiment
from promptyard.registry import Registry
from promptyard.runtime import apply_offline_env, get_settings
from promptyard.serving import Release

__all__ = ["release_round"]


@flow(name="release-round", log_prints=True)
def release_round(name: str, version: int, alias: str = "production") -> dict[str, Any]:
    """Analyse the canary of `name` version `version` on `alias` once; promote or roll back when decided.

    Args:
        name: The prompt being released.
        version: The version being released.
        alias: The protected alias it is released to.
    """
    apply_offline_env()
    registry = Registry(get_settings().tracking_uri)
    registry.check()
    job = Release(registry, name, version, alias=alias)
    step = job.round(lambda: analyze_experiment(prompt=job.ref))
    get_run_logger().info("%s/%s on %s: %s: %s", name, version, alias, step.step, step.detail)
    return step.as_dict()


if __name__ == "__main__":
    import sys

    release_round(sys.argv[1], int(sys.argv[2]), *sys.argv[3:4])
