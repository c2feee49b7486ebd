"""What the optimize flow writes about itself: the parent MLflow run and the Prefect artifacts."""

from __future__ import annotations

from prefect import runtime, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.optimize_tasks import RETRY, objectives_of
from promptyard.evaluation import LoadedDataset, McNemar, PairedComparison, ScoreResult, optimization_report
from promptyard.evaluation import pareto_plot
from promptyard.optimization import OptimizationResult, SearchOptions, SeedPrompt
from promptyard.runtime import Endpoint, Tracker, get_settings

__all__ = ["open_parent_run", "log_scores", "record_test", "record_result"]


def _tracker() -> Tracker:
    settings = get_settings()
    return Tracker(settings.tracking_uri, settings.experiment)


@task(cache_policy=NO_CACHE, task_run_name="open the MLflow run", **RETRY)
def open_parent_run(seed: SeedPrompt, data: LoadedDataset, optimizer: str, optimizer_params: dict,
                    search: SearchOptions) -> tuple[str, str]:
    """(run id, URL) of the parent run: the seed, the dataset inputs, the optimizer and its settings."""
    tracker = _tracker()
    run_id = tracker.start_run(f"optimize {seed.name}/v{seed.version} on {data.card.name}",
                               tags={"promptyard.prompt": seed.name})
    tracker.log(run_id, params={
        "prompt": seed.name, "parent_version": seed.version, "seed_template": seed.template, "optimizer": optimizer,
        "seed": search.seed, "confidence": search.confidence, **Endpoint.from_settings().describe(),
        **{f"optimizer.{k}": v for k, v in optimizer_params.items()},
    }, tags={"promptyard.flow_run_id": str(runtime.flow_run.id or "")})
    tracker.log_dataset(run_id, data)
    return run_id, tracker.run_url(run_id)


@task(cache_policy=NO_CACHE, task_run_name="log {split}", **RETRY)
def log_scores(run_id: str, result: ScoreResult, split: str) -> None:
    _tracker().log_score(run_id, result, split=split)


@task(cache_policy=NO_CACHE, task_run_name="log the test split", **RETRY)
def record_test(run_id: str, best_run_id: str, baseline: ScoreResult, best: ScoreResult,
                comparison: PairedComparison, exact: McNemar, best_validation: float) -> None:
    tracker = _tracker()
    tracker.log_score(run_id, baseline, split="baseline_test")
    tracker.log_score(best_run_id, best, split="test")
    tracker.log(run_id, metrics={**comparison.as_metrics(), "best_validation": best_validation,
                                 "test_fixed": exact.fixed, "test_broken": exact.broken,
                                 "test_mcnemar_p": exact.p_value},
                tags={"promptyard.best_candidate_run_id": best_run_id})


@task(cache_policy=NO_CACHE, task_run_name="record the decision", **RETRY)
def record_result(result: OptimizationResult, baseline: ScoreResult, scored: list[ScoreResult],
                  report: dict | None) -> None:
    """Decision, usage and plot on the parent run; the report; the winner linked to the run; a
    table of the candidates on the Prefect flow run."""
    tracker = _tracker()
    run_id = result.parent_run_id
    if scored:
        points = [objectives_of(r) for r in scored]
        chosen = result.best_candidate - 1 if result.best_candidate else None
        figure = pareto_plot(points, [f"c{i}" for i in range(1, len(points) + 1)], baseline=objectives_of(baseline),
                             chosen=chosen, title=f"{result.prompt}: candidates on validation ({result.dataset})")
        tracker.log_figure(run_id, figure, "pareto.png")
        tracker.log(run_id, metrics={"pareto_front_size": len(result.pareto_front)})
    b = result.budget
    tracker.log(run_id, tags={"promptyard.decision": result.decision},
                metrics={"lm_calls": b.calls, "lm_tokens": b.tokens, "lm_calls_cached": b.cached,
                         "lm_cost_usd": result.cost_usd, "run_seconds": b.seconds,
                         "candidates_proposed": len(result.candidates),
                         **({"registered_version": result.registered_version} if result.registered_version else {})})
    if report is not None:
        tracker.log_text(run_id, optimization_report(**report, decision=result.decision), "report.md")
    if result.registered_version is not None:
        tracker.link_prompt_version(run_id, result.prompt.split("/")[0], result.registered_version)
    create_table_artifact(
        key="candidates", description=f"Candidates of {result.prompt} on {result.dataset}: {result.decision}",
        table=[{"candidate": c.index, "source": c.source, "output format": c.output_format,
                "train": c.train_score, "validation": round(c.validation, 4), "latency s": round(c.mean_latency_s, 3),
                "cost per example": c.cost_per_example, "MLflow run": c.run_id} for c in result.candidates])
