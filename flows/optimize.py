"""Optimize a prompt: load → baseline → propose → score → decide → register.

The decisions (budget plan, which candidate goes to the test split, register or not and why,
provenance) live in `promptyard.optimization`; the tasks in `flows.optimize_tasks`; what the run
writes about itself in `flows.optimize_record`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import flow, get_run_logger, runtime

from flows.optimize_record import log_scores, open_parent_run, record_result, record_test
from flows.optimize_tasks import (
    CandidateFailure,
    LMSpec,
    Proposal,
    evaluate_candidate,
    load_data,
    load_seed,
    objectives_of,
    propose,
    record_evidence,
    register_version,
    score,
    score_pair,
)
from flows.runners import task_runner
from optimizers import Candidate, CoproSettings, OptimizerChoice, OptimizerSettings, PluginOptimizer, get_optimizer
from promptyard.errors import (
    BudgetExhausted,
    EndpointUnreachableError,
    PromptyardError,
    TooManyErrorsError,
    TrackingUnavailableError,
)
from promptyard.evaluation import (
    LoadedDataset,
    against_reference,
    load_card,
    mcnemar,
    paired_bootstrap,
    paired_scores,
    pareto_front,
    refuse_if_errors,
    select,
)
from promptyard.optimization import (
    BudgetLimits,
    BudgetPlan,
    CandidateSummary,
    OptimizationResult,
    SearchOptions,
    SeedPrompt,
    SelectionOptions,
    checked,
    Contender,
    choose_winner,
    commit_message,
    decide_on_test,
    evidence,
    reference_notes,
    registered_reason,
    request_key,
    version_tags,
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

__all__ = ["optimize_prompt", "check_request"]


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
    return settings, search, selection, budget


@flow(name="optimize-prompt", task_runner=task_runner(get_settings()))
def optimize_prompt(prompt: str, dataset: str, optimizer: OptimizerChoice = CoproSettings(),
                    search: SearchOptions = SearchOptions(), selection: SelectionOptions = SelectionOptions(),
                    budget: BudgetLimits = BudgetLimits()) -> OptimizationResult:
    """Optimize a prompt version on a dataset; register the best candidate only if it beats the seed
    on the held-out test split.

    Args:
        prompt: The seed: NAME (latest version), NAME/VERSION or NAME@ALIAS.
        dataset: A dataset name under datasets/, or a folder with data.jsonl and a card.
        optimizer: The optimizer and its settings (`promptyard optimizers list` describes them).
        search: Random seed, example limits and the confidence of the test-split interval.
        selection: How the best candidate is chosen on validation.
        budget: Caps on LM calls, tokens and seconds for the whole run.
    """
    apply_offline_env()
    started, logger, settings = time.perf_counter(), get_run_logger(), get_settings()
    optimizer, search, selection, budget = check_request(prompt, dataset, optimizer, search, selection, budget)
    Registry(settings.tracking_uri).check()  # fail at once when MLflow does not answer (its client retries for minutes)
    seed = load_seed(prompt)
    data = load_data(dataset, seed.template)
    validation, test = data.rows("validation", search.limit_validation), data.rows("test", search.limit_test)
    plan = BudgetPlan(budget.calls, len(validation), len(test))
    plan.check()
    check_endpoint(Endpoint.from_settings(settings))
    meter = Budget(budget.calls, budget.tokens, budget.seconds)
    lm = LMSpec(meter.open(), settings.lm_cache, settings.lm_concurrency)
    key = request_key(seed, data.digest, optimizer, search, selection, budget, settings.lm_url, settings.lm_model)
    run_id, run_url = open_parent_run(seed, data, optimizer.name, optimizer.model_dump(exclude={"name"}), search, key)
    ok = False
    try:
        meter.reserve(plan.held_during_search)
        clock = time.perf_counter()
        baseline = score.with_options(task_run_name="score baseline · validation")(
            seed.template, seed.generation, validation, data.card, lm, "baseline · validation")
        log_scores(run_id, baseline, "baseline_validation")
        refuse_if_errors([baseline], settings.max_error_rate, "The seed on validation")
        plan = plan.measured(len(validation), baseline.prompt_tokens + baseline.completion_tokens,
                             (time.perf_counter() - clock) * lm.concurrency)
        meter.reserve(**plan.search_reserve)  # now that a request's tokens and seconds are known
        meter.tokens_per_request = plan.tokens_per_request
        logger.info("Baseline on validation: %.3f", baseline.accuracy)

        proposal = propose(optimizer, seed, data.rows("train", search.limit_train), data.card, lm, search.seed)
        affordable, stops = affordable_candidates(proposal, plan, meter)
        scored = score_candidates(affordable, validation, data, lm, run_id, key, seed,
                                  optimizer.model_dump(exclude={"name"}), stops)
        meter.release()
        run = RunContext(seed, data, validation, test, lm, meter, plan, optimizer.name, search, selection, run_id,
                         run_url, started)
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
        close_run(run_id, ok, settings.tracking_uri, logger)


@dataclass(frozen=True)
class RunContext:
    """What the decision steps of one optimization share (plain data, never passed to a task)."""

    seed: SeedPrompt
    data: LoadedDataset
    validation: list[dict]
    test: list[dict]
    lm: LMSpec
    meter: Budget
    plan: BudgetPlan
    optimizer: str
    search: SearchOptions
    selection: SelectionOptions
    run_id: str
    run_url: str
    started: float

    def reference(self, rows: list[dict], scores: list[list[float | None]]):
        """Reference points on `rows` and each score list tested against the majority label."""
        return against_reference(self.data.card, self.data.rows("train"), rows, self.data.card.make_metric(), scores,
                                 alpha=1 - self.search.confidence)


def conclude(run: RunContext, baseline, scored: list[tuple], proposal: Proposal, stops: list[str]) -> OptimizationResult:
    """Choose on validation, take the choice to the test split, record the decision on the parent run."""
    settings, meter = get_settings(), run.meter
    ranked = [(i, c, r, rid) for i, (c, r, rid, _) in enumerate(scored, 1) if r is not None]  # failed: not ranked
    objectives = [objectives_of(r) for _, _, r, _ in ranked]
    reserve = run.plan.test_reserve
    contenders = [Contender(c.template, c.generation.response_format != run.seed.generation.response_format,
                            r.accuracy, r.scores) for _, c, r, _ in ranked]
    verdict, tie = choose_winner(baseline.accuracy, objectives, contenders, run.selection, run.seed.template,
                                 proposed=len(proposal.candidates), budget_stopped=bool(stops), alpha=1 - run.search.confidence,
                                 seed=run.search.seed, test_affordable=meter.can_afford(
                                     reserve["calls"], tokens=reserve["tokens"], seconds=reserve["seconds"]))
    choice = tie.renumbered([i for i, *_ in ranked]) if tie else None
    outcome = {"decision": verdict.reason}
    if verdict.goes_to_test:
        _, best, best_result, best_run = ranked[verdict.best]
        outcome = test_and_register(run, best, best_result, best_run)
        if "report" in outcome:
            outcome["report"]["choice"] = choice.markdown(
                {i: r.accuracy for i, _, r, _ in ranked}, {i: c.details.get("output_format", "free")
                                                           for i, c, _, _ in ranked})
    reference, _ = run.reference(run.validation, [])
    result = OptimizationResult(
        prompt=run.seed.label, dataset=run.data.card.name, optimizer=run.optimizer,
        baseline_validation=baseline.accuracy,
        decision=outcome["decision"] + (f" (budget: {'; '.join(stops)})" if stops else ""), budget=meter.usage(),
        candidates=summaries(scored), cost_usd=settings.cost(meter.prompt_tokens, meter.completion_tokens),
        duration_s=round(time.perf_counter() - run.started, 1), parent_run_id=run.run_id, mlflow_url=run.run_url,
        flow_run_id=str(runtime.flow_run.id or ""), registered_version=outcome.get("version"),
        best_candidate=ranked[verdict.best][0] if "test" in outcome else None, test=outcome.get("test"),
        mcnemar=outcome.get("mcnemar"), pareto_front=[ranked[i][0] for i in pareto_front(objectives)],
        reference_validation=reference, reference_test=outcome.get("reference"), choice=choice,
        proposals_discarded=proposal.discarded,
        versus_majority=outcome.get("versus_majority", []),
        notes=reference_notes(outcome.get("reference"), outcome.get("versus_majority", [])))
    record_result(result, baseline, [(i, r) for i, _, r, _ in ranked], outcome.get("report"))
    return result


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


def summaries(scored: list[tuple]) -> list[CandidateSummary]:
    rows = []
    for i, (candidate, result, run_id, error) in enumerate(scored, 1):
        cost = objectives_of(result).cost if result else 0.0
        rows.append(CandidateSummary(i, candidate.source, candidate.details.get("output_format", "free"),
                                     candidate.train_score, result.accuracy if result else None, cost,
                                     result.mean_latency_s if result else 0.0, run_id,
                                     errors=result.errors if result else 0, error=error))
    return rows


def test_and_register(run: RunContext, best, best_validation, best_run_id) -> dict:
    """Score the seed and the best candidate on the test split, interleaved; register the candidate
    only on a significant gain over the examples both answered. Returns the decision and what it rests on."""
    seed, data, search = run.seed, run.data, run.search
    try:
        seed_test, best_test = score_pair.with_options(task_run_name="score seed and best candidate · test")(
            Candidate(seed.template, "seed", generation=seed.generation), best, run.test, data.card, run.lm,
            "seed and best · test")
        refuse_if_errors([seed_test, best_test], get_settings().max_error_rate, "The test split")
    except BudgetExhausted as exc:
        return {"decision": f"budget spent while scoring the test split ({exc}); nothing registered"}
    except TooManyErrorsError as exc:
        return {"decision": f"refused to decide: {exc} Nothing registered."}
    before, after = paired_scores(seed_test, best_test)
    comparison = paired_bootstrap(before, after, confidence=search.confidence, seed=search.seed)
    exact = mcnemar(before, after)
    reference, versus = run.reference(run.test, [seed_test.scores, best_test.scores])
    record_test(run.run_id, best_run_id, seed_test, best_test, comparison, exact, best_validation.accuracy,
                reference, versus)
    decision = decide_on_test(comparison)
    outcome = {"decision": decision.reason, "test": comparison, "mcnemar": exact, "reference": reference,
               "versus_majority": versus}
    if decision.register:
        tags = version_tags(parent_version=seed.version, optimizer=run.optimizer, dataset=data.card.name,
                            dataset_digest=data.digest, seed=search.seed, parent_run_id=run.run_id,
                            candidate_run_id=best_run_id, comparison=comparison)
        version, created = register_version(seed, best, tags, commit_message(run.optimizer, data.card.name,
                                                                                comparison))
        record_evidence(run.run_id, evidence(seed.name, seed.version, version, data, comparison))
        outcome |= {"version": version, "decision": registered_reason(seed.name, version, created, decision)}
    outcome["report"] = {
        "title": f"Optimization of {seed.name} version {seed.version} on {data.card.name}",
        "seed_template": seed.template, "best_template": best.template, "comparison": comparison, "test": exact,
        "baseline": seed_test, "best": best_test, "best_format": best.generation.response_format,
        "reference": reference, "versus_majority": versus}
    return outcome


if __name__ == "__main__":
    optimize_prompt(prompt="intent@production", dataset="intent_recognition")
