"""Optimize a prompt: load → baseline → propose → score → decide → register.

The decisions (budget plan, which candidate goes to the test split, register or not and why,
provenance) live in `promptyard.optimization`; the tasks in `flows.optimize_tasks`; what the run
writes about itself in `flows.optimize_record`.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger, runtime
from prefect.task_runners import ThreadPoolTaskRunner

from flows.optimize_record import log_scores, open_parent_run, record_result, record_test
from flows.optimize_tasks import (
    LMSpec,
    evaluate_candidate,
    load_data,
    load_seed,
    objectives_of,
    propose,
    record_evidence,
    register_version,
    score,
)
from optimizers import CoproSettings, OptimizerChoice, OptimizerSettings, PluginOptimizer, get_optimizer
from promptyard.errors import BudgetExhausted
from promptyard.evaluation import load_card, mcnemar, paired_bootstrap, pareto_front, select
from promptyard.optimization import (
    BudgetLimits,
    BudgetPlan,
    CandidateSummary,
    OptimizationResult,
    SearchOptions,
    SelectionOptions,
    checked,
    choose_on_validation,
    commit_message,
    decide_on_test,
    evidence,
    registered_reason,
    version_tags,
)
from promptyard.registry import PromptRef, Registry
from promptyard.runtime import Budget, Endpoint, Tracker, apply_offline_env, check_endpoint, get_settings

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


@flow(name="optimize-prompt", task_runner=ThreadPoolTaskRunner(max_workers=2))
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
    optimizer_name = optimizer.name
    optimizer_params = optimizer.model_dump(exclude={"name"})
    run_id, run_url = open_parent_run(seed, data, optimizer_name, optimizer_params, search)
    ok = False
    try:
        meter.reserve(plan.held_during_search)
        baseline = score.with_options(task_run_name="score baseline · validation")(
            seed.template, seed.generation, validation, data.card, lm, "baseline · validation")
        log_scores(run_id, baseline, "baseline_validation")
        logger.info("Baseline on validation: %.3f", baseline.accuracy)

        proposal = propose(optimizer, seed, data.rows("train", search.limit_train), data.card, lm, search.seed)
        stops = [proposal.stopped] if proposal.stopped else []
        meter.reserve(plan.held_for_test)  # candidates may now use what the search left, never the test split's
        affordable = plan.affordable_candidates(meter.calls, len(proposal.candidates))
        if affordable < len(proposal.candidates):
            stops.append(f"the budget scores {affordable} of {len(proposal.candidates)} candidates on validation")
        candidates, results, run_ids = score_candidates(proposal.candidates[:affordable], validation, data, lm,
                                                        run_id, seed, optimizer_params, stops)
        meter.release()
        objectives = [objectives_of(r) for r in results]
        verdict = choose_on_validation(baseline.accuracy, objectives, selection, proposed=len(proposal.candidates),
                                       budget_stopped=bool(stops), test_affordable=meter.can_afford(2 * len(test)))
        outcome = {"decision": verdict.reason}
        if verdict.goes_to_test:
            outcome = test_and_register(seed, candidates[verdict.best], results[verdict.best], baseline,
                                        run_ids[verdict.best], test, data, lm, optimizer_name, search, run_id)
        decision = outcome["decision"] + (f" (budget: {'; '.join(stops)})" if stops else "")
        result = OptimizationResult(
            prompt=seed.label, dataset=data.card.name, optimizer=optimizer_name,
            baseline_validation=baseline.accuracy, decision=decision, budget=meter.usage(),
            candidates=[CandidateSummary(i, c.source, c.details.get("output_format", "free"), c.train_score,
                                         r.accuracy, o.cost, r.mean_latency_s, rid)
                        for i, (c, r, o, rid) in enumerate(zip(candidates, results, objectives, run_ids), 1)],
            cost_usd=settings.cost(meter.prompt_tokens, meter.completion_tokens),
            duration_s=round(time.perf_counter() - started, 1), parent_run_id=run_id, mlflow_url=run_url,
            flow_run_id=str(runtime.flow_run.id or ""), registered_version=outcome.get("version"),
            best_candidate=verdict.best + 1 if "test" in outcome else None, test=outcome.get("test"),
            mcnemar=outcome.get("mcnemar"), pareto_front=[i + 1 for i in pareto_front(objectives)])
        record_result(result, baseline, results, outcome.get("report"))
        logger.info(result.decision)
        ok = True
        return result
    finally:
        Budget.close(lm.budget_key)
        Tracker(settings.tracking_uri).finish(run_id, ok)


def score_candidates(candidates, rows, data, lm, run_id, seed, optimizer_params, stops):
    """Score every candidate on validation, one task each (logged as child runs as they finish)."""
    futures = [evaluate_candidate.with_options(task_run_name=f"candidate {i} · validation").submit(
        i, c, rows, data.card, lm, run_id, seed, optimizer_params) for i, c in enumerate(candidates, 1)]
    kept, results, run_ids = [], [], []
    for candidate, future in zip(candidates, futures, strict=True):
        try:
            result, child = future.result()
        except BudgetExhausted as exc:
            stops.append(f"candidate dropped, {exc}")
            continue
        kept.append(candidate)
        results.append(result)
        run_ids.append(child)
    return kept, results, run_ids


def test_and_register(seed, best, best_validation, baseline, best_run_id, test, data, lm, optimizer_name, search,
                      run_id) -> dict:
    """Score the seed and the best candidate on the test split; register the candidate only on a
    significant gain. Returns the decision and what it rests on."""
    try:
        seed_test = score.with_options(task_run_name="score baseline · test")(
            seed.template, seed.generation, test, data.card, lm, "baseline · test")
        best_test = score.with_options(task_run_name="score best candidate · test")(
            best.template, best.generation, test, data.card, lm, "best candidate · test")
    except BudgetExhausted as exc:
        return {"decision": f"budget spent while scoring the test split ({exc}); nothing registered"}
    comparison = paired_bootstrap(seed_test.scores, best_test.scores, confidence=search.confidence, seed=search.seed)
    exact = mcnemar(seed_test.scores, best_test.scores)
    record_test(run_id, best_run_id, seed_test, best_test, comparison, exact, best_validation.accuracy)
    decision = decide_on_test(comparison)
    outcome = {"decision": decision.reason, "test": comparison, "mcnemar": exact}
    if decision.register:
        tags = version_tags(parent_version=seed.version, optimizer=optimizer_name, dataset=data.card.name,
                            dataset_digest=data.digest, seed=search.seed, parent_run_id=run_id,
                            candidate_run_id=best_run_id, comparison=comparison)
        version, created = register_version(seed, best, tags, commit_message(optimizer_name, data.card.name,
                                                                                comparison))
        record_evidence(run_id, evidence(seed.name, seed.version, version, data, comparison))
        outcome |= {"version": version, "decision": registered_reason(seed.name, version, created, decision)}
    outcome["report"] = {
        "title": f"Optimization of {seed.name} version {seed.version} on {data.card.name}",
        "seed_template": seed.template, "best_template": best.template, "comparison": comparison, "test": exact,
        "baseline": seed_test, "best": best_test, "best_format": best.generation.response_format}
    return outcome


if __name__ == "__main__":
    optimize_prompt(prompt="intent@production", dataset="intent_recognition")
