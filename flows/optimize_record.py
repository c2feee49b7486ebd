"""What the optimize flow writes about itself: the parent MLflow run and the Prefect artifacts."""

from __future__ import annotations

import os
import socket

from prefect import runtime, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.optimize_tasks import RETRY, objectives_of
from promptyard.evaluation import (
    ConstantTest,
    LoadedDataset,
    McNemar,
    PairedComparison,
    ReferencePoints,
    ScoreResult,
    optimization_report,
)
from promptyard.evaluation import pareto_plot
from promptyard.optimization import OptimizationResult, SearchOptions, SeedPrompt
from promptyard.registry import template_text
from promptyard.runtime import Endpoint, Tracker, get_settings

__all__ = ["open_parent_run", "log_scores", "record_test", "record_result"]


def _tracker() -> Tracker:
    settings = get_settings()
    return Tracker(settings.tracking_uri, settings.experiment)


@task(cache_policy=NO_CACHE, task_run_name="open the MLflow run", **RETRY)
def open_parent_run(seed: SeedPrompt, data: LoadedDataset, optimizer: str, optimizer_params: dict,
                    search: SearchOptions, request_key: str) -> tuple[str, str]:
    """(run id, URL) of the parent run: the seed, the dataset inputs, the optimizer and its settings.
    An earlier attempt at the same optimization whose process is gone is marked failed."""
    tracker = _tracker()
    run_id = tracker.start_run(f"optimize {seed.name}/v{seed.version} on {data.card.name}", tags={
        "promptyard.prompt": seed.name, "promptyard.request_key": request_key, "promptyard.host": socket.gethostname(),
        "promptyard.pid": str(os.getpid())})
    for stale in tracker.search_runs(f"tags.`promptyard.request_key` = '{request_key}' and "
                                     "attributes.status = 'RUNNING'", max_results=20):
        if stale.info.run_id != run_id and "mlflow.parentRunId" not in stale.data.tags and _gone(stale):
            _close_attempt(tracker, stale, run_id)
    tracker.log(run_id, params={
        "prompt": seed.name, "parent_version": seed.version, "seed_template": template_text(seed.template), "optimizer": optimizer,
        "seed": search.seed, "confidence": search.confidence, **Endpoint.from_settings().describe(),
        **{f"proposer_{k.removeprefix('lm_')}": v for k, v in Endpoint.proposer_from_settings().describe().items()},
        **{f"optimizer.{k}": v for k, v in optimizer_params.items()},
    }, tags={"promptyard.flow_run_id": str(runtime.flow_run.id or "")})
    tracker.log_dataset(run_id, data)
    return run_id, tracker.run_url(run_id)


def _gone(run) -> bool:
    """Whether the process that ran `run` has ended (only knowable on the same host)."""
    tags = run.data.tags
    if tags.get("promptyard.host") != socket.gethostname() or not tags.get("promptyard.pid", "").isdigit():
        return False
    try:
        os.kill(int(tags["promptyard.pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _close_attempt(tracker: Tracker, run, resumed_by: str) -> None:
    """An attempt killed before it finished: its MLflow run failed, its Prefect flow run crashed."""
    tracker.finish(run.info.run_id, False, reason=f"its process ended before the run finished (killed?); resumed by "
                                                  f"run {resumed_by}")
    flow_run = run.data.tags.get("promptyard.flow_run_id")
    if flow_run:
        try:
            from prefect.client.orchestration import get_client
            from prefect.states import Crashed

            with get_client(sync_client=True) as client:
                client.set_flow_run_state(flow_run, Crashed(message=f"process gone; resumed by MLflow run {resumed_by}"),
                                          force=True)
        except Exception:  # the MLflow run is what people read; Prefect's state is a courtesy
            pass


@task(cache_policy=NO_CACHE, task_run_name="log {split}", **RETRY)
def log_scores(run_id: str, result: ScoreResult, split: str) -> None:
    _tracker().log_score(run_id, result, split=split)


@task(cache_policy=NO_CACHE, task_run_name="log the test split", **RETRY)
def record_test(run_id: str, best_run_id: str, baseline: ScoreResult, best: ScoreResult,
                comparison: PairedComparison, exact: McNemar, best_validation: float,
                reference: ReferencePoints | None = None, versus: list[ConstantTest] | None = None) -> None:
    tracker = _tracker()
    tracker.log_score(run_id, baseline, split="baseline_test")
    tracker.log_score(best_run_id, best, split="test")
    references = {}
    if reference is not None:
        references = {"test_majority_label_accuracy": reference.majority, "test_random_accuracy": reference.random,
                      **{f"test_{who}_vs_majority_p": t.p_value for who, t in zip(("seed", "best"), versus or [])}}
    tracker.log(run_id, metrics={**comparison.as_metrics(), "best_validation": best_validation,
                                 "test_fixed": exact.fixed, "test_broken": exact.broken,
                                 "test_mcnemar_p": exact.p_value, **references},
                params={"majority_label": reference.majority_label} if reference is not None else None,
                tags={"promptyard.best_candidate_run_id": best_run_id})


@task(cache_policy=NO_CACHE, task_run_name="record the decision", **RETRY)
def record_result(result: OptimizationResult, baseline: ScoreResult, scored: list[tuple[int, ScoreResult]],
                  report: dict | None) -> None:
    """Decision, usage and plot on the parent run; the report; the winner linked to the run; a
    table of the candidates on the Prefect flow run."""
    tracker = _tracker()
    run_id = result.parent_run_id
    if scored:
        points = [objectives_of(r) for _, r in scored]
        chosen = next((k for k, (i, _) in enumerate(scored) if i == result.best_candidate), None)
        figure = pareto_plot(points, [f"c{i}" for i, _ in scored], baseline=objectives_of(baseline),
                             chosen=chosen, title=f"{result.prompt}: candidates on validation ({result.dataset})")
        tracker.log_figure(run_id, figure, "pareto.png")
        tracker.log(run_id, metrics={"pareto_front_size": len(result.pareto_front)})
    b = result.budget
    validation = result.reference_validation
    tracker.log(run_id, tags={"promptyard.decision": result.decision,
                              **({"promptyard.notes": " | ".join(result.notes)} if result.notes else {})},
                metrics={**({"validation_majority_label_accuracy": validation.majority,
                             "validation_random_accuracy": validation.random} if validation else {}),
                         "lm_calls": b.calls, "lm_tokens": b.tokens, "lm_calls_cached": b.cached,
                         "lm_cost_usd": result.cost_usd, "run_seconds": b.seconds,
                         "candidates_proposed": len(result.candidates),
                         "proposals_discarded": result.proposals_discarded,
                         **({"proposer_calls": result.proposer.calls, "proposer_tokens": result.proposer.tokens,
                             "proposer_calls_cached": result.proposer.cached,
                             "proposer_cost_usd": result.proposer.cost_usd} if result.proposer else {}),
                         **({"registered_version": result.registered_version} if result.registered_version else {})})
    for i, p in enumerate(result.portability, 1):  # the seed and the winner on other models (--also-on)
        tracker.log(run_id, params={f"also_on_{i}": p.other.label}, metrics={
            f"also_on_{i}_calls": p.calls, f"also_on_{i}_errors": p.errors,
            **({f"also_on_{i}_seed": p.there.baseline, f"also_on_{i}_winner": p.there.candidate,
                f"also_on_{i}_diff": p.there.diff, f"also_on_{i}_diff_low": p.there.low,
                f"also_on_{i}_diff_high": p.there.high} if p.there else {})})
    if report is not None:
        tracker.log_text(run_id, optimization_report(**report, decision=result.decision), "report.md")
    if result.registered_version is not None:
        tracker.link_prompt_version(run_id, result.prompt.split("/")[0], result.registered_version)
    create_table_artifact(
        key="candidates", description=f"Candidates of {result.prompt} on {result.dataset}: {result.decision}",
        table=[{"candidate": c.index, "source": c.source, "output format": c.output_format,
                "train": c.train_score, "validation": None if c.failed else round(c.validation, 4),
                "errors": c.errors, "failed": c.error, "latency s": round(c.mean_latency_s, 3),
                "cost per example": c.cost_per_example, "MLflow run": c.run_id} for c in result.candidates])
