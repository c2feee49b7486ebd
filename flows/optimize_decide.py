"""The decision steps of the optimize flow: choose on validation, test the choice, register, record.

The decisions themselves are pure functions of `promptyard.optimization`; this module runs them on
the flow's results and calls the tasks that score the test split, register the winner and write
the parent run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import runtime

from flows.optimize_record import record_result, record_test
from flows.optimize_tasks import (
    LMSpec,
    Proposal,
    objectives_of,
    record_evidence,
    register_version,
    score_pair,
    score_pair_on,
)
from optimizers import Candidate
from promptyard.errors import BudgetExhausted, EndpointUnreachableError, TooManyErrorsError
from promptyard.evaluation import (
    LoadedDataset,
    against_reference,
    mcnemar,
    paired_bootstrap,
    paired_scores,
    pareto_front,
)
from promptyard.optimization import (
    BudgetPlan,
    CandidateSummary,
    Contender,
    OptimizationResult,
    OtherModel,
    Portability,
    ProposerUsage,
    SearchOptions,
    SeedPrompt,
    SelectionOptions,
    choose_winner,
    commit_message,
    decide_on_test,
    evidence,
    reference_notes,
    registered_reason,
    version_tags,
)
from promptyard.registry import template_text
from promptyard.runtime import Budget, Endpoint, get_settings

__all__ = ["RunContext", "conclude", "test_and_register", "summaries", "proposer_usage"]


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
    also_on: tuple[OtherModel, ...] = ()  # other models to re-score the seed and the winner on

    def reference(self, rows: list[dict], scores: list[list[float | None]]):
        """Reference points on `rows` and each score list tested against the majority label."""
        return against_reference(self.data.card, self.data.rows("train"), rows, self.data.card.make_metric(), scores,
                                 alpha=1 - self.search.confidence)


def conclude(run: RunContext, baseline, scored: list[tuple], proposal: Proposal, stops: list[str]) -> OptimizationResult:
    """Choose on validation, take the choice to the test split, record the decision on the parent run."""
    settings, meter, proposer = get_settings(), run.meter, proposer_usage(run.lm)
    ranked = [(i, c, r, rid) for i, (c, r, rid, _) in enumerate(scored, 1) if r is not None]  # failed: not ranked
    objectives = [objectives_of(r) for _, _, r, _ in ranked]
    reserve = run.plan.test_reserve
    contenders = [Contender(template_text(c.template), c.generation.response_format !=
                            run.seed.generation.response_format, r.accuracy, r.scores) for _, c, r, _ in ranked]
    verdict, tie = choose_winner(baseline.accuracy, objectives, contenders, run.selection,
                                 template_text(run.seed.template),
                                 proposed=len(proposal.candidates), budget_stopped=bool(stops), alpha=1 - run.search.confidence,
                                 seed=run.search.seed, test_affordable=meter.can_afford(
                                     reserve["calls"], tokens=reserve["tokens"], seconds=reserve["seconds"]))
    choice = tie.renumbered([i for i, *_ in ranked]) if tie else None
    outcome = {"decision": verdict.reason}
    if verdict.goes_to_test:
        _, best, best_result, best_run = ranked[verdict.best]
        outcome = test_and_register(run, best, best_result, best_run)
        outcome["portability"] = [elsewhere(run, best, other, outcome["test"]) for other in run.also_on] \
            if "test" in outcome else []
        if "report" in outcome:
            outcome["report"]["portability"] = [p.describe() for p in outcome["portability"]]
        if "report" in outcome:
            outcome["report"]["choice"] = choice.markdown(
                {i: r.accuracy for i, _, r, _ in ranked}, {i: c.details.get("output_format", "free")
                                                           for i, c, _, _ in ranked})
    reference, _ = run.reference(run.validation, [])
    result = OptimizationResult(
        prompt=run.seed.label, dataset=run.data.card.name, optimizer=run.optimizer,
        baseline_validation=baseline.accuracy,
        decision=outcome["decision"] + (f" (budget: {'; '.join(stops)})" if stops else ""), budget=meter.usage(),
        candidates=summaries(scored), proposer=proposer, cost_usd=settings.cost(
            meter.prompt_tokens, meter.completion_tokens) + (proposer.cost_usd if proposer.own else 0.0),
        duration_s=round(time.perf_counter() - run.started, 1), parent_run_id=run.run_id, mlflow_url=run.run_url,
        flow_run_id=str(runtime.flow_run.id or ""), registered_version=outcome.get("version"),
        best_candidate=ranked[verdict.best][0] if "test" in outcome else None, test=outcome.get("test"),
        mcnemar=outcome.get("mcnemar"), pareto_front=[ranked[i][0] for i in pareto_front(objectives)],
        reference_validation=reference, reference_test=outcome.get("reference"), choice=choice,
        proposals_discarded=proposal.discarded, portability=outcome.get("portability", []),
        versus_majority=outcome.get("versus_majority", []),
        notes=reference_notes(outcome.get("reference"), outcome.get("versus_majority", [])))
    record_result(result, baseline, [(i, r) for i, _, r, _ in ranked], outcome.get("report"))
    return result


def proposer_usage(lm: LMSpec) -> ProposerUsage:
    """What proposing rewrites took, counted apart from the task's calls (and costed at the proposer's prices)."""
    settings, endpoint, spent = get_settings(), Endpoint.proposer_from_settings(), Budget.find(lm.proposer_key)
    return ProposerUsage(endpoint.base_url, endpoint.model, lm.own_proposer, spent.calls, spent.tokens, spent.cached,
                         settings.cost(spent.prompt_tokens, spent.completion_tokens, model=endpoint.model))


def summaries(scored: list[tuple]) -> list[CandidateSummary]:
    rows = []
    for i, (candidate, result, run_id, error) in enumerate(scored, 1):
        cost = objectives_of(result).cost if result else 0.0
        rows.append(CandidateSummary(i, candidate.source, candidate.details.get("output_format", "free"),
                                     candidate.train_score, result.accuracy if result else None, cost,
                                     result.mean_latency_s if result else 0.0, run_id,
                                     errors=result.errors if result else 0, error=error))
    return rows


def elsewhere(run: RunContext, best, other: OtherModel, here) -> Portability:
    """The seed and the winner on another model, on the same test rows: does the gain transfer?"""
    from dspy.utils.exceptions import LMError

    seed = Candidate(run.seed.template, "seed", generation=run.seed.generation)
    try:
        seed_there, best_there, calls = score_pair_on.with_options(task_run_name=f"seed and best on {other.model}")(
            other, seed, best, run.test, run.data.card, run.lm, f"seed and best · {other.model}",
            f"Scoring on {other.label}")
    except (TooManyErrorsError, EndpointUnreachableError, LMError) as exc:
        return Portability(other, here, None, failure=f"{type(exc).__name__}: {str(exc)[:200]}")
    before, after = paired_scores(seed_there, best_there)
    there = paired_bootstrap(before, after, confidence=run.search.confidence, seed=run.search.seed)
    return Portability(other, here, there, errors=seed_there.errors + best_there.errors, calls=calls)


def test_and_register(run: RunContext, best, best_validation, best_run_id) -> dict:
    """Score the seed and the best candidate on the test split, interleaved; register the candidate
    only on a significant gain, a failed request counted against the candidate (`paired_scores`). Returns the
    decision and what it rests on."""
    seed, data, search = run.seed, run.data, run.search
    try:
        seed_test, best_test = score_pair.with_options(task_run_name="score seed and best candidate · test")(
            Candidate(seed.template, "seed", generation=seed.generation), best, run.test, data.card, run.lm,
            "seed and best · test", "The test split")
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
        settings = get_settings()
        record_evidence(run.run_id, evidence(seed.name, seed.version, version, data, comparison,
                                             lm_model=settings.lm_model, lm_base_url=settings.lm_url))
        outcome |= {"version": version, "decision": registered_reason(seed.name, version, created, decision)}
    outcome["report"] = {
        "title": f"Optimization of {seed.name} version {seed.version} on {data.card.name}",
        "seed_template": seed.template, "best_template": best.template, "comparison": comparison, "test": exact,
        "baseline": seed_test, "best": best_test, "best_format": best.generation.response_format,
        "reference": reference, "versus_majority": versus}
    return outcome
