"""A closed release loop for one version on a protected alias.

    offline evidence → approved canary split → analysis every hour → promote or roll back

1. Offline evidence: the version must not be shown worse than the alias' current version on the
   policy's test data — the same check promotion runs (anchored evidence, recent enough, lower
   bound ≥ −margin). Recorded evidence counts; otherwise an offline A/B runs first and records it.
2. Canary: an experiment on the alias sends `share` (default 5%) of units to the version, started
   through governance (an approver, the version approved by a second person, the contract kept).
3. Analysis: each round runs the A/B analysis, which acts on its decision through governance: a
   better version is promoted with the analysis run as evidence (all promotion checks apply; a
   refusal ends the canary and keeps the alias); a guardrail breach, or a version that is worse,
   ends the canary with the alias on the control (the automatic rollback); otherwise the canary
   keeps running until the next round.

Every step is appended to the audit log (action `experiment`, reason `release v…: …`), beside
the entries governance writes itself (evidence, experiment start, approval, promotion, end).
Running the same release again resumes it: a canary of this version already on the alias is
picked up where it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from promptyard.errors import ExperimentError
from promptyard.governance import Governance
from promptyard.registry import Registry
from promptyard.serving.experiments import Experiment, Experiments

__all__ = ["Release", "ReleaseStep"]

ENDED = {"promote": "promoted", "rollback": "rolled back", "inconclusive": "inconclusive",
         "promotion-refused": "promotion refused", "none": "ended elsewhere"}


@dataclass
class ReleaseStep:
    step: str  # offline | canary | resume | analysis | promoted | rolled back | inconclusive | promotion refused
    detail: str
    run_id: str | None = None
    at: float = field(default_factory=time.time)
    data: dict = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.step in ENDED.values()

    def as_dict(self) -> dict:
        return asdict(self)


class Release:
    """Release `name` version `version` to `name@alias` (see the module docstring)."""

    def __init__(self, registry: Registry, name: str, version: int, *, alias: str = "production",
                 governance: Governance | None = None):
        self.registry, self.name, self.version, self.alias = registry, name, int(version), alias
        self.governance = governance or Governance.from_settings(registry)
        self.experiments = Experiments(registry, self.governance)
        self.ref = f"{name}@{alias}"

    @property
    def note(self) -> str:
        return f"release of {self.name}/{self.version}"

    def _audit(self, step: ReleaseStep) -> ReleaseStep:
        self.governance.audit.append(self.governance.user, "experiment", prompt=self.name, version=self.version,
                                     alias=self.alias, after={"release": self.version, "step": step.step,
                                                              **step.data},
                                     reason=f"release v{self.version}: {step.step}: {step.detail}"[:2000],
                                     evidence_run_id=step.run_id)
        return step

    # -- 1. offline evidence --------------------------------------------------------------------
    def current(self) -> int:
        found = self.registry.alias_version(self.name, self.alias)
        if found is None:
            raise ExperimentError(f"{self.ref} does not exist: a release replaces the version an alias serves; "
                                  f"set it first with `promptyard prompts alias {self.name} {self.alias} VERSION`.")
        self.registry.get(f"{self.name}/{self.version}")  # the version must exist
        if found == self.version:
            raise ExperimentError(f"{self.ref} already serves v{self.version}: nothing to release.")
        return found

    def offline(self, compare: Callable[[str, str], dict] | None = None) -> ReleaseStep:
        """Check the offline evidence; run `compare(control_ref, candidate_ref)` first when there is none."""
        current = self.current()
        rule = self.governance.policy.rule_for(self.name)
        check = self.governance.promotion.evidence(self.name, self.version, self.alias, rule)
        ran = None
        if not check.ok and compare is not None:
            ran = compare(f"{self.name}/{current}", f"{self.name}/{self.version}")
            check = self.governance.promotion.evidence(self.name, self.version, self.alias, rule,
                                                       ran.get("run_id"))
        if not check.ok:
            hint = "" if compare is not None else " Pass --dataset to run the offline A/B first."
            refused = ReleaseStep("offline", f"refused: {check.detail}", check.run_id)
            self._audit(refused)
            raise ExperimentError(f"v{self.version} has no offline evidence that it is not worse than "
                                  f"v{current}: {check.detail}.{hint} Nothing was started.")
        detail = check.detail if ran is None else f"{ran.get('verdict')}; {check.detail}"
        return self._audit(ReleaseStep("offline", detail, check.run_id))

    # -- 2. canary ------------------------------------------------------------------------------
    def running(self) -> Experiment | None:
        """This release's canary, if it runs on the alias; an error if something else does."""
        experiment = self.experiments.get(self.ref)
        if experiment is None:
            return None
        if experiment.treatments != [self.version] or experiment.note != self.note:
            what = experiment.note or f"not a release of v{self.version}"
            raise ExperimentError(f"{self.ref} already runs experiment {experiment.id} ({what}): stop it first with "
                                  f"`promptyard ab stop {self.ref}`.")
        return experiment

    def canary(self, share: float = 0.05, **design) -> tuple[Experiment, ReleaseStep]:
        """Start the canary split (or pick up the one running) and say what it needs."""
        if not 0 < share < 1:
            raise ExperimentError(f"canary share {share} is not valid: give a share in (0, 1), e.g. 0.05 (5%).")
        running = self.running()
        if running is not None:
            step = ReleaseStep("resume", f"canary {running.id} already runs: {_split(running)}",
                               data={"experiment": running.id})
            return running, self._audit(step)
        current = self.current()
        experiment = self.experiments.start(self.ref, {current: 1 - share, self.version: share}, note=self.note,
                                            **design)
        step = ReleaseStep("canary", f"started {experiment.id}: {_split(experiment)}", data={
            "experiment": experiment.id, "weights": {str(k): v for k, v in experiment.weights.items()},
            "levels": experiment.levels})
        return experiment, self._audit(step)

    # -- 3. analysis rounds ---------------------------------------------------------------------
    def round(self, analyze: Callable[[], dict]) -> ReleaseStep:
        """One analysis (`analyze` runs it and applies its decision) and what came of it."""
        if self.running() is None:
            last = self.experiments.last_result(self.ref) or {}
            return self._ended(last.get("decision", "none"), last.get("reason", "no canary runs on the alias"),
                               last.get("analysis_run_id"), last)
        result = analyze()
        applied = (result.get("applied") or {}).get("decision", "continue")
        if applied in ("continue", "reallocate", "dry-run"):
            step = ReleaseStep("analysis", f"{result.get('decision')} ({result.get('reason')})", result.get("run_id"),
                               data={"decision": result.get("decision")})
            return self._audit(step)
        return self._ended(applied, (result.get("applied") or {}).get("reason") or result.get("reason", ""),
                           result.get("run_id"), result.get("applied") or {})

    def _ended(self, decision: str, reason: str, run_id: str | None, data: dict) -> ReleaseStep:
        step = ENDED.get(decision, decision)
        version = data.get("version")
        where = f"; {self.ref} on v{version}" if version is not None else ""
        return self._audit(ReleaseStep(step, f"{reason}{where}", run_id, data={"decision": decision,
                                                                               "version": version}))

    def watch(self, next_round: Callable[[], ReleaseStep], *, every: float = 3600.0, rounds: int | None = None,
              echo: Callable[[ReleaseStep], None] = lambda _: None,
              sleep: Callable[[float], None] = time.sleep) -> ReleaseStep | None:
        """Run `next_round` (e.g. `lambda: release.round(analyze)`) every `every` seconds until the release
        ends, or `rounds` times; return the last step."""
        step = None
        done = 0
        while rounds is None or done < rounds:
            step = next_round()
            done += 1
            echo(step)
            if step.final:
                return step
            if rounds is None or done < rounds:
                sleep(every)
        return step


def _split(experiment: Experiment) -> str:
    return ", ".join(f"v{v} {w:.0%}" for v, w in sorted(experiment.weights.items()))
