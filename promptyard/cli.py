"""The `promptyard` command line: stack, prompts, datasets, optimize, demo.

Library errors become one clean message on stderr and exit code 1, here and nowhere else.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from promptyard.errors import OrchestratorUnavailableError, PromptyardError, UserError
from promptyard.settings import apply_offline_env, get_settings

__all__ = ["main", "cli"]


class _Group(click.Group):
    """Turn promptyard errors into `Error: ...` and exit 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PromptyardError as exc:
            raise click.ClickException(str(exc)) from None


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif text is not None:
        click.echo(text)


@click.group(cls=_Group)
@click.version_option(package_name="promptyard")
def cli() -> None:
    """Prompt registry on MLflow and prompt optimization with DSPy, orchestrated by Prefect.

    \b
    Example:
      promptyard up
      promptyard prompts register intent --file prompt.txt --dataset intent_recognition --alias production
      promptyard optimize intent@production --dataset intent_recognition
    """
    apply_offline_env()
    quiet_libraries()


def quiet_libraries() -> None:
    """Keep library chatter (MLflow's schema set-up, DSPy's truncation notes) out of the output."""
    import logging

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when MLflow is first imported
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("dspy.clients.lm").setLevel(logging.ERROR)


# -- stack ------------------------------------------------------------------------------------
@cli.command()
@click.option("--only", type=click.Choice(["llm", "mlflow", "prefect"]), multiple=True, help="Start only these.")
def up(only: tuple[str, ...]) -> None:
    """Start the bundled LLM, MLflow and Prefect on loopback (idempotent); wait until they answer.

    \b
    Example:
      promptyard up            # all three
      promptyard up --only mlflow
    """
    from promptyard import stack

    statuses = stack.up(get_settings(), only or stack.SERVICE_NAMES, echo=click.echo)
    _print_status(statuses)


@cli.command()
def down() -> None:
    """Stop the services `promptyard up` started.

    \b
    Example:
      promptyard down
    """
    from promptyard import stack

    stopped = stack.down(get_settings())
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show whether each service answers, its URL and pid.

    \b
    Example:
      promptyard status --json
    """
    from promptyard import stack

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


# -- datasets ---------------------------------------------------------------------------------
@cli.group(cls=_Group)
def datasets() -> None:
    """Evaluation datasets under datasets/ (JSONL + card)."""


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True)
def datasets_list(as_json: bool) -> None:
    """List datasets with their fields, labels and split sizes.

    \b
    Example:
      promptyard datasets list
    """
    from promptyard.data import list_datasets, load_card

    cards = [load_card(name) for name in list_datasets()]
    emit([c.__dict__ for c in cards], as_json)
    if not as_json:
        for c in cards:
            click.echo(f"{c.name:<22} inputs {','.join(c.input_fields):<10} label {c.label_field:<8} "
                       f"metric {c.metric:<12} test {c.test_size} validation {c.validation_size}")


# -- optimize ---------------------------------------------------------------------------------
def parse_pairs(pairs: tuple[str, ...], option: str, *, json_values: bool = False) -> dict[str, Any]:
    """KEY=VALUE options as a dict; values parsed as JSON when asked (and when they are JSON)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{option} takes KEY=VALUE, got {pair!r}.")
        try:
            result[key] = json.loads(value) if json_values else value
        except json.JSONDecodeError:
            result[key] = value
    return result


def use_prefect_server() -> str:
    """Point Prefect at the configured server; raise unless it answers."""
    from promptyard.health import require_answer

    os.environ.setdefault("PREFECT_API_URL", get_settings().prefect_url)
    url = os.environ["PREFECT_API_URL"]
    require_answer(f"{url.rstrip('/')}/health", OrchestratorUnavailableError, f"The Prefect server at {url}",
                   "Start it with `promptyard up`, or set PREFECT_API_URL to a running Prefect API.")
    return url


def run_optimization(params: dict[str, Any]) -> dict[str, Any]:
    """Check the services, then run the optimize flow in this process."""
    from promptyard.lm import Endpoint, check_endpoint
    from promptyard.registry import Registry

    settings = get_settings()
    Registry(settings.tracking_uri).check()
    check_endpoint(Endpoint.from_settings(settings))
    prefect_url = use_prefect_server()
    from flows.optimize import optimize_prompt

    summary = optimize_prompt(**params)
    summary["prefect_url"] = f"{prefect_url.removesuffix('/api')}/runs/flow-run/{summary['flow_run_id']}"
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    click.echo("")
    click.echo(f"prompt {summary['prompt']} on {summary['dataset']} with {summary['optimizer']}")
    click.echo(f"  baseline on validation: {summary['baseline_validation']:.3f}")
    for c in summary["candidates"]:
        train = f"train {c['train_score']:.3f}  " if c["train_score"] is not None else ""
        click.echo(f"  candidate {c['index']}: {train}validation {c['validation']:.3f}")
    if "test" in summary:
        t = summary["test"]
        click.echo(f"  test split (n={t['n']}): baseline {t['baseline']:.3f}, best (candidate {summary['best_candidate']}) "
                   f"{t['candidate']:.3f}, difference {t['diff']:+.3f} [{t['low']:+.3f}, {t['high']:+.3f}]")
    click.echo(f"  {summary['decision']}")
    if "budget" in summary:
        b = summary["budget"]
        limit = f" of {b['max_calls']}" if b["max_calls"] else ""
        click.echo(f"  LM calls: {b['calls']}{limit} ({b['cached']} answered from cache), tokens {b['tokens']}")
    click.echo(f"MLflow run: {summary['mlflow_url']}")
    click.echo(f"Prefect flow run: {summary['prefect_url']}")
    click.echo(f"took {summary['duration_s']:.0f} s")


@cli.command()
@click.argument("prompt")
@click.option("--dataset", required=True, help="Dataset name under datasets/ or a folder with data.jsonl + README.md.")
@click.option("--optimizer", default="copro", show_default=True, help="See `promptyard optimizers list`.")
@click.option("--max-candidates", default=4, show_default=True, help="Proposals scored on validation.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Optimizer setting (repeatable).")
@click.option("--seed", default=0, show_default=True)
@click.option("--limit-train", type=int, help="Use only the first N training examples.")
@click.option("--limit-validation", type=int, help="Use only the first N validation examples.")
@click.option("--limit-test", type=int, help="Use only the first N test examples.")
@click.option("--selection", default="quality", show_default=True, type=click.Choice(["quality", "weighted"]),
              help="How the best candidate is chosen on validation.")
@click.option("--max-cost", type=float, help="Budget: highest cost per example (USD, see PROMPTYARD_PRICES).")
@click.option("--max-latency", type=float, help="Budget: highest mean latency per request (seconds).")
@click.option("--budget-calls", type=int, help="Most LM calls for the whole run (cache hits are free).")
@click.option("--budget-tokens", type=int, help="Most tokens (prompt + completion) for the whole run.")
@click.option("--budget-time", type=float, help="Most seconds for the whole run.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON only.")
def optimize(prompt, dataset, optimizer, max_candidates, settings, seed, limit_train, limit_validation, limit_test,
             selection, max_cost, max_latency, budget_calls, budget_tokens, budget_time, as_json) -> None:
    """Optimize PROMPT (NAME, NAME/VERSION or NAME@ALIAS) on a dataset and register the best
    candidate as a new version only if it beats the seed on the test split.

    \b
    Example:
      promptyard optimize intent@production --dataset intent_recognition --set breadth=4 --set depth=2
    """
    summary = run_optimization(dict(
        prompt=prompt, dataset=dataset, optimizer=optimizer, optimizer_settings=parse_pairs(settings, "--set", json_values=True),
        max_candidates=max_candidates, seed=seed, limit_train=limit_train, limit_validation=limit_validation,
        limit_test=limit_test, selection=selection, max_cost_per_example=max_cost, max_latency_s=max_latency,
        budget_calls=budget_calls, budget_tokens=budget_tokens, budget_seconds=budget_time,
    ))
    if as_json:
        emit(summary, True)
    else:
        print_summary(summary)


@cli.command("eval")
@click.argument("prompt")
@click.option("--dataset", required=True, help="Dataset name under datasets/ or a dataset folder.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"]))
@click.option("--limit", type=int, help="Score only the first N examples of the split.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON only.")
def eval_(prompt: str, dataset: str, split: str, limit: int | None, as_json: bool) -> None:
    """Score one prompt version on a dataset split; print the metric with a 95% interval.

    \b
    Example:
      promptyard eval intent@production --dataset intent_recognition --split test
    """
    from promptyard.evaluation import evaluate_prompt

    r = evaluate_prompt(get_settings(), prompt, dataset, split=split, limit=limit)
    emit(r, as_json, f"{r['prompt']} on {r['dataset']} {r['split']} (n={r['n']}): {r['metric']} {r['score']:.3f} "
                     f"[{r['low']:.3f}, {r['high']:.3f}] 95% interval; mean latency {r['mean_latency_s'] * 1000:.0f} ms; "
                     f"tokens {r['prompt_tokens']} in / {r['completion_tokens']} out\nMLflow run: {r['mlflow_url']}")


@cli.command()
@click.option("--pool", default="promptyard-local", show_default=True, help="Process work pool to create if missing.")
def deploy(pool: str) -> None:
    """Register the deployments of prefect.yaml (nightly optimizations) with the Prefect server.

    \b
    Example:
      promptyard up && promptyard deploy
      PREFECT_API_URL=http://127.0.0.1:4200/api prefect worker start --pool promptyard-local
    """
    import subprocess
    from pathlib import Path

    url = use_prefect_server()
    root = Path(__file__).resolve().parents[1]
    if not (root / "prefect.yaml").is_file():
        raise UserError(f"No prefect.yaml in {root}: deploy from a checkout of the promptyard repository.")
    prefect = [str(Path(sys.executable).parent / "prefect"), "--no-prompt"]
    env = {**os.environ, "PREFECT_API_URL": url, "PWD": str(root)}
    if subprocess.run([*prefect, "work-pool", "inspect", pool], env=env, capture_output=True).returncode:
        subprocess.run([*prefect, "work-pool", "create", pool, "--type", "process"], env=env, capture_output=True,
                       check=True)
    done = subprocess.run([*prefect, "deploy", "--all"], env=env, cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"`prefect deploy --all` failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    click.echo(f"deployed prefect.yaml to {url} (pool {pool}); start a worker with:\n"
               f"  PREFECT_API_URL={url} prefect worker start --pool {pool}")


@cli.group(cls=_Group)
def optimizers() -> None:
    """Prompt optimizers (entry-point group `promptyard.optimizers`)."""


@optimizers.command("list")
@click.option("--json", "as_json", is_flag=True)
def optimizers_list(as_json: bool) -> None:
    """List optimizers and their settings with defaults.

    \b
    Example:
      promptyard optimizers list
    """
    from optimizers import available_optimizers

    found = {name: cls.accepted_settings() for name, cls in sorted(available_optimizers().items())}
    if as_json:
        emit(found, True)
        return
    for name, settings in found.items():
        click.echo(f"{name}: " + ", ".join(f"{k}={v!r}" for k, v in settings.items()))


def _register_commands() -> None:
    from promptyard.cli_ab import ab
    from promptyard.cli_governance import audit, policy
    from promptyard.cli_library import search  # noqa: F401  (adds the library commands to `prompts`)
    from promptyard.cli_prompts import demo, prompts

    cli.add_command(ab)
    cli.add_command(audit)
    cli.add_command(policy)
    cli.add_command(prompts)
    cli.add_command(demo)


_register_commands()


def main() -> None:
    cli(prog_name="promptyard")


if __name__ == "__main__":
    main()
