"""`promptyard release NAME VERSION`: offline evidence → canary → hourly analysis → promote or roll back."""

from __future__ import annotations

import click

from promptyard.cli.ab import design_options, parse_guardrails, plan_text
from promptyard.cli.common import emit, open_registry, use_prefect_server
from promptyard.errors import UserError
from promptyard.runtime import get_settings

__all__ = ["release"]


def _share(text: str) -> float:
    try:
        return float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise UserError(f"--canary takes a share, e.g. 5% or 0.05; got {text!r}.") from None


@click.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True, help="The alias to release to.")
@click.option("--dataset", help="Run the offline A/B on this dataset when no recorded evidence qualifies "
                                "(default: the dataset the policy names, if any).")
@click.option("--canary", default="5%", show_default=True, help="Share of units the version gets during the canary.")
@design_options
@click.option("--every", default=3600.0, show_default=True, help="Seconds between two analyses.")
@click.option("--rounds", type=int, help="Analyse at most this many times now (0: start the canary and leave the "
                                         "analysis to a later run of this command); default: until it ends.")
@click.option("--json", "as_json", is_flag=True)
def release(name, version, alias, dataset, canary, alpha, min_samples, max_outcomes, guardrails, lift, base_rate,
            every, rounds, as_json) -> None:
    """Release VERSION of NAME to a protected alias, closing the loop from evidence to promotion.

    \b
    1. offline evidence that VERSION is not worse than the alias' version (recorded, or an offline
       A/B on --dataset now);
    2. a canary split on the alias (default 5% of units), started through governance;
    3. the A/B analysis every --every seconds (a `release-round` Prefect flow run each time);
    4. promotion through the usual checks when VERSION is better, or automatic rollback (the canary
       ends, the alias stays) on a guardrail breach or when VERSION is worse.
    Every step is written to the audit log. Run it again to resume a release that is under way.

    \b
    Example:
      promptyard release support 4 --dataset support_tickets
      promptyard release support 4 --rounds 0        # start the canary only; resume later
    """
    from promptyard.serving import Release

    share = _share(canary)
    if every < 0 or (rounds is not None and rounds < 0):
        raise UserError(f"--every {every} and --rounds {rounds} must be ≥ 0.")
    registry = open_registry()
    steps = []

    def say(step) -> None:
        steps.append(step.as_dict())
        if not as_json:
            click.echo(f"{step.step}: {step.detail}" + (f" (run {step.run_id})" if step.run_id else ""))

    job = Release(registry, name, version, alias=alias)
    if job.running() is None:
        rule = job.governance.policy.rule_for(name)
        chosen = dataset or rule.dataset

        def compare(a: str, b: str) -> dict:
            from promptyard.serving import compare_prompts

            return compare_prompts(get_settings(), a, b, chosen, lift=lift)

        say(job.offline(compare if chosen else None))
    experiment, step = job.canary(share, alpha=alpha, min_samples=min_samples, max_outcomes=max_outcomes,
                                  guardrails=parse_guardrails(guardrails), lift=lift)
    say(step)
    design, data = plan_text(experiment, base_rate)
    if not as_json:
        click.echo(design)
    last = step
    if rounds != 0:
        use_prefect_server()
        from flows.release import release_round
        from promptyard.serving import ReleaseStep

        def next_round():
            return ReleaseStep(**release_round(name=name, version=version, alias=alias))

        last = job.watch(next_round, every=every, rounds=rounds, echo=say) or step
    elif not as_json:
        click.echo(f"the canary runs; analyse and act with `promptyard release {name} {version} --rounds 1` "
                   "(it resumes), or deploy flows/release.py:release_round with an hourly schedule")
    emit({"release": f"{name}/{version}", "alias": alias, "experiment": experiment.id, "steps": steps,
          "final": last.step if last.final else None, **data}, as_json)
