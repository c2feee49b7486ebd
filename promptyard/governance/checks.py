"""What moving a protected alias needs, checked one by one: evidence, approvals, contract.

1. evidence: a run comparing the new version with the alias' current one, paired on a test split
   (optimization or offline A/B) or decided online (A/B analysis), anchored in the audit log when
   it was produced and unchanged since, recorded by a trusted identity, recent, large and
   confident enough, on the dataset the policy names at its current digest, whose interval's
   lower bound of (new − current) is ≥ −margin (see `evidence`);
2. approvals by approvers who are not the version's author (four eyes); the author is the one
   the audit log recorded, and a service identity's approval does not count;
3. the prompt contract: the variables apps send (and, if declared, a constrained output format).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from promptyard.errors import PermissionDeniedError
from promptyard.evaluation import dataset_digest
from promptyard.governance.audit import AuditEntry, AuditLog
from promptyard.governance.evidence import Evidence, evidence_problem
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

    def __init__(self, registry: Registry, policy: Policy, tracker: Tracker, audit: AuditLog,
                 now: Callable[[], float] = time.time):
        self.registry, self.policy, self.tracker, self.audit, self.now = registry, policy, tracker, audit, now

    def author_of(self, name: str, version: int) -> str | None:
        """Who registered the version: the audit log's record first (tags can be forged), else the stamp."""
        registered = self.audit.find("register", prompt=name, version=int(version))
        if registered:
            return registered[0].user
        return (self.registry.get(f"{name}/{version}").tags or {}).get(TAG_AUTHOR)

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
        author = self.author_of(name, version)
        if author is None:
            return Check("approval", False, f"the author of v{version} is unknown (no audit entry, no author stamp), so "
                                            "four eyes cannot be checked: register the version through promptyard")
        rejected = [k.removeprefix(REJECTION) for k, v in tags.items()
                    if k.startswith(REJECTION) and read_note(v).get("alias") == alias]
        if rejected:
            return Check("approval", False, f"rejected by {', '.join(rejected)}")
        approvers = []
        for key, value in tags.items():
            who = key.removeprefix(APPROVAL)
            if key.startswith(APPROVAL) and read_note(value).get("alias") == alias and who != author \
                    and not self.policy.is_service(who):
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
            found = self._trusted(run, name, version, current, rule)
            if isinstance(found, str):
                reasons.append(f"run {run.info.run_id}: {found}")
                continue
            record, entry, age = found
            return Check("evidence", True, f"run {run.info.run_id}: {record.split} on {record.dataset}, n={record.n} at "
                                           f"{record.confidence:.0%}, lower bound of v{version} − v{current} "
                                           f"{record.low:+.3f} ≥ −{rule.margin:g}, {age:.1f} days old, recorded by "
                                           f"{entry.user} (audit #{entry.seq})", run.info.run_id)
        return Check("evidence", False, "; ".join(reasons[:3]))

    def _trusted(self, run, name: str, version: int, current: int, rule: PromotionRule):
        """(record, audit entry, age in days) when the run is evidence that counts, else why not."""
        anchors = self.audit.find("evidence", evidence_run_id=run.info.run_id)
        if not anchors:
            return ("is not anchored in the audit log: a run made by hand is not evidence (produce it with "
                    "`promptyard ab offline` or an optimization)")
        entry = anchors[-1]
        record = Evidence.from_json(entry.after)
        if not record.matches(run):
            return f"was changed after it was recorded (its tags or metrics differ from audit entry #{entry.seq})"
        if rule.evidence_by and entry.user not in rule.evidence_by:
            return f"was recorded by {entry.user}; the policy trusts evidence from {', '.join(rule.evidence_by)} only"
        if self.policy.role_of(entry.user, name) not in ("editor", "approver", "admin"):
            return f"was recorded by {entry.user}, who is not an editor of {name}"
        age = (self.now() - _seconds(entry)) / 86400
        problem = evidence_problem(record, prompt=name, version=version, current=current, rule=rule, age_days=age,
                                   current_digest=lambda e: dataset_digest(e.dataset_path or e.dataset))
        return problem or (record, entry, age)


def _seconds(entry: AuditEntry) -> float:
    return datetime.fromisoformat(entry.at).timestamp()
