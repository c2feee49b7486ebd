"""What moving a protected alias needs, checked one by one: evidence, approvals, contract.

1. evidence: a run comparing the new version with the alias' current one, paired on a test split
   (optimization or offline A/B) or decided online (A/B analysis), recent, on the dataset the
   policy names, whose interval's lower bound of (new − current) is ≥ −margin;
2. approvals by approvers who are not the version's author (four eyes);
3. the prompt contract: the variables apps send (and, if declared, a constrained output format).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from promptyard.errors import PermissionDeniedError
from promptyard.governance.policy import Policy, PromotionRule
from promptyard.governance.tags import APPROVAL, EVIDENCE, REJECTION, TAG_AUTHOR, read_note
from promptyard.registry import Contract, Registry, variables
from promptyard.runtime import Tracker

__all__ = ["Check", "PromotionChecks"]


@dataclass(frozen=True)
class Check:
    name: str  # evidence | approval | contract
    ok: bool
    detail: str
    run_id: str | None = None

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


class PromotionChecks:
    """The promotion checks of one policy, reading versions from the registry and runs from the tracker."""

    def __init__(self, registry: Registry, policy: Policy, tracker: Tracker, now: Callable[[], float] = time.time):
        self.registry, self.policy, self.tracker, self.now = registry, policy, tracker, now

    def all(self, name: str, version: int, alias: str, *, evidence_run_id: str | None = None) -> list[Check]:
        if not self.policy.is_protected(alias):
            return []
        rule = self.policy.rule_for(name)
        return [self.evidence(name, version, alias, rule, evidence_run_id),
                self.approvals(name, version, alias, rule), self.contract_check(name, version)]

    @staticmethod
    def require(checks: list[Check], name: str, version: int, alias: str) -> None:
        """Raise naming every failed check (and listing them all) unless all passed."""
        failed = [c for c in checks if not c.ok]
        if failed:
            lines = "\n".join(f"  {c}" for c in checks)
            raise PermissionDeniedError(f"{name}/{version} cannot take {name}@{alias}; failed: "
                                        f"{', '.join(c.name for c in failed)}\n{lines}\n{name}@{alias} is unchanged.")

    # -- contract ------------------------------------------------------------------------------
    def contract(self, name: str) -> Contract | None:
        """The declared contract, else the variables of the version on a protected alias, else None."""
        declared = self.registry.declared_contract(name)
        if declared is not None:
            return declared
        for alias in sorted(self.policy.protected_aliases):
            current = self.registry.alias_version(name, alias)
            if current is not None:
                found = self.registry.get(f"{name}/{current}")
                return Contract(variables(self.registry.template_text(found)), False, False)
        return None

    def contract_check(self, name: str, version: int) -> Check:
        contract = self.contract(name)
        if contract is None:
            return Check("contract", True, "no contract declared and no version on a protected alias yet")
        found = self.registry.get(f"{name}/{version}")
        problems = contract.problems(self.registry.template_text(found), found.response_format)
        source = "declared contract" if contract.declared else "the variables of the current protected version"
        if problems:
            return Check("contract", False, f"v{version} {'; '.join(problems)} ({source}: "
                                            f"{', '.join(contract.variables) or 'no variables'})")
        return Check("contract", True, f"v{version} takes exactly {', '.join(contract.variables) or 'no variables'} "
                                       f"({source})")

    # -- approvals -----------------------------------------------------------------------------
    def approvals(self, name: str, version: int, alias: str, rule: PromotionRule) -> Check:
        if rule.approvals == 0:
            return Check("approval", True, "the policy requires no approval")
        tags = self.registry.get(f"{name}/{version}").tags or {}
        author = tags.get(TAG_AUTHOR)
        rejected = [k.removeprefix(REJECTION) for k, v in tags.items()
                    if k.startswith(REJECTION) and read_note(v).get("alias") == alias]
        if rejected:
            return Check("approval", False, f"rejected by {', '.join(rejected)}")
        approvers = []
        for key, value in tags.items():
            who = key.removeprefix(APPROVAL)
            if key.startswith(APPROVAL) and read_note(value).get("alias") == alias and who != author:
                role = self.policy.role_of(who, name)
                if role in ("approver", "admin"):
                    approvers.append(who)
        if len(approvers) < rule.approvals:
            return Check("approval", False, f"{len(approvers)} of {rule.approvals} approval(s) by an approver other "
                                            f"than the author ({author or 'unknown'}); ask one to run `promptyard "
                                            f"prompts approve {name} {version} --alias {alias}`")
        return Check("approval", True, f"approved by {', '.join(sorted(approvers))} (author {author or 'unknown'})")

    # -- evidence ------------------------------------------------------------------------------
    def evidence(self, name: str, version: int, alias: str, rule: PromotionRule, run_id: str | None = None) -> Check:
        current = self.registry.alias_version(name, alias)
        if current is None:
            return Check("evidence", True, f"{name}@{alias} does not exist yet: nothing to compare with")
        if current == version:
            return Check("evidence", True, f"v{version} already holds {name}@{alias}")
        if run_id:
            runs = [self.tracker.get_run(run_id)]
        else:
            runs = self.tracker.search_runs(
                f"tags.`{EVIDENCE}prompt` = '{name}' and tags.`{EVIDENCE}candidate` = '{version}'",
                order_by=["attributes.start_time DESC"], max_results=50)
        if not runs:
            dataset = rule.dataset or "DATASET"
            return Check("evidence", False, f"no run compares v{version} with v{current}: run `promptyard ab offline "
                                            f"{name}/{current} {name}/{version} --dataset {dataset}`")
        reasons = []
        for run in runs:
            problem = self._evidence_problem(run, name, version, current, rule)
            if problem is None:
                tags, low = run.data.tags, run.data.metrics["evidence_diff_low"]
                age = (self.now() - run.info.start_time / 1000) / 86400
                return Check("evidence", True, f"run {run.info.run_id}: {tags[EVIDENCE + 'split']} on "
                                               f"{tags[EVIDENCE + 'dataset']}, lower bound of v{version} − v{current} "
                                               f"{low:+.3f} ≥ −{rule.margin:g}, {age:.1f} days old", run.info.run_id)
            reasons.append(f"run {run.info.run_id}: {problem}")
        return Check("evidence", False, "; ".join(reasons[:3]))

    def _evidence_problem(self, run, name: str, version: int, current: int, rule: PromotionRule) -> str | None:
        tags = run.data.tags
        if tags.get(EVIDENCE + "prompt") != name or tags.get(EVIDENCE + "candidate") != str(version):
            return f"is not evidence for {name}/{version}"
        if tags.get(EVIDENCE + "baseline") != str(current):
            return f"compares with v{tags.get(EVIDENCE + 'baseline')}, but the alias is on v{current}"
        split, dataset = tags.get(EVIDENCE + "split"), tags.get(EVIDENCE + "dataset")
        if split == "online":
            if not rule.accept_online:
                return "is an online A/B result, which the policy does not accept"
        elif split != "test":
            return f"was measured on the {split} split, not test"
        elif rule.dataset and dataset != rule.dataset:
            return f"is on dataset {dataset}, the policy requires {rule.dataset}"
        age = (self.now() - run.info.start_time / 1000) / 86400
        if age > rule.max_evidence_age_days:
            return f"is stale: {age:.0f} days old (the policy accepts {rule.max_evidence_age_days:g})"
        low = run.data.metrics.get("evidence_diff_low")
        if low is None:
            return "has no evidence_diff_low metric"
        if low < -rule.margin:
            return f"shows v{version} may be worse: lower bound {low:+.3f} < −{rule.margin:g}"
        return None
