"""Optimize a prompt: load → baseline → propose → score → decide → register.

The decisions (budget plan, which candidate goes to the test split, register or not and why,
provenance) live in `promptyard.optimization`; the tasks in `flows.optimize_tasks`; the steps that
run the decisions in `flows.optimize_decide`; what the run writes about itself in
`flows.optimize_record`.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger

from flows.optimize_decide import RunContext, conclude
from flows.optimize_record import log_scores, open_parent_run
from flows.optimize_tasks import (
    CandidateFailure,
    LMSpec,
    evaluate_candidate,
    load_data,
    load_seed,
    propose,
    score,
)
from flows.runners import task_runner
from optimizers import CoproSettings, OptimizerChoice, OptimizerSettings, PluginOptimizer, get_optimizer
from promptyard.errors import (
    BudgetExhausted,
    EndpointUnreachableError,
    PromptyardError,
    TrackingUnavailableError,
    UserError,
)
from promptyard.evaluation import load_card, select
from promptyard.optimization import (
    BudgetLimits,
    BudgetPlan,
    OptimizationResult,
    OtherModel,
    SearchOptions,
    SelectionOptions,
    checked,
    parse_also_on,
    request_key,
)
from promptyard.registry import PromptRef, Registry
from promptyard.runtime import (
    Budget,
    Endpoint,
    Tracker,
    apply_offline_env,
    check_endpoint,
    get_settings,
    is_transient_service_error,
)

__all__ = ["optimize_prompt", "check_request", "check_endpoints"]


def check_request(prompt: str, dataset: str, optimizer: OptimizerSettings | PluginOptimizer, search, selection,
                  budget) -> tuple[OptimizerSettings, SearchOptions, SelectionOptions, BudgetLimits]:
    """Every input checked before any service is contacted or any call spent (the CLI calls this too).
    Returns the optimizer's validated settings and the typed option groups."""
    PromptRef.parse(prompt)
    settings = get_optimizer(optimizer).settings  # a plugin's settings are validated here too
    search, selection = checked(SearchOptions, search, "search"), checked(SelectionOptions, selection, "selection")
    budget = checked(BudgetLimits, budget, "budget")
    select([], policy=selection.policy, weights=selection.weights)
    load_card(dataset).make_metric()  # the card's metric must be one promptyard may run
    proposer_url = get_settings().proposer_base_url
    if proposer_url is not None and not proposer_url.startswith(("http://", "https://")):
        raise UserError(f"PROMPTYARD_PROPOSER_BASE_URL={proposer_url!r} is not a URL: give the OpenAI-compatible base "
                        "URL of the model that proposes rewrites (e.g. https://api.openai.com/v1), or unset it to "
                        "propose with the task model.")
    return settings, search, selection, budget


@flow(name="optimize-prompt", task_runner=task_runner(get_settings()))
def optimize_prompt(prompt: str, dataset: str, optimizer: OptimizerChoice = CoproSettings(),
                    search: SearchOptions = SearchOptions(), selection: SelectionOptions = SelectionOptions(),
                    budget: BudgetLimits = BudgetLimits(), also_on: list[str] | None = None) -> OptimizationResult:
    """Optimize a prompt version on a dataset; register the best candidate only if it beats the seed
    on the held-out test split.

    Args:
        prompt: The seed: NAME (latest version), NAME/VERSION or NAME@ALIAS.
        dataset: A dataset name under datasets/, or a folder with data.jsonl and a card.
        optimizer: The optimizer and its settings (`promptyard optimizers list` describes them).
        search: Random seed, example limits and the confidence of the test-split interval.
        selection: How the best candidate is chosen on validation.
        budget: Caps on LM calls, tokens and seconds for the whole run.
        also_on: Other models (ENDPOINT/MODEL, e.g. http://host:8000/v1/my-model) to re-score the seed and the
            winner on, on the test split: does the gain transfer?
    """
    apply_offline_env()
    started, logger, settings = time.perf_counter(), get_run_logger(), get_settings()
    optimizer, search, selection, budget = check_request(prompt, dataset, optimizer, search, selection, budget)
    others = tuple(parse_also_on(spec) for spec in also_on or [])
    Registry(settings.tracking_uri).check()  # fail at once when MLflow does not answer (its client retries for minutes)
    seed = load_seed(prompt)
    data = load_data(dataset, seed.template)
    validation, test = data.rows("validation", search.limit_validation), data.rows("test", search.limit_test)
    plan = BudgetPlan(budget.calls, len(validation), len(test))
    plan.check()
    check_endpoints(settings, others)
    meter, proposing = Budget(budget.calls, budget.tokens, budget.seconds), Budget(budget.proposer_calls,
                                                                                  budget.proposer_tokens)
    lm = LMSpec(meter.open(), settings.lm_cache, settings.lm_concurrency, proposing.open(), settings.own_proposer)
    key = request_key(seed, data.digest, optimizer, search, selection, budget, settings.lm_url, settings.lm_model,
                      Endpoint.proposer_from_settings(settings).describe(), others)
    run_id, run_url = open_parent_run(seed, data, optimizer.name, optimizer.model_dump(exclude={"name"}), search, key)
    ok = False
    try:
        meter.reserve(plan.held_during_search)
        clock = time.perf_counter()
        baseline = score.with_options(task_run_name="score baseline · validation")(
            seed.template, seed.generation, validation, data.card, lm, "baseline · validation",
            "The seed on validation")
        log_scores(run_id, baseline, "baseline_validation")
        plan = plan.measured(len(validation), baseline.prompt_tokens + baseline.completion_tokens,
                             (time.perf_counter() - clock) * lm.concurrency,
                             meter.calls / baseline.lm_calls if baseline.lm_calls else 1.0)
        meter.reserve(**plan.search_reserve)  # now that a request's tokens and seconds are known
        meter.tokens_per_request = plan.tokens_per_request
        logger.info("Baseline on validation: %.3f", baseline.accuracy)

        proposal = propose(optimizer, seed, data.rows("train", search.limit_train), data.card, lm, search.seed)
        affordable, stops = affordable_candidates(proposal, plan, meter)
        scored = score_candidates(affordable, validation, data, lm, run_id, key, seed,
                                  optimizer.model_dump(exclude={"name"}), stops)
        meter.release()
        run = RunContext(seed, data, validation, test, lm, meter, plan, optimizer.name, search, selection, run_id,
                         run_url, started, others)
        result = conclude(run, baseline, scored, proposal, stops)
        logger.info(result.decision)
        ok = True
        return result
    except Exception as exc:
        if is_transient_service_error(exc) and not isinstance(exc, PromptyardError):
            raise outage(exc, settings) from None
        raise
    finally:
        Budget.close(lm.budget_key)
        Budget.close(lm.proposer_key)
        close_run(run_id, ok, settings.tracking_uri, logger)


def check_endpoints(settings, others: tuple[OtherModel, ...] = ()) -> None:
    """The task endpoint, the proposer's when it is another, and the models of `--also-on` answer (before
    anything is spent)."""
    check_endpoint(Endpoint.from_settings(settings))
    proposer = Endpoint.proposer_from_settings(settings)
    if proposer.base_url != settings.lm_url.rstrip("/"):
        try:
            check_endpoint(proposer)
        except EndpointUnreachableError as exc:
            raise EndpointUnreachableError(f"The proposer endpoint (PROMPTYARD_PROPOSER_BASE_URL): {exc} Or unset "
                                           "PROMPTYARD_PROPOSER_BASE_URL to propose with the task model.") from None
    for other in others:
        try:
            check_endpoint(Endpoint(other.base_url, other.model, settings.also_on_api_key or settings.lm_api_key))
        except EndpointUnreachableError as exc:
            raise EndpointUnreachableError(f"--also-on {other.base_url}/{other.model}: {exc} (its key: "
                                           "PROMPTYARD_ALSO_ON_API_KEY.) Or leave --also-on out.") from None


def outage(exc: Exception, settings) -> PromptyardError:
    """A service stayed away past its retries: one clear error instead of a client's traceback."""
    from dspy.utils.exceptions import LMError

    what = f"{type(exc).__name__}: {str(exc)[:200]}"
    resume = ("The run stopped; what it finished is kept: run the same command again when it is back and the "
              "optimization resumes from there.")
    if isinstance(exc, LMError):
        return EndpointUnreachableError(f"The LLM endpoint {settings.lm_url} kept failing after its retries ({what}). "
                                        + resume)
    return TrackingUnavailableError(f"MLflow at {settings.tracking_uri} stopped answering during the optimization "
                                    f"({what}). " + resume)


def close_run(run_id: str, ok: bool, tracking_uri: str, logger) -> None:
    """Mark the parent run finished or failed; if MLflow is away, say so (a resumed run marks it failed)."""
    try:
        Tracker(tracking_uri).finish(run_id, ok)
    except Exception as exc:
        logger.warning("could not mark MLflow run %s %s (%s); the next attempt will", run_id,
                       "finished" if ok else "failed", type(exc).__name__)


def affordable_candidates(proposal, plan: BudgetPlan, meter: Budget) -> tuple[list, list[str]]:
    """The proposals the budget can score on validation, never touching the test split's share; and why
    any were left out."""
    stops = [proposal.stopped] if proposal.stopped else []
    meter.reserve(**plan.test_reserve)
    affordable = plan.affordable_candidates(meter.calls, len(proposal.candidates), tokens_used=meter.tokens,
                                            max_tokens=meter.max_tokens)
    if affordable < len(proposal.candidates):
        stops.append(f"the budget scores {affordable} of {len(proposal.candidates)} candidates on validation")
    return proposal.candidates[:affordable], stops


def score_candidates(candidates, rows, data, lm, run_id, key, seed, optimizer_params, stops) -> list[tuple]:
    """Every candidate on validation, one task each, logged as child runs as they finish:
    (candidate, result or None, child run id, why it failed or "")."""
    futures = [evaluate_candidate.with_options(task_run_name=f"candidate {i} · validation").submit(
        i, c, rows, data.card, lm, run_id, key, seed, optimizer_params) for i, c in enumerate(candidates, 1)]
    scored = []
    for candidate, future in zip(candidates, futures, strict=True):
        try:
            result, child = future.result()
        except BudgetExhausted as exc:
            stops.append(f"candidate dropped, {exc}")
            continue
        except CandidateFailure as failure:
            scored.append((candidate, None, failure.run_id, failure.reason))
            continue
        Tracker(get_settings().tracking_uri).adopt(child, run_id)  # a resumed run shows the earlier attempt's child
        scored.append((candidate, result, child, ""))
    return scored


if __name__ == "__main__":
    optimize_prompt(prompt="intent@production", dataset="intent_recognition")
