"""Analyse a running A/B experiment: read events → per-version metrics + sequential tests → log to
MLflow (with a plot over time) → promote, roll back, reallocate (Thompson) or keep running.

Safe to schedule as often as you like: the sequential test stays valid under repeated looks, and
with no experiment on the alias the flow reports that and changes nothing.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from promptyard.errors import PermissionDeniedError
from promptyard.governance import Evidence, Governance
from promptyard.registry import Registry
from promptyard.runtime import Tracker, apply_offline_env, get_settings
from promptyard.serving import Analysis, EventStore, Experiment, Experiments, Observation, analyze, plot_over_time

__all__ = ["analyze_experiment"]

RETRY = {"retries": 2, "retry_delay_seconds": [2, 5]}


@task(cache_policy=NO_CACHE, **RETRY)
def load_events(url: str, experiment_id: str) -> tuple[list[Observation], dict[int, int]]:
    store = EventStore(url)
    try:
        return store.observations(experiment_id), store.exposure_counts(experiment_id)
    finally:
        store.close()


@task(cache_policy=NO_CACHE, **RETRY)
def log_analysis(tracking_uri: str, mlflow_experiment: str, experiment: Experiment, analysis: Analysis,
                 observations: list[Observation]) -> tuple[str, str]:
    tracker = Tracker(tracking_uri, mlflow_experiment)
    run_id = tracker.start_run(f"ab {experiment.ref} · {analysis.decision}", tags={
        "promptyard.kind": "ab-analysis", "promptyard.prompt": experiment.prompt,
        "promptyard.ab.experiment": experiment.id, "promptyard.ab.decision": analysis.decision,
    })
    metrics: dict[str, float] = {}
    for summary in analysis.versions:
        prefix = f"v{summary.version}_"
        metrics.update({prefix + "outcomes": summary.outcomes, prefix + "exposures": summary.exposures,
                        prefix + "weight": summary.weight})
        for name in ("mean", "low", "high", "mean_latency_ms", "mean_cost"):
            value = getattr(summary, name)
            if value is not None and value == value and abs(value) != float("inf"):
                metrics[prefix + name] = value
    for version, results in analysis.comparisons.items():
        for metric, result in results.items():
            metrics[f"v{version}_vs_control_{metric}_p_value"] = result["p_value"]
    tracker.log(run_id, metrics=metrics, params={
        "prompt": experiment.ref, "experiment_id": experiment.id, "control": experiment.control,
        "weights": json.dumps({str(k): v for k, v in experiment.weights.items()}), "alpha": experiment.alpha,
        "min_samples": experiment.min_samples, "guardrails": json.dumps(experiment.guardrails),
        "thompson": experiment.thompson, "epoch": experiment.epoch,
    }, tags={"promptyard.ab.reason": analysis.reason})
    if analysis.decision == "promote":  # an online decision is promotion evidence for the winner
        quality = analysis.comparisons[analysis.winner]["value"]
        Governance.from_settings(Registry(tracking_uri)).record_evidence(run_id, Evidence(
            prompt=experiment.prompt, baseline=experiment.control, candidate=analysis.winner, split="online",
            dataset=f"online:{experiment.id}", dataset_digest=None, metric="outcome",
            n=min(quality["n_control"], quality["n_treatment"]), confidence=1 - quality["alpha"],
            diff=quality["diff"], low=quality["low"], high=quality["high"]))
    tracker.log_text(run_id, json.dumps(analysis.as_dict(), indent=2, default=float), "analysis.json")
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_over_time(experiment, observations, Path(tmp) / "metric_over_time.png")
        tracker.log_artifact(run_id, str(png))
    tracker.finish(run_id)
    return run_id, tracker.run_url(run_id)


@task(cache_policy=NO_CACHE, **RETRY)
def apply_decision(tracking_uri: str, experiment: Experiment, analysis: Analysis, run_id: str) -> dict[str, Any]:
    experiments = Experiments(Registry(tracking_uri))
    if analysis.decided:
        try:
            return experiments.stop(experiment.ref, decision=analysis.decision, winner=analysis.winner,
                                    reason=analysis.reason, analysis_run_id=run_id)
        except PermissionDeniedError as refused:  # the alias is protected and a check failed: keep the control
            return experiments.stop(experiment.ref, decision="promotion-refused", reason=(
                f"{analysis.reason}; promotion of v{analysis.winner} refused: {refused} Evidence: run {run_id}."),
                analysis_run_id=run_id)
    if analysis.new_weights:
        updated = experiment.with_weights(analysis.new_weights)
        experiments.update(updated)
        return {"decision": "reallocate", "weights": updated.weights, "epoch": updated.epoch}
    return {"decision": "continue"}


@flow(name="ab-analysis", log_prints=True)
def analyze_experiment(prompt: str, apply: bool = True) -> dict[str, Any]:
    """Analyse the experiment running on `prompt` (NAME@ALIAS); with `apply`, act on the decision.

    Args:
        prompt: The alias under test, NAME@ALIAS (e.g. support@production).
        apply: Promote, roll back or reallocate as decided; false only analyses and logs.
    """
    apply_offline_env()
    logger = get_run_logger()
    settings = get_settings()
    registry = Registry(settings.tracking_uri)
    registry.check()
    experiments = Experiments(registry)
    experiment = experiments.get(prompt)
    if experiment is None:
        logger.info("No experiment runs on %s; nothing to do.", prompt)
        return {"prompt": prompt, "decision": "none", "reason": "no experiment runs on this alias",
                "last": experiments.last_result(prompt)}
    observations, exposures = load_events(settings.events_url, experiment.id)
    analysis = analyze(experiment, observations, exposures)
    logger.info("%s: %s (%s)", experiment.id, analysis.decision, analysis.reason)
    run_id, url = log_analysis(settings.tracking_uri, settings.experiment, experiment, analysis, observations)
    action = apply_decision(settings.tracking_uri, experiment, analysis, run_id) if apply else {"decision": "dry-run"}
    return {"prompt": prompt, "experiment": experiment.id, **analysis.as_dict(), "applied": action,
            "run_id": run_id, "mlflow_url": url}
