"""The tasks of the optimize flow. Each takes and returns plain data (dataclasses, rows, settings
models) and opens what it needs (registry, tracker, LM) inside, so tasks pickle and can run in any
worker of this process; the run's budget is shared by key.

Retries: a task is retried only for a service that is briefly away (MLflow, the endpoint), never
for a bad input, a spent budget or a bug. Resume: with `PROMPTYARD_RESUME` (the default) the
expensive tasks are cached by their inputs (what is scored, on which rows, by which model), so
re-running an optimization after a crash reuses every proposal and score already finished.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass, is_dataclass
from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from optimizers import Candidate, OptimizationTask, OptimizerSettings, PluginOptimizer, get_optimizer
from promptyard.errors import BudgetExhausted, EndpointUnreachableError
from promptyard.evaluation import (
    DatasetCard,
    LoadedDataset,
    Objectives,
    ScoreResult,
    load_dataset,
    refuse_if_errors,
    score_templates,
)
from promptyard.governance import Evidence, Governance
from promptyard.optimization import CANDIDATE_ALIAS, OtherModel, SeedPrompt
from promptyard.registry import GenerationConfig, PromptTemplate, Registry, Template, template_text
from promptyard.runtime import Budget, Endpoint, Tracker, get_settings, is_transient_service_error, make_lm
from promptyard.runtime import scoring_progress

__all__ = ["LMSpec", "ProposerCharge", "Proposal", "CandidateFailure", "load_seed", "load_data", "score", "score_pair",
           "score_pair_on", "propose", "evaluate_candidate", "register_version", "record_evidence", "objectives_of",
           "RETRY"]


def _retry_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except Exception as exc:
        return is_transient_service_error(exc)
    return False


RETRY = {"retries": 2, "retry_delay_seconds": [2, 5], "retry_condition_fn": _retry_transient}


def _plain(value):
    if is_dataclass(value):
        return asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return str(value)


def resumable(*names: str) -> dict:
    """Task options: cache the result by these parameters, the model and the stores (none with resume off)."""

    def key(context, parameters) -> str | None:
        settings = get_settings()
        if not settings.resume:
            return None
        proposer = Endpoint.proposer_from_settings(settings)
        material = {"task": context.task.name, "lm": [settings.lm_url, settings.lm_model], "mlflow":
                    settings.tracking_uri, **{n: parameters[n] for n in names}}
        if context.task.name == "propose":  # proposals depend on the model that writes them
            material["proposer"] = [proposer.base_url, proposer.model]
        return hashlib.sha256(json.dumps(material, default=_plain, sort_keys=True).encode()).hexdigest()

    return {"cache_key_fn": key, "persist_result": True, "cache_expiration": timedelta(days=7)}


@dataclass(frozen=True)
class LMSpec:
    """How a task reaches the LM: the run's budget (by key), DSPy's cache, concurrent requests; and the
    proposer's own budget (by key): its calls are counted apart, and on an endpoint or model of its own
    (`own_proposer`) they are budgeted there alone."""

    budget_key: str
    cache: bool
    concurrency: int
    proposer_key: str = ""
    own_proposer: bool = False

    def lm(self, **defaults):
        settings = get_settings()
        return make_lm(Endpoint.from_settings(settings), cache=self.cache, budget=Budget.find(self.budget_key),
                       **defaults)

    def proposer_lm(self, **defaults):
        """The LM that proposes rewrites, charged to the proposer's budget (and to the run's when it is the task
        model)."""
        if not self.proposer_key:
            return self.lm(**defaults)
        charge = ProposerCharge(Budget.find(self.proposer_key), None if self.own_proposer else self.budget)
        return make_lm(Endpoint.proposer_from_settings(get_settings()), cache=self.cache, budget=charge, **defaults)

    @property
    def budget(self) -> Budget:
        return Budget.find(self.budget_key)


class ProposerCharge:
    """Charges the proposer's requests to its own budget (its count and caps) and, when it is the task model,
    to the run's budget too."""

    def __init__(self, own: Budget, run: Budget | None):
        self.own, self.run, self._lock = own, run, threading.Lock()

    def start_call(self, requests: int = 1) -> None:
        with self._lock:  # the check and the charges at once: `own` is charged through here only
            reason = self.own.spent_reason(extra_calls=requests - 1)
            if reason:
                raise BudgetExhausted(f"proposer budget spent: {reason}")
            if self.run is not None:
                self.run.start_call(requests)
            self.own.start_call(requests)

    def end_call(self, **usage) -> None:
        if self.run is not None:
            self.run.end_call(**usage)
        self.own.end_call(**usage)

    def spent_reason(self, extra_calls: int = 0) -> str | None:
        return (self.run.spent_reason(extra_calls) if self.run is not None else None) or \
            self.own.spent_reason(extra_calls)


@dataclass(frozen=True)
class Proposal:
    candidates: list[Candidate]
    stopped: str | None  # why the search ended early (a spent budget), if it did
    discarded: int = 0  # proposer replies without a readable instruction (meta-text, echoes, a bare label)


class CandidateFailure(Exception):
    """A candidate that could not be scored (after its retries): logged as a failed child run."""

    def __init__(self, reason: str, run_id: str):
        super().__init__(reason)
        self.reason, self.run_id = reason, run_id

    def __reduce__(self):  # crosses process boundaries (Dask workers) intact
        return CandidateFailure, (self.reason, self.run_id)


def objectives_of(result: ScoreResult) -> Objectives:
    cost = get_settings().cost(result.prompt_tokens, result.completion_tokens)
    return Objectives(result.accuracy, cost / max(1, len(result.examples)), result.mean_latency_s)


@task(cache_policy=NO_CACHE, task_run_name="load prompt {ref}", **RETRY)
def load_seed(ref: str) -> SeedPrompt:
    """The seed version; only an editor of the prompt may optimize it (nothing is spent otherwise)."""
    registry = Registry(get_settings().tracking_uri)
    version = registry.get(ref)
    Governance.from_settings(registry).require("editor", version.name, "register optimized versions")
    return SeedPrompt(version.name, int(version.version), registry.template(version), registry.generation(version))


@task(cache_policy=NO_CACHE, task_run_name="load dataset {dataset}")
def load_data(dataset: str, template: PromptTemplate) -> LoadedDataset:
    """The dataset, once the seed is known to read only its input fields and to have an instruction the
    optimizers can rewrite (checked before any LM call)."""
    Template.of(template).check_optimizable()
    data = load_dataset(dataset, cache_dir=get_settings().home_dir / "hf_cache")
    data.check_template(template)
    return data


def _score(arms, rows: list[dict], card: DatasetCard, lm: LMSpec, label: str) -> list[ScoreResult]:
    with scoring_progress(label, len(rows) * len(arms)) as advance:
        return score_templates(arms, rows, lm=lm.lm(), metric=card.make_metric(budget=lm.budget),
                               input_fields=card.input_fields, label_field=card.label_field,
                               concurrency=lm.concurrency, on_example=advance)


def _refuse_errors(results: list[ScoreResult], what: str) -> None:
    """Inside a cached task: a result with too many failed requests fails the task, so it is never cached
    and a re-run on a healthy endpoint scores afresh instead of replaying the outage."""
    refuse_if_errors(results, get_settings().max_error_rate, what)


@task(**RETRY, **resumable("template", "generation", "rows", "card"))
def score(template: PromptTemplate, generation: GenerationConfig, rows: list[dict], card: DatasetCard, lm: LMSpec,
          label: str, what: str) -> ScoreResult:
    """Score a template on rows, `lm.concurrency` requests at a time, with a progress bar (`what` names it
    when too many requests failed)."""
    result = _score([(template, generation)], rows, card, lm, label)[0]
    _refuse_errors([result], what)
    return result


@task(**RETRY, **resumable("seed", "best", "rows", "card"))
def score_pair(seed: Candidate, best: Candidate, rows: list[dict], card: DatasetCard, lm: LMSpec,
               label: str, what: str) -> tuple[ScoreResult, ScoreResult]:
    """The seed and the best candidate on the same rows, requests interleaved row by row."""
    first, second = _score([(seed.template, seed.generation), (best.template, best.generation)], rows, card, lm, label)
    _refuse_errors([first, second], what)
    return first, second


@task(**RETRY, **resumable("other", "seed", "best", "rows", "card"))
def score_pair_on(other: OtherModel, seed: Candidate, best: Candidate, rows: list[dict], card: DatasetCard,
                  lm: LMSpec, label: str, what: str) -> tuple[ScoreResult, ScoreResult, int]:
    """The seed and the best candidate on another model (`--also-on`), interleaved; and the calls it took
    (counted apart: they are not the run's model)."""
    settings = get_settings()
    endpoint = Endpoint(other.base_url, other.model, settings.also_on_api_key or settings.lm_api_key,
                        settings.lm_timeout)
    tally = Budget()
    with scoring_progress(label, 2 * len(rows)) as advance:
        first, second = score_templates([(seed.template, seed.generation), (best.template, best.generation)], rows,
                                        lm=make_lm(endpoint, cache=lm.cache, budget=tally), metric=card.make_metric(),
                                        input_fields=card.input_fields, label_field=card.label_field,
                                        concurrency=lm.concurrency, on_example=advance)
    _refuse_errors([first, second], what)
    return first, second, tally.calls


@task(task_run_name="propose with {settings.name}", **resumable("settings", "seed", "train", "card", "random_seed"))
def propose(settings: OptimizerSettings | PluginOptimizer, seed: SeedPrompt, train: list[dict], card: DatasetCard,
            lm: LMSpec, random_seed: int) -> Proposal:
    """The optimizer's candidates; the search runs on the training rows only."""
    optimizer = get_optimizer(settings)
    opt_task = OptimizationTask(
        seed=Template.of(seed.template), trainset=train, input_fields=card.input_fields,
        label_field=card.label_field, metric=card.make_metric(budget=lm.budget), generation=seed.generation,
        labels=card.labels, proposer_style="plain" if get_settings().plain_proposer else "standard",
        random_seed=random_seed, budget=lm.budget)
    candidates = optimizer.propose(opt_task, task_lm=lm.lm(**seed.generation.request_kwargs()),
                                   proposer_lm=lm.proposer_lm(max_tokens=256))
    return Proposal(candidates, optimizer.stopped, len(opt_task.discarded))


@task(**RETRY, **resumable("candidate", "rows", "card", "request_key"))
def evaluate_candidate(index: int, candidate: Candidate, rows: list[dict], card: DatasetCard, lm: LMSpec,
                       parent_run_id: str, request_key: str, seed: SeedPrompt,
                       optimizer_params: dict) -> tuple[ScoreResult, str]:
    """Score one candidate on validation and log it as a child run (while others are still scoring).
    A candidate that cannot be scored ends as a failed child run, with its reason. One child run per
    candidate of an optimization, however often a task is retried or the run resumed."""
    settings = get_settings()
    tracker = Tracker(settings.tracking_uri, settings.experiment)
    run_id = tracker.child_run(parent_run_id, f"candidate-{index}", tags={
        "promptyard.candidate_key": _key(candidate), "promptyard.request_key": request_key})
    tracker.log(run_id, params={
        "template": template_text(candidate.template), "optimizer": candidate.source,
        "output_format": candidate.details.get("output_format", "free"),
        "response_format": candidate.generation.response_format, "parent_prompt": seed.name,
        "parent_version": seed.version, **{f"optimizer.{k}": v for k, v in optimizer_params.items()}})
    tracker.log_text(run_id, template_text(candidate.template), "template.txt")
    try:
        result = _score([(candidate.template, candidate.generation)], rows, card, lm,
                        f"candidate {index} · validation")[0]
        tracker.log_score(run_id, result, split="validation")
        refuse_if_errors([result], settings.max_error_rate, f"Candidate {index} on validation")
    except (BudgetExhausted, EndpointUnreachableError) as exc:
        tracker.finish(run_id, False, reason=str(exc))
        raise
    except Exception as exc:  # scored as failed, and the run goes on
        tracker.finish(run_id, False, reason=f"{type(exc).__name__}: {exc}")
        raise CandidateFailure(f"{type(exc).__name__}: {exc}", run_id) from None
    tracker.log(run_id, metrics={"validation_cost_per_example": objectives_of(result).cost,
                                 **({"train_score": candidate.train_score} if candidate.train_score is not None else {})})
    tracker.finish(run_id)
    return result, run_id


def _key(candidate: Candidate) -> str:
    return hashlib.sha256(json.dumps([candidate.template, asdict(candidate.generation)], sort_keys=True).encode()
                          ).hexdigest()[:32]


@task(cache_policy=NO_CACHE, task_run_name="register the winner", **RETRY)
def register_version(seed: SeedPrompt, candidate: Candidate, provenance: dict[str, str],
                     message: str) -> tuple[int, bool]:
    """Register the candidate (or find the identical version already there) and move `candidate`."""
    governance = Governance.from_settings()
    version, created = governance.register_once(seed.name, candidate.template, generation=candidate.generation,
                                                commit_message=message, provenance=provenance)
    governance.set_alias(seed.name, CANDIDATE_ALIAS, int(version.version), reason=message)
    return int(version.version), created


@task(cache_policy=NO_CACHE, task_run_name="record the evidence", **RETRY)
def record_evidence(run_id: str, evidence: Evidence) -> None:
    """The test-split comparison on the parent run, anchored in the audit log: promotion evidence."""
    Governance.from_settings().record_evidence(run_id, evidence)
