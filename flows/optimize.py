"""Optimize a prompt: load → baseline → candidates → score → log → gate on test → register."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger, runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from optimizers import Candidate, OptimizationTask, Optimizer, get_optimizer
from promptyard.budget import Budget, BudgetExhausted
from promptyard.data import LoadedDataset, load_dataset
from promptyard.errors import UserError
from promptyard.governance import Governance, evidence_tags
from promptyard.lm import Endpoint, GenerationConfig, check_endpoint, make_lm
from promptyard.progress import scoring_progress
from promptyard.registry import Registry
from promptyard.scoring import ScoreResult, score_template
from promptyard.selection import Objectives, pareto_front, pareto_plot, select
from promptyard.settings import get_settings
from promptyard.report import optimization_report
from promptyard.stats import mcnemar, paired_bootstrap
from promptyard.templates import Template
from promptyard.tracking import Tracker

__all__ = ["optimize_prompt"]

CANDIDATE_ALIAS = "candidate"


def _retry_service_errors(task, task_run, state) -> bool:
    """Retry transient failures, never a mistake in the input or a spent budget."""
    try:
        state.result()
    except (UserError, BudgetExhausted):
        return False
    except Exception:
        return True
    return False


RETRY = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": _retry_service_errors}


@dataclass
class Seed:
    name: str
    version: int
    template: Template
    generation: GenerationConfig


@task(cache_policy=NO_CACHE, **RETRY)
def load_prompt_version(registry: Registry, ref: str) -> Seed:
    version = registry.get(ref)
    return Seed(version.name, int(version.version), Template.parse(registry.template_text(version)),
                registry.generation(version))


@task(cache_policy=NO_CACHE)
def load_data(dataset: str, cache_dir: str) -> LoadedDataset:
    return load_dataset(dataset, cache_dir=cache_dir)


@task(cache_policy=NO_CACHE, **RETRY)
def score(template: str, rows: list[dict], data: LoadedDataset, lm, generation: GenerationConfig,
          concurrency: int, label: str) -> ScoreResult:
    metric = data.metric()
    with scoring_progress(label, len(rows)) as advance:
        return score_template(template, rows, lm=lm, metric=metric, input_fields=data.card.input_fields,
                              label_field=data.card.label_field, generation=generation,
                              concurrency=concurrency, on_example=advance)


@task(cache_policy=NO_CACHE)
def propose(optimizer: Optimizer, opt_task: OptimizationTask, task_lm, proposer_lm) -> list[Candidate]:
    return optimizer.propose(opt_task, task_lm=task_lm, proposer_lm=proposer_lm)


def log_candidate(tracker: Tracker, parent_id: str, index: int, candidate: Candidate, result: ScoreResult,
                  seed: Seed, optimizer_params: dict, cost_per_example: float) -> str:
    run_id = tracker.start_run(f"candidate-{index}", parent_id=parent_id)
    tracker.log(
        run_id,
        params={"template": candidate.template, "optimizer": candidate.source,
                "output_format": candidate.details.get("output_format", "free"),
                "response_format": candidate.generation.response_format,
                "parent_prompt": seed.name, "parent_version": seed.version,
                **{f"optimizer.{k}": v for k, v in optimizer_params.items()}},
        metrics={"validation_cost_per_example": cost_per_example,
                 **({"train_score": candidate.train_score} if candidate.train_score is not None else {})},
    )
    tracker.log_score(run_id, result, split="validation")
    tracker.log_text(run_id, candidate.template, "template.txt")
    tracker.finish(run_id)
    return run_id


@task(cache_policy=NO_CACHE, **RETRY)
def evaluate_candidate(index: int, candidate: Candidate, rows: list[dict], data: LoadedDataset, lm, concurrency: int,
                       tracker: Tracker, parent_id: str, seed: Seed, optimizer_params: dict,
                       settings) -> tuple[ScoreResult, str]:
    """Score one candidate on validation and log it as a child run (while others are still scoring)."""
    result = score.fn(candidate.template, rows, data, lm, candidate.generation, concurrency,
                      f"candidate {index} · validation")
    run_id = log_candidate(tracker, parent_id, index, candidate, result, seed, optimizer_params,
                           objectives_of(result, settings).cost)
    return result, run_id


@task(cache_policy=NO_CACHE, **RETRY)
def register_version(governance: Governance, seed: Seed, candidate: Candidate, tags: dict,
                     message: str) -> tuple[int, bool]:
    """Register the candidate (or find the identical version already there) and move `candidate`."""
    existing = governance.registry.find_version(seed.name, candidate.template, candidate.generation)
    if existing is None:
        existing = governance.register(seed.name, candidate.template, commit_message=message, tags=tags,
                                       generation=candidate.generation)
        created = True
    else:
        created = False
    governance.set_alias(seed.name, CANDIDATE_ALIAS, int(existing.version), reason=message)
    return int(existing.version), created


def objectives_of(result: ScoreResult, settings) -> Objectives:
    cost = settings.cost(result.prompt_tokens, result.completion_tokens)
    return Objectives(result.accuracy, cost / max(1, len(result.examples)), result.mean_latency_s)


@flow(name="optimize-prompt", task_runner=ThreadPoolTaskRunner(max_workers=2))
def optimize_prompt(
    prompt: str,
    dataset: str,
    optimizer: str = "copro",
    optimizer_settings: dict[str, Any] | None = None,
    max_candidates: int = 4,
    seed: int = 0,
    limit_train: int | None = None,
    limit_validation: int | None = None,
    limit_test: int | None = None,
    confidence: float = 0.95,
    selection: str = "quality",
    max_cost_per_example: float | None = None,
    max_latency_s: float | None = None,
    selection_weights: dict[str, float] | None = None,
    budget_calls: int | None = None,
    budget_tokens: int | None = None,
    budget_seconds: float | None = None,
) -> dict[str, Any]:
    """Optimize PROMPT (name, name/version or name@alias) on DATASET; register the best only if it
    beats the seed on the test split (paired bootstrap interval above 0). The best is chosen on
    validation by `selection` ("quality" within the cost/latency budgets, or "weighted").
    `budget_*` cap the LM calls, tokens and seconds of the whole run: when spent, the search stops,
    the candidates found so far are kept, and the calls the test split needs are held back."""
    started = time.perf_counter()
    budget = Budget(budget_calls, budget_tokens, budget_seconds)  # a limit ≤ 0 fails here
    logger = get_run_logger()
    settings = get_settings()
    if max_candidates < 1:
        raise UserError(f"max_candidates must be at least 1, got {max_candidates}.")
    registry = Registry(settings.tracking_uri)
    registry.check()
    endpoint = Endpoint.from_settings(settings)
    # an unknown optimizer or setting fails here, before any work
    opt = get_optimizer(optimizer, **{**(optimizer_settings or {}), "max_candidates": max_candidates})
    select([], policy=selection, weights=selection_weights)  # an unknown policy fails before any work

    seed_prompt = load_prompt_version(registry, prompt)
    governance = Governance.from_settings(registry, settings=settings)
    governance.require("editor", seed_prompt.name, "register optimized versions")
    data = load_data(dataset, str(settings.home_dir / "hf_cache"))
    data.check_template(seed_prompt.template.text)
    check_endpoint(endpoint)

    task_lm = make_lm(endpoint, cache=settings.lm_cache, budget=budget, **seed_prompt.generation.request_kwargs())
    proposer_lm = make_lm(endpoint, cache=settings.lm_cache, budget=budget, max_tokens=256)
    per_candidate = max(1, settings.lm_concurrency // 2)
    validation = data.rows("validation", limit_validation)
    test = data.rows("test", limit_test)
    needed = 2 * len(validation) + 2 * len(test)
    if budget.max_calls is not None and budget.max_calls < needed:
        raise UserError(f"budget_calls={budget.max_calls} cannot cover one candidate: the baseline and one candidate "
                        f"on validation ({len(validation)} each) and both on test ({len(test)} each) take {needed} "
                        "calls. Raise the budget, or lower --limit-validation / --limit-test.")
    # held back while the optimizer searches: validation for up to two candidates, and the test split
    spare = (budget.max_calls or 0) - 2 * len(test) - len(validation)
    budget.reserve(2 * len(test) + len(validation) * max(1, min(2, spare // max(1, len(validation)))))

    tracker = Tracker(settings.tracking_uri, settings.experiment)
    parent_id = tracker.start_run(f"optimize {seed_prompt.name}/v{seed_prompt.version} on {data.card.name}",
                                  tags={"promptyard.prompt": seed_prompt.name})
    ok = False
    try:
        optimizer_params = opt.get_params()
        tracker.log(parent_id, params={
            "prompt": seed_prompt.name, "parent_version": seed_prompt.version, "seed_template": seed_prompt.template.text,
            "optimizer": optimizer, "seed": seed, "confidence": confidence, "max_candidates": max_candidates,
            **endpoint.describe(), **{f"optimizer.{k}": v for k, v in optimizer_params.items()},
        }, tags={"promptyard.flow_run_id": str(runtime.flow_run.id or "")})
        tracker.log_dataset(parent_id, data)

        baseline_val = score(seed_prompt.template.text, validation, data, task_lm, seed_prompt.generation,
                             settings.lm_concurrency, "baseline · validation")
        tracker.log_score(parent_id, baseline_val, split="baseline_validation")
        logger.info("Baseline on validation: %.3f", baseline_val.accuracy)

        opt_task = OptimizationTask(
            seed=seed_prompt.template, trainset=data.rows("train", limit_train),
            input_fields=data.card.input_fields, label_field=data.card.label_field,
            metric=data.metric(), generation=seed_prompt.generation,
            labels=data.card.labels, proposer_style="plain" if settings.plain_proposer else "standard", random_seed=seed,
            budget=budget,
        )
        candidates = propose(opt, opt_task, task_lm, proposer_lm)
        logger.info("%s proposed %d candidate(s)", optimizer, len(candidates))
        stops = [opt.stopped] if opt.stopped else []
        budget.reserve(2 * len(test))  # candidates may now use what the search left, never the test split's share
        if budget.max_calls is not None and validation:
            affordable = max(0, (budget.max_calls - budget.reserved - budget.calls) // len(validation))
            if affordable < len(candidates):
                stops.append(f"the budget scores {affordable} of {len(candidates)} candidates on validation")
                candidates = candidates[:affordable]
        for note in stops:
            logger.warning(note)
        tracker.log(parent_id, metrics={"candidates_proposed": len(candidates)})

        futures = [evaluate_candidate.submit(i, c, validation, data, task_lm, per_candidate, tracker, parent_id,
                                             seed_prompt, optimizer_params, settings)
                   for i, c in enumerate(candidates, 1)]
        scored = []
        for candidate, future in zip(candidates, futures, strict=True):
            try:
                scored.append((candidate, *future.result()))
            except BudgetExhausted as exc:
                stops.append(f"candidate dropped, {exc}")
        candidates = [c for c, _, _ in scored]
        results, child_ids = [r for _, r, _ in scored], [i for _, _, i in scored]
        objectives = [objectives_of(r, settings) for r in results]

        summary: dict[str, Any] = {
            "prompt": f"{seed_prompt.name}/{seed_prompt.version}", "dataset": data.card.name, "optimizer": optimizer,
            "baseline_validation": baseline_val.accuracy,
            "candidates": [{"index": i, "train_score": c.train_score, "validation": r.accuracy, "run_id": rid}
                           for i, (c, r, rid) in enumerate(zip(candidates, results, child_ids, strict=True), 1)],
            "registered_version": None, "parent_run_id": parent_id, "mlflow_url": tracker.run_url(parent_id),
            "flow_run_id": str(runtime.flow_run.id or ""),
        }
        budget.release()
        best_index = select(objectives, policy=selection, max_cost=max_cost_per_example, max_latency_s=max_latency_s,
                            weights=selection_weights)
        front = pareto_front(objectives)
        summary["pareto_front"] = [i + 1 for i in front]
        if objectives:
            figure = pareto_plot(objectives, [f"c{i}" for i in range(1, len(objectives) + 1)],
                                 baseline=objectives_of(baseline_val, settings), chosen=best_index,
                                 title=f"{seed_prompt.name}: candidates on validation ({data.card.name})")
            tracker.client.log_figure(parent_id, figure, "pareto.png")
            tracker.log(parent_id, metrics={"pareto_front_size": len(front)})
        if best_index is None and stops and not results:
            summary["decision"] = "the budget left no calls to score a candidate on validation; nothing registered"
        elif best_index is None:
            summary["decision"] = ("the optimizer returned no candidate (none of its proposals survived its own search); "
                                   "nothing registered" if not candidates else
                                   "no candidate fits the cost/latency budgets; nothing registered")
        elif results[best_index].accuracy <= baseline_val.accuracy:
            summary["decision"] = (f"no version registered: no candidate beat the seed on validation (best "
                                   f"{results[best_index].accuracy:.3f} vs {baseline_val.accuracy:.3f}); the test "
                                   "split was left untouched")
            best_index = None
        elif not budget.can_afford(2 * len(test)):
            summary["decision"] = "budget spent before the test split could be scored; nothing registered"
            best_index = None
        else:
            best, best_val = candidates[best_index], results[best_index]
            try:
                baseline_test = score(seed_prompt.template.text, test, data, task_lm, seed_prompt.generation,
                                      settings.lm_concurrency, "baseline · test")
                best_test = score(best.template, test, data, task_lm, best.generation, settings.lm_concurrency,
                                  f"candidate {best_index + 1} · test")
            except BudgetExhausted as exc:
                summary["decision"] = f"budget spent while scoring the test split ({exc}); nothing registered"
                best_index = None
            else:
                tracker.log_score(parent_id, baseline_test, split="baseline_test")
                tracker.log_score(child_ids[best_index], best_test, split="test")
                comparison = paired_bootstrap(baseline_test.scores, best_test.scores, confidence=confidence, seed=seed)
                exact = mcnemar(baseline_test.scores, best_test.scores)
                tracker.log(parent_id, metrics={**comparison.as_metrics(), "best_validation": best_val.accuracy,
                                                "test_fixed": exact.fixed, "test_broken": exact.broken,
                                                "test_mcnemar_p": exact.p_value},
                            tags={"promptyard.best_candidate_run_id": child_ids[best_index]})
                summary.update(best_candidate=best_index + 1, test=comparison.__dict__)
                ci = f"{confidence:.0%} interval [{comparison.low:+.3f}, {comparison.high:+.3f}]"
                if comparison.significant_gain:
                    tags = {
                        "promptyard.parent_version": seed_prompt.version, "promptyard.optimizer": optimizer,
                        "promptyard.dataset": data.card.name, "promptyard.dataset_digest": data.digest,
                        "promptyard.seed": seed, "promptyard.parent_run_id": parent_id,
                        "promptyard.candidate_run_id": child_ids[best_index],
                        "promptyard.test_baseline": f"{comparison.baseline:.4f}",
                        "promptyard.test_score": f"{comparison.candidate:.4f}",
                        "promptyard.test_diff_low": f"{comparison.low:.4f}",
                    }
                    message = (f"{optimizer} on {data.card.name}: test {comparison.baseline:.3f} -> "
                               f"{comparison.candidate:.3f} ({ci})")
                    new_version, created = register_version(governance, seed_prompt, best, tags, message)
                    summary["registered_version"] = new_version
                    tracker.log(parent_id, tags=evidence_tags(seed_prompt.name, seed_prompt.version, new_version,
                                                              data.card.name, "test"),
                                metrics={"evidence_diff": comparison.diff, "evidence_diff_low": comparison.low})
                    verb = "registered" if created else "found the same template already registered as"
                    summary["decision"] = (f"{verb} {seed_prompt.name} version {new_version} and moved alias "
                                           f"'{CANDIDATE_ALIAS}' to it: test {comparison.baseline:.3f} -> "
                                           f"{comparison.candidate:.3f}, {ci}")
                    tracker.log(parent_id, metrics={"registered_version": new_version})
                else:
                    summary["decision"] = (f"no version registered: the best candidate scored {comparison.candidate:.3f} "
                                           f"vs baseline {comparison.baseline:.3f} on test, {ci} does not lie above 0")
        if stops:
            summary["decision"] += f" (budget: {'; '.join(stops)})"
        summary["budget"] = budget.summary()
        summary["cost_usd"] = settings.cost(budget.prompt_tokens, budget.completion_tokens)
        tracker.log(parent_id, tags={"promptyard.decision": summary["decision"]},
                    metrics={"lm_calls": budget.calls, "lm_tokens": budget.tokens, "lm_calls_cached": budget.cached,
                             "lm_cost_usd": summary["cost_usd"], "run_seconds": budget.elapsed})
        if best_index is not None:
            tracker.log_text(parent_id, optimization_report(
                title=f"Optimization of {seed_prompt.name} version {seed_prompt.version} on {data.card.name}",
                seed_template=seed_prompt.template.text, best_template=best.template, comparison=comparison,
                test=exact, baseline=baseline_test, best=best_test, decision=summary["decision"],
                best_format=best.generation.response_format), "report.md")
            summary["mcnemar"] = exact.__dict__
        summary["duration_s"] = round(time.perf_counter() - started, 1)
        logger.info(summary["decision"])
        ok = True
        return summary
    finally:
        tracker.finish(parent_id, ok)


if __name__ == "__main__":
    optimize_prompt(prompt="intent@production", dataset="intent_recognition")
