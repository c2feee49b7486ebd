"""A/B experiments on an alias: the split lives in the registry, so every app process agrees.

While `support@production` runs an experiment, the alias still points to the control version
(plain `mlflow.genai.load_prompt` users keep getting it) and the prompt carries the tag
`promptyard.ab.production` with the experiment as JSON: its id, the weight of each version, the
control, the decision rule. `PromptClient.assign(ref, unit_id)` hashes (experiment id, unit id)
onto the weights, so a unit always gets the same version while the experiment runs.

The design is fixed when the experiment starts and stored with it: alpha and its split across the
quality test and the guardrails (`levels`), the guardrail tolerances, the lift the experiment is
sized for, the mixing standard deviations of the sequential tests, and how often the analysis
looks. A reallocation changes the weights and the epoch, nothing else (governance refuses more).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, field, replace

from promptyard.errors import ExperimentError
from promptyard.governance import Governance, check_weights
from promptyard.registry import PromptRef, Registry
from promptyard.serving.design import split_alpha

__all__ = ["Experiment", "Experiments", "bucket", "choose_version", "tag_key"]

GUARDRAILS = ("latency_ms", "cost")
RESULT_SUFFIX = ".last"


def tag_key(alias: str) -> str:
    return f"promptyard.ab.{alias}"


@dataclass(frozen=True)
class Experiment:
    id: str
    prompt: str
    alias: str
    control: int
    weights: dict[int, float]
    started_at: float
    alpha: float = 0.05
    min_samples: int = 100
    max_outcomes: int | None = None
    guardrails: dict[str, float] = field(default_factory=lambda: {"latency_ms": 0.2, "cost": 0.2})
    thompson: bool = False
    epoch: int = 0  # bumped each time the weights are reallocated
    lift: float = 0.05  # the quality lift (in outcome units) the experiment is sized to detect
    mixture_sd: float | None = None  # τ of the quality test, outcome units (None: started before it was stored)
    guardrail_mixture_sd: float = 0.1  # τ of the guardrail tests, on the relative scale (0.1 = 10%)
    look_every: int = 100  # outcomes between two looks of the sequential tests
    note: str = ""  # why it runs, e.g. the release it belongs to

    @property
    def ref(self) -> str:
        return f"{self.prompt}@{self.alias}"

    @property
    def quality_sd(self) -> float:
        """τ of the quality test: stored at start, else the lift."""
        return self.mixture_sd if self.mixture_sd is not None else self.lift

    @property
    def levels(self) -> dict[str, float]:
        """The level of each test per treatment (quality, then each guardrail); together at most alpha."""
        return split_alpha(self.alpha, len(self.treatments), self.guardrails)

    @property
    def treatments(self) -> list[int]:
        return [v for v in sorted(self.weights) if v != self.control]

    def to_json(self) -> str:
        data = asdict(self)
        data["weights"] = {str(k): v for k, v in self.weights.items()}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        data = json.loads(text)
        data["weights"] = {int(k): float(v) for k, v in data["weights"].items()}
        return cls(**data)

    def with_weights(self, weights: dict[int, float]) -> Experiment:
        check_weights(weights)
        return replace(self, weights=dict(sorted(weights.items())), epoch=self.epoch + 1)


def bucket(experiment_id: str, unit_id: str) -> float:
    """A stable number in [0, 1) for this unit in this experiment."""
    digest = hashlib.sha256(f"{experiment_id}\x1f{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_version(experiment: Experiment, unit_id: str) -> int:
    point, cumulative = bucket(experiment.id, unit_id), 0.0
    for version, weight in sorted(experiment.weights.items()):
        cumulative += weight
        if point < cumulative:
            return version
    return max(experiment.weights)


def check_unit(unit_id: object) -> str:
    if not isinstance(unit_id, str | int) or not str(unit_id).strip():
        raise ExperimentError(f"unit_id {unit_id!r} is empty: pass the user or session id that assignment "
                              "should stick to.")
    return str(unit_id)


class Experiments:
    """Start, read and stop experiments stored as prompt tags in the registry.

    Governed: starting needs the editor role (approver on a protected alias, where starting also
    approves the treatments on behalf of the starter, unless they wrote them); every version in
    the split must keep the prompt contract; a winner takes a protected alias only through the
    promotion checks, with the analysis run as evidence.
    """

    def __init__(self, registry: Registry, governance=None):
        self.registry = registry
        self.governance = governance or Governance.from_settings(registry)

    def _alias_ref(self, ref: str) -> PromptRef:
        parsed = PromptRef.parse(ref)
        if not parsed.alias:
            raise ExperimentError(f"{ref!r} names no alias: experiments split an alias, e.g. {parsed.name}@production.")
        return parsed

    def get(self, ref: str) -> Experiment | None:
        parsed = self._alias_ref(ref)
        if self.registry.prompt(parsed.name) is None:
            self.registry.get(parsed)  # raises the usual "no prompt named ..." error
        text = self.registry.prompt_tags(parsed.name).get(tag_key(parsed.alias))
        return Experiment.from_json(text) if text else None

    def last_result(self, ref: str) -> dict | None:
        parsed = self._alias_ref(ref)
        text = self.registry.prompt_tags(parsed.name).get(tag_key(parsed.alias) + RESULT_SUFFIX)
        return json.loads(text) if text else None

    def start(self, ref: str, weights: dict[int, float], *, alpha: float = 0.05, min_samples: int = 100,
              max_outcomes: int | None = None, guardrails: dict[str, float] | None = None,
              thompson: bool = False, lift: float = 0.05, mixture_sd: float | None = None,
              look_every: int = 100, note: str = "") -> Experiment:
        """Validate everything first; only then write the tag (nothing changes on bad input).

        `min_samples` is units per version before the first look; `lift` the quality difference the
        experiment is sized for (outcome units, e.g. 0.05 = 5 points of a rate), which is also the
        quality test's τ unless `mixture_sd` is given."""
        parsed = self._alias_ref(ref)
        control = int(self.registry.get(parsed).version)  # the alias must exist: it is the control
        weights = {int(v): float(w) for v, w in weights.items()}
        check_weights(weights)
        if control not in weights:
            raise ExperimentError(f"{ref} points to version {control}, which the split leaves out: include the "
                                  f"control, e.g. --split {control}=0.9 --split {max(weights)}=0.1.")
        known = {int(v.version) for v in self.registry.versions(parsed.name)}
        missing = sorted(set(weights) - known)
        if missing:
            raise ExperimentError(f"Prompt {parsed.name!r} has no version {', '.join(map(str, missing))} "
                                  f"(versions: {', '.join(map(str, sorted(known)))}).")
        if not 0 < alpha < 0.5:
            raise ExperimentError(f"alpha {alpha} is not valid: use a level in (0, 0.5), e.g. 0.05.")
        if min_samples < 10:
            raise ExperimentError(f"min_samples {min_samples} is too small: use 10 or more units per version.")
        if not lift > 0:
            raise ExperimentError(f"lift {lift} is not valid: give the smallest difference worth detecting, > 0 "
                                  "(in outcome units, e.g. 0.05 for 5 points of a success rate).")
        if mixture_sd is not None and not mixture_sd > 0:
            raise ExperimentError(f"mixture_sd {mixture_sd} is not valid: give a standard deviation > 0, or leave "
                                  "it out to use the lift.")
        if int(look_every) < 1:
            raise ExperimentError(f"look_every {look_every} is not valid: give a number of outcomes ≥ 1, e.g. 100.")
        if max_outcomes is not None and max_outcomes < 2 * min_samples:
            raise ExperimentError(f"max_outcomes {max_outcomes} is below 2 × min_samples ({2 * min_samples}): "
                                  "the test could never look at the data.")
        guardrails = dict({"latency_ms": 0.2, "cost": 0.2} if guardrails is None else guardrails)
        unknown = sorted(set(guardrails) - set(GUARDRAILS))
        if unknown or any(t < 0 for t in guardrails.values()):
            raise ExperimentError(f"Guardrails {guardrails} are not valid: use {', '.join(GUARDRAILS)} with a "
                                  "tolerated relative increase ≥ 0, e.g. latency_ms=0.2 (+20%).")
        running = self.get(ref)
        if running is not None:
            raise ExperimentError(f"{ref} already runs experiment {running.id} "
                                  f"({_split_text(running.weights)}): stop it first with `promptyard ab stop {ref}`.")
        protected = self.governance.policy.is_protected(parsed.alias)
        self.governance.may_start_experiment(parsed.name, parsed.alias)
        experiment = Experiment(
            id=f"{parsed.name}@{parsed.alias}#{uuid.uuid4().hex[:8]}", prompt=parsed.name, alias=parsed.alias,
            control=control, weights=dict(sorted(weights.items())), started_at=time.time(), alpha=alpha,
            min_samples=min_samples, max_outcomes=max_outcomes, guardrails=guardrails, thompson=thompson,
            lift=float(lift), mixture_sd=float(mixture_sd if mixture_sd is not None else lift),
            look_every=int(look_every), note=note,
        )
        self.governance.start_experiment(parsed.name, parsed.alias, experiment.to_json(),  # checks the split
                                         after=json.loads(experiment.to_json()))
        if protected:
            for version in experiment.treatments:
                if self.governance.promotion.author_of(parsed.name, version) not in (self.governance.user, None):
                    self.governance.approve(parsed.name, version, alias=parsed.alias,
                                            reason=f"promote if it wins experiment {experiment.id}")
        return experiment

    def update(self, experiment: Experiment) -> None:
        current = self.get(experiment.ref)
        if current is None or current.id != experiment.id:
            raise ExperimentError(f"Experiment {experiment.id} no longer runs on {experiment.ref}.")
        self.governance.reallocate_experiment(experiment.prompt, experiment.alias, experiment.to_json(),
                                              before=current.weights, after=experiment.weights,
                                              reason=f"reallocate (epoch {experiment.epoch})")

    def stop(self, ref: str, *, decision: str = "stopped", winner: int | None = None, reason: str = "",
             analysis_run_id: str | None = None) -> dict:
        """End the experiment; move the alias to `winner` if given (else it stays on the control)."""
        experiment = self.get(ref)
        if experiment is None:
            raise ExperimentError(f"No experiment runs on {ref}; start one with `promptyard ab start {ref} --split ...`.")
        if winner is not None and winner not in experiment.weights:
            raise ExperimentError(f"Version {winner} is not in experiment {experiment.id} "
                                  f"({_split_text(experiment.weights)}).")
        final = winner if winner is not None else experiment.control
        if final != experiment.control:  # protected aliases only through the promotion checks
            if self.governance.policy.is_protected(experiment.alias):
                self.governance.promote(experiment.prompt, final, alias=experiment.alias,
                                        evidence_run_id=analysis_run_id, reason=f"{experiment.id}: {reason}")
            else:
                self.governance.set_alias(experiment.prompt, experiment.alias, final, reason=f"{experiment.id}: {reason}")
        result = {"experiment": experiment.id, "decision": decision, "alias": experiment.alias,
                  "version": final, "previous": experiment.control, "reason": reason,
                  "analysis_run_id": analysis_run_id, "stopped_at": time.time(),
                  "weights": {str(k): v for k, v in experiment.weights.items()}}
        self.governance.end_experiment(experiment.prompt, experiment.alias, json.dumps(result, sort_keys=True),
                                       version=final, before=experiment.control,
                                       reason=f"stop: {decision} {reason}".strip(), evidence_run_id=analysis_run_id)
        return result


def _split_text(weights: dict[int, float]) -> str:
    return ", ".join(f"v{v} {w:.0%}" for v, w in sorted(weights.items()))
