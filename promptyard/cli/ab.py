"""`promptyard ab start | status | analyze | stop | offline`."""

from __future__ import annotations

import click

from promptyard.cli.common import emit, open_registry, parse_pairs, use_prefect_server
from promptyard.errors import UserError
from promptyard.runtime import get_settings

__all__ = ["ab", "design_options", "parse_guardrails", "plan_text"]


def _experiments():
    from promptyard.serving import Experiments

    return Experiments(open_registry())


def _parse_split(pairs: tuple[str, ...]) -> dict[int, float]:
    weights: dict[int, float] = {}
    for pair in pairs:
        version, _, weight = pair.partition("=")
        try:
            number, share = int(version), float(weight.rstrip("%")) / (100 if weight.endswith("%") else 1)
        except ValueError:
            raise UserError(f"--split takes VERSION=WEIGHT (e.g. 3=0.9 or 3=90%), got {version}={weight}.") from None
        if number in weights:
            raise UserError(f"Version {number} appears twice in --split.")
        weights[number] = share
    return weights


def parse_guardrails(guardrails: tuple[str, ...]) -> dict[str, float] | None:
    if not guardrails:
        return None
    try:
        return {k: float(v) for k, v in parse_pairs(guardrails, "--guardrail").items()}
    except ValueError:
        raise UserError(f"--guardrail takes METRIC=SHARE with a number, e.g. latency_ms=0.2; got {guardrails}.") from None


def design_options(command):
    """The options of an experiment's fixed design, shared by `ab start` and `release`."""
    for option in reversed([
        click.option("--alpha", default=0.05, show_default=True,
                     help="Chance of any false promotion or rollback (split across quality and guardrails)."),
        click.option("--min-samples", default=100, show_default=True, help="Units per version before the first look."),
        click.option("--max-outcomes", type=int, help="End inconclusive (alias unchanged) after this many outcomes."),
        click.option("--guardrail", "guardrails", multiple=True, metavar="METRIC=SHARE",
                     help="Tolerated relative increase of latency_ms or cost before rollback (default 0.2 each)."),
        click.option("--lift", default=0.05, show_default=True,
                     help="Smallest quality difference worth detecting, in outcome units (0.05 = 5 points)."),
        click.option("--base-rate", type=float,
                     help="Expected outcome mean of the control, to size the experiment (default: observed)."),
    ]):
        command = option(command)
    return command


def plan_text(experiment, base_rate: float | None) -> tuple[str, dict]:
    """The experiment's design statement and the units it needs, before traffic."""
    from promptyard.serving import EventStore, plan_before_start
    from promptyard.serving.design import levels_text

    if base_rate is not None and not base_rate > 0:
        raise UserError(f"--base-rate {base_rate} is not valid: give the control's expected mean outcome, e.g. 0.25.")
    history = None
    if base_rate is None:
        store = EventStore(get_settings().events_url)
        try:
            history = store.history(experiment.prompt, experiment.control)
        finally:
            store.close()
    found = plan_before_start(experiment, history, base_rate)
    design = levels_text(experiment.alpha, len(experiment.treatments), experiment.levels)
    return f"design: {design}\nplan: {found.text()}", {"design": design, "plan": found.as_dict()}


@click.group()
def ab() -> None:
    """A/B tests: split an alias across versions, analyse with always-valid statistics, decide."""


@ab.command()
@click.argument("prompt")
@click.option("--split", "splits", multiple=True, required=True, metavar="VERSION=WEIGHT",
              help="Share of units for a version (repeat; shares sum to 1; include the alias' current version).")
@design_options
@click.option("--thompson", is_flag=True, help="Reallocate traffic toward the likely best version at each analysis.")
@click.option("--json", "as_json", is_flag=True)
def start(prompt, splits, alpha, min_samples, max_outcomes, guardrails, lift, base_rate, thompson, as_json) -> None:
    """Start an experiment on PROMPT (NAME@ALIAS); the alias keeps pointing to the control.

    Prints the fixed design (how alpha is split between the quality test and the guardrails) and
    how many units the experiment needs to detect --lift.

    \b
    Example:
      promptyard ab start support@production --split 3=0.9 --split 4=0.1 --lift 0.03
    """
    if base_rate is not None and not base_rate > 0:
        raise UserError(f"--base-rate {base_rate} is not valid: give the control's expected mean outcome, e.g. 0.25.")
    experiment = _experiments().start(prompt, _parse_split(splits), alpha=alpha, min_samples=min_samples,
                                      max_outcomes=max_outcomes, guardrails=parse_guardrails(guardrails),
                                      thompson=thompson, lift=lift)
    text, data = plan_text(experiment, base_rate)
    split = ", ".join(f"v{v} {w:.0%}" for v, w in experiment.weights.items())
    emit({"experiment": experiment.id, "weights": experiment.weights, "control": experiment.control,
          "levels": experiment.levels, **data}, as_json,
         f"started {experiment.id}: {split} (control v{experiment.control})\n{text}\n"
         f"apps: client.assign({prompt!r}, unit_id=...) then client.record_outcome(assignment, value)\n"
         f"analyse: promptyard ab analyze {prompt}")


@ab.command()
@click.argument("prompt")
@click.option("--json", "as_json", is_flag=True)
def status(prompt: str, as_json: bool) -> None:
    """Show the running experiment on PROMPT with live per-version metrics (changes nothing).

    \b
    Example:
      promptyard ab status support@production
    """
    from promptyard.serving import EventStore, analyze

    experiments = _experiments()
    experiment = experiments.get(prompt)
    if experiment is None:
        last = experiments.last_result(prompt)
        emit({"prompt": prompt, "running": False, "last": last}, as_json,
             f"no experiment runs on {prompt}" + (f"; the last one ({last['experiment']}) ended "
                                                   f"{last['decision']}: v{last['version']} ({last['reason']})"
                                                   if last else ""))
        return
    store = EventStore(get_settings().events_url)
    analysis = analyze(experiment, store.observations(experiment.id), store.exposure_counts(experiment.id))
    if as_json:
        emit({"prompt": prompt, "running": True, **analysis.as_dict()}, True)
        return
    click.echo(f"{experiment.id} on {prompt} (control v{experiment.control}, epoch {experiment.epoch})")
    click.echo(f"  design: {analysis.design}")
    for s in analysis.versions:
        latency = f"  latency {s.mean_latency_ms:.0f} ms" if s.mean_latency_ms is not None else ""
        mean = f"{s.mean:.3f} [{s.low:.3f}, {s.high:.3f}]" if s.units > 1 else "-"
        click.echo(f"  v{s.version:<4} weight {s.weight:>5.0%}  exposures {s.exposures:>6}  units {s.units:>6}  "
                   f"outcomes {s.outcomes:>6}  mean {mean}{latency}")
    for version, results in analysis.comparisons.items():
        if "value" in results:
            r = results["value"]
            click.echo(f"  v{version} − v{experiment.control}: {r['diff']:+.3f}, always-valid interval "
                       f"[{r['low']:+.3f}, {r['high']:+.3f}], p = {r['p_value']:.3g} (level {r['alpha']:.3g})")
        for metric, r in results.items():
            if metric != "value":
                click.echo(f"  v{version} {metric} vs v{experiment.control}: {r['diff']:+.1%}, always-valid interval "
                           f"[{r['low']:+.1%}, {r['high']:+.1%}], tolerated +{r['threshold']:.0%} "
                           f"(level {r['alpha']:.3g})")
    if analysis.plan:
        click.echo(f"  plan: {analysis.plan['text']}")
    click.echo(f"  decision now: {analysis.decision} ({analysis.reason})")


@ab.command()
@click.argument("prompt")
@click.option("--dry-run", is_flag=True, help="Analyse and log, but do not promote, roll back or reallocate.")
@click.option("--json", "as_json", is_flag=True)
def analyze(prompt: str, dry_run: bool, as_json: bool) -> None:
    """Run the analysis flow on PROMPT now (what the scheduled deployment runs).

    \b
    Example:
      promptyard ab analyze support@production
    """
    _experiments()
    use_prefect_server()
    from flows.ab_analysis import analyze_experiment

    result = analyze_experiment(prompt=prompt, apply=not dry_run)
    text = f"{prompt}: {result['decision']} ({result['reason']})"
    if result.get("mlflow_url"):
        text += f"\nMLflow run: {result['mlflow_url']}"
    if result.get("applied", {}).get("decision") not in (None, "continue", "dry-run"):
        applied = result["applied"]
        text += f"\napplied: {applied['decision']}" + (f", alias now on v{applied['version']}" if "version" in applied else "")
    emit(result, as_json, text)


@ab.command()
@click.argument("prompt")
@click.option("--promote", type=int, help="Move the alias to this version of the experiment.")
@click.option("--reason", default="stopped by hand", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def stop(prompt: str, promote: int | None, reason: str, as_json: bool) -> None:
    """Stop the experiment on PROMPT; the alias stays on the control unless --promote.

    \b
    Example:
      promptyard ab stop support@production
    """
    result = _experiments().stop(prompt, decision="promote" if promote else "stopped", winner=promote, reason=reason)
    emit(result, as_json, f"stopped {result['experiment']}; {prompt} → v{result['version']}")


@ab.command()
@click.argument("a")
@click.argument("b")
@click.option("--dataset", required=True, help="Dataset name under datasets/ or a dataset folder.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"]))
@click.option("--limit", type=int, help="Use only the first N examples of the split.")
@click.option("--confidence", default=0.95, show_default=True)
@click.option("--lift", default=0.05, show_default=True,
              help="Difference worth detecting, in metric units: prints the examples it needs.")
@click.option("--json", "as_json", is_flag=True)
def offline(a: str, b: str, dataset: str, split: str, limit: int | None, confidence: float, lift: float,
            as_json: bool) -> None:
    """Compare two versions on the same dataset examples: interval of B − A and McNemar's test.

    \b
    Example:
      promptyard ab offline intent/1 intent/2 --dataset intent_recognition
    """
    from promptyard.evaluation import reference_lines
    from promptyard.serving import compare_prompts

    r = compare_prompts(get_settings(), a, b, dataset, split=split, limit=limit, confidence=confidence, lift=lift)
    mcnemar = (f"; McNemar p = {r['mcnemar_p_value']:.3g} ({r['fixed']} fixed, {r['broken']} broken)"
               if r["mcnemar_p_value"] is not None else "")
    emit(r, as_json, f"{r['a']} {r['a_score']:.3f} vs {r['b']} {r['b_score']:.3f} on {r['dataset']} {r['split']} "
                     f"(n={r['n']}): B − A {r['diff']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] "
                     f"{confidence:.0%} interval{mcnemar}\n{r['verdict']}; {r['evidence']}\n{r['power']}\n"
                     + "".join(f"{line}\n" for line in reference_lines(r, r["a"], r["b"]))
                     + f"MLflow run: {r['mlflow_url']}")
