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

__all__ = ["up", "down", "status", "deploy"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where prefect.yaml and datasets/ live


@click.command()
@click.option("--only", type=click.Choice(["llm", "mlflow", "prefect"]), multiple=True, help="Start only these.")
def up(only: tuple[str, ...]) -> None:
    """Start the bundled LLM, MLflow and Prefect on loopback (idempotent); wait until they answer.

    \b
    Example:
      promptyard up            # all three
      promptyard up --only mlflow
    """
    from promptyard.runtime import stack

    statuses = stack.up(get_settings(), only or stack.SERVICE_NAMES, echo=click.echo)
    _print_status(statuses)


@click.command()
def down() -> None:
    """Stop the services `promptyard up` started.

    \b
    Example:
      promptyard down
    """
    from promptyard.runtime import stack

    stopped = stack.down(get_settings(), echo=click.echo)
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show whether each service answers, its URL and pid.

    \b
    Example:
      promptyard status --json
    """
    from promptyard.runtime import stack

    statuses = stack.status(get_settings())
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
        click.echo(f"{s.name:<8} {state:<5} {s.url}{extra}{note}")


@click.command()
@click.option("--pool", default="promptyard-local", show_default=True, help="Process work pool to create if missing.")
def deploy(pool: str) -> None:
    """Register the deployments of prefect.yaml (nightly optimizations) with the Prefect server.

    \b
    Example:
      promptyard up && promptyard deploy
      PREFECT_API_URL=http://127.0.0.1:4200/api prefect worker start --pool promptyard-local
    """
    url = use_prefect_server()
    if not (PROJECT_ROOT / "prefect.yaml").is_file():
        raise UserError(f"No prefect.yaml in {PROJECT_ROOT}: deploy from a checkout of the promptyard repository.")
    prefect = [str(Path(sys.executable).parent / "prefect"), "--no-prompt"]
    env = {**os.environ, "PREFECT_API_URL": url, "PWD": str(PROJECT_ROOT)}
    if subprocess.run([*prefect, "work-pool", "inspect", pool], env=env, capture_output=True).returncode:
        subprocess.run([*prefect, "work-pool", "create", pool, "--type", "process"], env=env, capture_output=True,
                       check=True)
    done = subprocess.run([*prefect, "deploy", "--all"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"`prefect deploy --all` failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    click.echo(f"deployed prefect.yaml to {url} (pool {pool}); start a worker with:\n"
               f"  PREFECT_API_URL={url} prefect worker start --pool {pool}")
