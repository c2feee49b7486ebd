"""`promptyard up | down | status | deploy`: the local services and the scheduled deployments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from promptyard.cli.common import emit, use_prefect_server
from promptyard.errors import UserError
from promptyard.runtime import get_settings

__all__ = ["up", "down", "status", "deploy", "worker"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where prefect.yaml and datasets/ live


@click.command()
@click.option("--only", type=click.Choice(["llm", "mlflow", "prefect"]), multiple=True, help="Start only these.")
@click.option("--team", is_flag=True, help="Team mode: MLflow and Prefect on PostgreSQL (PROMPTYARD_POSTGRES_URL or a "
              "local server), MLflow with basic-auth and the alias guard; this state directory stays in team mode.")
def up(only: tuple[str, ...], team: bool) -> None:
    """Start the bundled LLM, MLflow, Prefect and a Prefect worker for the deployments' work pool on
    loopback (idempotent); wait until they answer.

    \b
    Example:
      promptyard up            # all of them (PROMPTYARD_WORKERS=0: no worker)
      promptyard up --only mlflow
      promptyard up --team     # PostgreSQL behind everything; see `promptyard migrate`
    """
    from promptyard.runtime import stack, team as team_mode, workers

    settings = get_settings()
    if team or settings.team_mode:
        settings = settings.model_copy(update={"team": True})
        statuses = team_mode.up(settings, only or stack.SERVICE_NAMES, echo=click.echo)
    else:
        statuses = stack.up(settings, only or stack.SERVICE_NAMES, echo=click.echo)
    if "prefect" in (only or stack.SERVICE_NAMES) and settings.workers:
        workers.start(settings, settings.workers, echo=click.echo)
    if "prefect" in (only or stack.SERVICE_NAMES) and settings.lm_limit:
        from promptyard.runtime import Endpoint
        from promptyard.runtime.limits import ensure_limits

        ensure_limits(settings.prefect_url, Endpoint.from_settings(settings).urls, settings.lm_limit)
    _print_status(statuses + workers.status(settings) + _limit_status(settings))


def _limit_status(settings) -> list:
    """The endpoint's global limits (one per replica), when PROMPTYARD_LM_LIMIT is set."""
    if not settings.lm_limit:
        return []
    from promptyard.runtime import Endpoint
    from promptyard.runtime.limits import read_limits
    from promptyard.runtime.stack import ServiceStatus

    found = read_limits(settings.prefect_url, Endpoint.from_settings(settings).urls)
    return [ServiceStatus("limit", settings.prefect_url, limit is not None, None,
                          f"{name}: {limit['active_slots']} of {limit['limit']} slots in use" if limit else
                          f"{name} missing: `promptyard up` creates it") for name, limit in found.items()]


@click.command()
@click.option("--count", type=click.IntRange(0, 64), required=True, help="Workers to keep running (0 stops them).")
@click.option("--limit", type=click.IntRange(1, 64), default=None,
              help="Flow runs each worker runs at once [default: PROMPTYARD_WORKER_LIMIT].")
def worker(count: int, limit: int | None) -> None:
    """Keep N Prefect process workers polling the deployments' work pool, each running at most LIMIT flow
    runs at once; extra workers are stopped (TERM, a grace period, then INT, then KILL).

    \b
    Example:
      promptyard worker --count 4 --limit 1
      promptyard worker --count 0          # stop them all
    """
    from promptyard.runtime import workers

    settings = get_settings()
    if count == 0:
        stopped = workers.stop(settings, echo=click.echo)
        click.echo(f"stopped: {', '.join(stopped)}" if stopped else "no worker was running")
        return
    workers.start(settings, count, limit, echo=click.echo)
    _print_status(workers.status(settings))


@click.command()
def down() -> None:
    """Stop the services `promptyard up` started.

    \b
    Example:
      promptyard down
    """
    from promptyard.runtime import stack, team, workers

    settings = get_settings()
    stopped = workers.stop(settings, echo=click.echo) + \
        (team.down(settings, echo=click.echo) if settings.team_mode else stack.down(settings, echo=click.echo))
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show whether each service answers, its URL and pid.

    \b
    Example:
      promptyard status --json
    """
    from promptyard.runtime import stack, team, workers

    settings = get_settings()
    statuses = (team.status(settings) if settings.team_mode else stack.status(settings)) + \
        workers.status(settings) + _limit_status(settings)
    if as_json:
        emit([s.__dict__ for s in statuses], True)
    else:
        _print_status(statuses)
    if not all(s.healthy for s in statuses):
        sys.exit(3)


def _print_status(statuses) -> None:
    for s in statuses:
        state = "up" if s.healthy else "down"
        extra = f"  pid {s.pid}" if s.pid else ""
        note = f"  ({s.note})" if s.note else ""
        click.echo(f"{s.name:<9} {state:<5} {s.url}{extra}{note}")  # URLs here never carry a password


@click.command()
@click.option("--pool", default=None, help="Process work pool to create if missing [default: PROMPTYARD_WORK_POOL].")
@click.option("--prompts", "prompts_file", type=click.Path(path_type=Path), default=None,
              help="A YAML file listing prompts to optimize on a schedule (see promptyard.cli.schedules); one "
              "deployment each, instead of prefect.yaml's.")
def deploy(pool: str | None, prompts_file: Path | None) -> None:
    """Register the deployments of prefect.yaml (nightly optimizations) with the Prefect server, or one
    nightly optimization per prompt listed in a file; the workers `promptyard up` started run them.

    \b
    Example:
      promptyard up && promptyard deploy
      promptyard deploy --prompts nightly.yaml    # prompts: [{prompt: intent@production, dataset: ...}]
    """
    pool = pool or get_settings().work_pool
    deploy_file = PROJECT_ROOT / "prefect.yaml"
    if prompts_file is not None:
        from promptyard.cli.schedules import deployments_file

        deploy_file = get_settings().home_dir / "deployments.yaml"
        deploy_file.parent.mkdir(parents=True, exist_ok=True)
        names = deployments_file(prompts_file, PROJECT_ROOT, pool, deploy_file)  # checked before any service
    url = use_prefect_server()
    if not deploy_file.is_file():
        raise UserError(f"No prefect.yaml in {PROJECT_ROOT}: deploy from a checkout of the promptyard repository.")
    prefect = [str(Path(sys.executable).parent / "prefect"), "--no-prompt"]
    env = {**os.environ, "PREFECT_API_URL": url, "PWD": str(PROJECT_ROOT)}
    if subprocess.run([*prefect, "work-pool", "inspect", pool], env=env, capture_output=True).returncode:
        subprocess.run([*prefect, "work-pool", "create", pool, "--type", "process"], env=env, capture_output=True,
                       check=True)
    done = subprocess.run([*prefect, "deploy", "--all", "--pool", pool, "--prefect-file", str(deploy_file)], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"`prefect deploy --all` failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    what = f"{len(names)} deployments ({', '.join(names)})" if prompts_file is not None else "prefect.yaml"
    click.echo(f"deployed {what} to {url} (pool {pool}); `promptyard status` shows the workers that run "
               "them (`promptyard worker --count N` for more)")
