"""`promptyard optimize`, `promptyard demo` and `promptyard optimizers list`."""

from __future__ import annotations

from typing import Any

import click

from promptyard.cli.common import (
    emit,
    open_governance,
    open_registry,
    parse_pairs,
    point_prefect,
    use_prefect_server,
)
from promptyard.errors import PromptNotFoundError
from promptyard.runtime import get_settings

__all__ = ["optimize", "demo", "optimizers", "DEMO_TEMPLATE"]

DEMO_PROMPT = "intent"
DEMO_DATASET = "intent_recognition"
DEMO_TEMPLATE = (
    "Classify the intent of this message. Possible intents: add_to_playlist, book_restaurant, get_weather, "
    "play_music, rate_book, search_creative_work, search_screening_event. Answer with the intent only.\n\n"
    "Message: {{text}}"
)


def run_optimization(prompt: str, dataset: str, optimizer: str, settings: dict[str, Any], search: dict,
                     selection: dict, budget: dict, also_on: tuple[str, ...] = ()):
    """Check every input, then the services, then run the optimize flow in this process.
    Returns the flow's `OptimizationResult` and the Prefect URL of its flow run."""
    point_prefect()  # before the flow module imports Prefect
    from flows.optimize import check_endpoints, check_request, optimize_prompt
    from optimizers import settings_for
    from promptyard.optimization import parse_also_on

    choice, search, selection, budget = check_request(prompt, dataset, settings_for(optimizer, settings), search,
                                                      selection, budget)
    others = tuple(parse_also_on(spec) for spec in also_on)
    open_registry()
    check_endpoints(get_settings(), others)
    prefect_url = use_prefect_server()
    result = optimize_prompt(prompt=prompt, dataset=dataset, optimizer=choice, search=search, selection=selection,
                             budget=budget, also_on=list(also_on))
    return result, f"{prefect_url.removesuffix('/api')}/runs/flow-run/{result.flow_run_id}"


def print_result(result, prefect_url: str) -> None:
    click.echo("")
    click.echo(f"prompt {result.prompt} on {result.dataset} with {result.optimizer}")
    click.echo(f"  baseline on validation: {result.baseline_validation:.3f}")
    if result.reference_validation is not None:
        click.echo(f"  reference points on validation: {result.reference_validation.describe()}")
    for c in result.candidates:
        train = f"train {c.train_score:.3f}  " if c.train_score is not None else ""
        if c.failed:
            click.echo(f"  candidate {c.index}: failed ({c.error[:160]})")
        else:
            errors = f"  ({c.errors} request(s) failed, not scored)" if c.errors else ""
            click.echo(f"  candidate {c.index}: {train}validation {c.validation:.3f}{errors}")
    if result.choice is not None:
        click.echo(f"  {result.choice.summary()}")
    if result.test is not None:
        t = result.test
        click.echo(f"  test split (n={t.n}): baseline {t.baseline:.3f}, best (candidate {result.best_candidate}) "
                   f"{t.candidate:.3f}, difference {t.diff:+.3f} [{t.low:+.3f}, {t.high:+.3f}]")
    if result.reference_test is not None:
        click.echo(f"  reference points on test: {result.reference_test.describe()}")
        for who, versus in zip(("the seed", "the best candidate"), result.versus_majority, strict=False):
            click.echo(f"  {versus.describe(who)}")
    click.echo(f"  {result.decision}")
    for p in result.portability:
        click.echo(f"  {p.describe()}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    b = result.budget
    limit = f" of {b.max_calls}" if b.max_calls else ""
    click.echo(f"  LM calls: {b.calls}{limit} ({b.cached} answered from cache), tokens {b.tokens}")
    if result.proposer is not None:
        click.echo(f"  {result.proposer.describe()}")
    click.echo(f"MLflow run: {result.mlflow_url}")
    click.echo(f"Prefect flow run: {prefect_url}")
    click.echo(f"took {result.duration_s:.0f} s")


def _emit_result(result, prefect_url: str, as_json: bool) -> None:
    if as_json:
        emit({**result.to_dict(), "prefect_url": prefect_url}, True)
    else:
        print_result(result, prefect_url)


@click.command()
@click.argument("prompt")
@click.option("--dataset", required=True, help="Dataset name under datasets/ or a folder with data.jsonl + README.md.")
@click.option("--optimizer", default="copro", show_default=True, help="See `promptyard optimizers list`.")
@click.option("--max-candidates", type=int, help="Proposals scored on validation (the optimizer's default: 4).")
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
@click.option("--budget-proposer-calls", type=int, help="Most calls to the model that proposes rewrites.")
@click.option("--also-on", "also_on", multiple=True, metavar="ENDPOINT/MODEL",
              help="Re-score the seed and the winner on this model too (e.g. http://127.0.0.1:8000/v1/my-model): "
              "does the gain transfer? Repeatable; key: PROMPTYARD_ALSO_ON_API_KEY.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON only.")
def optimize(prompt, dataset, optimizer, max_candidates, settings, seed, limit_train, limit_validation, limit_test,
             selection, max_cost, max_latency, budget_calls, budget_tokens, budget_time, budget_proposer_calls,
             also_on, as_json) -> None:
    """Optimize PROMPT (NAME, NAME/VERSION or NAME@ALIAS) on a dataset and register the best
    candidate as a new version only if it beats the seed on the test split.

    \b
    Example:
      promptyard optimize intent@production --dataset intent_recognition --set breadth=4 --set depth=2
    """
    values = parse_pairs(settings, "--set", json_values=True)
    if max_candidates is not None:
        values["max_candidates"] = max_candidates
    result, url = run_optimization(
        prompt, dataset, optimizer, values,
        search={"seed": seed, "limit_train": limit_train, "limit_validation": limit_validation,
                "limit_test": limit_test},
        selection={"policy": selection, "max_cost_per_example": max_cost, "max_latency_s": max_latency},
        budget={"calls": budget_calls, "tokens": budget_tokens, "seconds": budget_time,
                "proposer_calls": budget_proposer_calls}, also_on=also_on)
    _emit_result(result, url, as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON only.")
def demo(as_json: bool) -> None:
    """Register the intent prompt (once) as intent@production and optimize it on intent_recognition.

    \b
    Example:
      promptyard up && promptyard demo
    """
    governance = open_governance()
    try:
        governance.registry.get(f"{DEMO_PROMPT}@production")
    except PromptNotFoundError:
        version = governance.register(DEMO_PROMPT, DEMO_TEMPLATE, commit_message="seed prompt",
                                      available_fields=["text"])
        governance.set_alias(DEMO_PROMPT, "production", int(version.version), reason="seed prompt")
        if not as_json:
            click.echo(f"registered seed prompt {DEMO_PROMPT} version {version.version} as {DEMO_PROMPT}@production")
    result, url = run_optimization(f"{DEMO_PROMPT}@production", DEMO_DATASET, "copro", {"max_candidates": 3}, {}, {}, {})
    _emit_result(result, url, as_json)
    if not as_json:
        click.echo("Compare the candidates in the MLflow UI: open the run above, then its child runs. "
                   "Stop the services with `promptyard down`.")


@click.group()
def optimizers() -> None:
    """Prompt optimizers (entry-point group `promptyard.optimizers`)."""


@optimizers.command("list")
@click.option("--json", "as_json", is_flag=True)
def optimizers_list(as_json: bool) -> None:
    """List optimizers and their settings: type, default and what each does.

    \b
    Example:
      promptyard optimizers list
      promptyard optimize intent@production --dataset intent_recognition --optimizer gepa --set max_metric_calls=200
    """
    from optimizers import available_optimizers, describe_settings

    found = {name: (cls, describe_settings(cls)) for name, cls in sorted(available_optimizers().items())}
    if as_json:
        emit({name: {"description": (cls.Settings.__doc__ or "").strip(),
                     "settings": [s.__dict__ for s in rows]} for name, (cls, rows) in found.items()}, True)
        return
    for name, (cls, rows) in found.items():
        click.echo(f"{name}: {(cls.Settings.__doc__ or '').strip()}")
        for s in rows:
            click.echo(f"  {s.name + '=' + repr(s.default):<28} ({s.type}) {s.description}")
