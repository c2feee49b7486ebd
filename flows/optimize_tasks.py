"""The tasks of the optimize flow. Each takes and returns plain data (dataclasses, rows, settings
models) and opens what it needs (registry, tracker, LM) inside, so tasks pickle and can run in any
worker of this process; the run's budget is shared by key."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from optimizers import Candidate, OptimizationTask, OptimizerSettings, PluginOptimizer, get_optimizer
from promptyard.errors import BudgetExhausted, UserError
from promptyard.evaluation import DatasetCard, LoadedDataset, Objectives, ScoreResult, load_dataset, score_template
from promptyard.governance import Evidence, Governance
from promptyard.optimization import CANDIDATE_ALIAS, SeedPrompt
from promptyard.registry import GenerationConfig, Registry
from promptyard.runtime import Budget, Endpoint, Tracker, get_settings, make_lm, scoring_progress

__all__ = ["LMSpec", "Proposal", "load_seed", "load_data", "score", "propose", "evaluate_candidate",
           "register_version", "record_evidence", "objectives_of"]


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


@dataclass(frozen=True)
class LMSpec:
    """How a task reaches the LM: the run's budget (by key), DSPy's cache, concurrent requests."""

    budget_key: str
    cache: bool
    concurrency: int

    def lm(self, **defaults):
        settings = get_settings()
        return make_lm(Endpoint.from_settings(settings), cache=self.cache, budget=Budget.find(self.budget_key),
                       **defaults)


@dataclass(frozen=True)
class Proposal:
    candidates: list[Candidate]
    stopped: str | None  # why the search ended early (a spent budget), if it did


def objectives_of(result: ScoreResult) -> Objectives:
    cost = get_settings().cost(result.prompt_tokens, result.completion_tokens)
    return Objectives(result.accuracy, cost / max(1, len(result.examples)), result.mean_latency_s)


@task(cache_policy=NO_CACHE, task_run_name="load prompt {ref}", **RETRY)
def load_seed(ref: str) -> SeedPrompt:
    """The seed version; only an editor of the prompt may optimize it (nothing is spent otherwise)."""
    registry = Registry(get_settings().tracking_uri)
    version = registry.get(ref)
    Governance.from_settings(registry).require("editor", version.name, "register optimized versions")
    return SeedPrompt(version.name, int(version.version), registry.template_text(version),
                      registry.generation(version))


@task(cache_policy=NO_CACHE, task_run_name="load dataset {dataset}")
def load_data(dataset: str, template: str) -> LoadedDataset:
    data = load_dataset(dataset, cache_dir=get_settings().home_dir / "hf_cache")
    data.check_template(template)
    return data


@task(cache_policy=NO_CACHE, **RETRY)
def score(template: str, generation: GenerationConfig, rows: list[dict], card: DatasetCard, lm: LMSpec,
          label: str) -> ScoreResult:
    """Score a template on rows, `lm.concurrency` requests at a time, with a progress bar."""
    with scoring_progress(label, len(rows)) as advance:
        return score_template(template, rows, lm=lm.lm(**generation.request_kwargs()), metric=card.make_metric(),
                              input_fields=card.input_fields, label_field=card.label_field, generation=generation,
                              concurrency=lm.concurrency, on_example=advance)


@task(cache_policy=NO_CACHE, task_run_name="propose with {settings.name}")
def propose(settings: OptimizerSettings | PluginOptimizer, seed: SeedPrompt, train: list[dict], card: DatasetCard,
            lm: LMSpec, random_seed: int) -> Proposal:
    """The optimizer's candidates; the search runs on the training rows only."""
    from promptyard.registry import Template

    optimizer = get_optimizer(settings)
    budget = Budget.find(lm.budget_key)
    opt_task = OptimizationTask(
        seed=Template.parse(seed.template), trainset=train, input_fields=card.input_fields,
        label_field=card.label_field, metric=card.make_metric(), generation=seed.generation, labels=card.labels,
        proposer_style="plain" if get_settings().plain_proposer else "standard", random_seed=random_seed,
        budget=budget)
    candidates = optimizer.propose(opt_task, task_lm=lm.lm(**seed.generation.request_kwargs()),
                                   proposer_lm=lm.lm(max_tokens=256))
    return Proposal(candidates, optimizer.stopped)


@task(cache_policy=NO_CACHE, **RETRY)
def evaluate_candidate(index: int, candidate: Candidate, rows: list[dict], card: DatasetCard, lm: LMSpec,
                       parent_run_id: str, seed: SeedPrompt, optimizer_params: dict) -> tuple[ScoreResult, str]:
    """Score one candidate on validation and log it as a child run (while others are still scoring)."""
    result = score.fn(candidate.template, candidate.generation, rows, card, lm, f"candidate {index} · validation")
    settings = get_settings()
    tracker = Tracker(settings.tracking_uri, settings.experiment)
    run_id = tracker.start_run(f"candidate-{index}", parent_id=parent_run_id)
    tracker.log(run_id, params={
        "template": candidate.template, "optimizer": candidate.source,
        "output_format": candidate.details.get("output_format", "free"),
        "response_format": candidate.generation.response_format, "parent_prompt": seed.name,
        "parent_version": seed.version, **{f"optimizer.{k}": v for k, v in optimizer_params.items()},
    }, metrics={"validation_cost_per_example": objectives_of(result).cost,
                **({"train_score": candidate.train_score} if candidate.train_score is not None else {})})
    tracker.log_score(run_id, result, split="validation")
    tracker.log_text(run_id, candidate.template, "template.txt")
    tracker.finish(run_id)
    return result, run_id


@task(cache_policy=NO_CACHE, task_run_name="register the winner", **RETRY)
def register_version(seed: SeedPrompt, candidate: Candidate, provenance: dict[str, str],
                     message: str) -> tuple[int, bool]:
    """Register the candidate (or find the identical version already there) and move `candidate`."""
    governance = Governance.from_settings()
    existing = governance.registry.find_version(seed.name, candidate.template, candidate.generation)
    created = existing is None
    if created:
        existing = governance.register(seed.name, candidate.template, commit_message=message, provenance=provenance,
                                       generation=candidate.generation)
    governance.set_alias(seed.name, CANDIDATE_ALIAS, int(existing.version), reason=message)
    return int(existing.version), created


@task(cache_policy=NO_CACHE, task_run_name="record the evidence", **RETRY)
def record_evidence(run_id: str, evidence: Evidence) -> None:
    """The test-split comparison on the parent run, anchored in the audit log: promotion evidence."""
    Governance.from_settings().record_evidence(run_id, evidence)
