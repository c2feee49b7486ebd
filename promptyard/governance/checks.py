"""What moving a protected alias needs, checked one by one: evidence, approvals, contract, integrity.

1. evidence: a run comparing the new version with the alias' current one, paired on a test split
   (optimization or offline A/B) or decided online by an A/B experiment the audit log saw start,
   anchored in the audit log when it was produced and unchanged since, recorded by a trusted
   identity (behind a guarded server: the login the server stamped on the run, `promptyard.logged_by`), recent, large and confident enough, on the dataset the policy names at that dataset's
   current digest, whose interval's lower bound of (new − current) is ≥ −margin (see `evidence`);
2. approvals by approvers who are not the version's author (four eyes), each both recorded in the audit
   log and present as that approver's tag on the version (which a guarded server lets only that login
   write: an audit entry appended in someone else's name does not count, a rejection counts either way);
   the author is the one the audit log recorded (a stamp that disagrees makes it unknown), and a
   service identity's approval does not count;
3. the prompt contract: the variables apps send (and, if declared, a constrained output format);
4. integrity: the version is still what was registered (template, response format, model config),
   by one undisputed author (one user in the register entries of its template, the same as its stamp).

Audit entries count only from the current incarnation of a prompt name (a deleted and re-created
prompt starts afresh: entries before its creation, or before an audited deletion, do not count), and
a register or approval entry only for the content it was about (a digest of the template).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from promptyard.errors import PermissionDeniedError, PromptyardError
from promptyard.evaluation import dataset_digest, load_card
from promptyard.governance.audit import AuditEntry, AuditLog
from promptyard.governance.evidence import Evidence, evidence_problem
from promptyard.governance.policy import Policy, PromotionRule
from promptyard.governance.tags import APPROVAL, EVIDENCE, LOGGED_BY, REJECTION, TAG_AUTHOR, read_note
from promptyard.registry import Contract, Registry, variables
from promptyard.runtime import Tracker

__all__ = ["Check", "PromotionChecks", "template_digest"]

_SKEW = 60.0  # seconds of clock difference between MLflow's server and an audit writer still counted as "after"


@dataclass(frozen=True)
class Check:
    name: str  # evidence | approval | contract | integrity
    ok: bool
    detail: str
    run_id: str | None = None

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _seconds(entry: AuditEntry) -> float:
    return datetime.fromisoformat(entry.at).timestamp()


def template_digest(template) -> str:
    """What an approval was about: the exact template (text or chat messages)."""
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()


class PromotionChecks:
    """The promotion checks of one policy, reading versions from the registry and runs from the tracker."""

    def __init__(self, registry: Registry, policy: Policy, tracker: Tracker, audit: AuditLog,
                 now: Callable[[], float] = time.time, *, attested: bool = False):
        self.registry, self.policy, self.tracker, self.audit, self.now = registry, policy, tracker, audit, now
        self.attested = attested  # inside the guarded server: evidence must carry its login stamp

    # -- the audit log, for this incarnation of the prompt ------------------------------------------
    def _current(self, name: str, entries: list[AuditEntry]) -> list[AuditEntry]:
        born = self.registry.created_at(name)
        # a deletion ends what the log knew of the name only if the prompt was re-created after it (created no
        # earlier, and its version 1 registered again later in the log): a "delete" entry appended while the
        # prompt lives on is not a deletion
        reborn = [e.seq for e in self.audit.find("register", prompt=name, version=1)]
        deleted = [e.seq for e in self.audit.find("delete", prompt=name)
                   if e.version is None and born is not None and _seconds(e) <= born + _SKEW
                   and (any(seq > e.seq for seq in reborn) or "renamed_from" in (e.after or ""))]
        after = max(deleted, default=0)
        return [e for e in entries if born is not None and _seconds(e) >= born - _SKEW and e.seq > after]

    def entries(self, action: str, name: str, **where) -> list[AuditEntry]:
        return self._current(name, self.audit.find(action, prompt=name, **where))

    def held(self, name: str, alias: str) -> set[int]:
        """The versions the audit log saw on `name@alias`."""
        return {e.version for e in self._current(name, self.audit.alias_history(name, alias)) if e.version is not None}

    def standing(self, name: str, alias: str) -> int | None:
        """The version the alias is on, or, when it is gone (deleted, or its version deleted), the version the
        audit log last put it on: a protected alias that existed is never "new" again."""
        current = self.registry.alias_version(name, alias)
        if current is not None:
            return current
        moves = [e for e in self._current(name, self.audit.alias_history(name, alias)) if e.version is not None]
        return moves[-1].version if moves else None

    def registered(self, name: str, version: int) -> AuditEntry | None:
        """The audit entry that registered this version as it is now (its template), if any."""
        template = self.registry.get(f"{name}/{version}").template
        found = [e for e in self.entries("register", name, version=int(version))
                 if json.loads(e.after or "{}").get("template") == template]
        return found[-1] if found else None

    def author_of(self, name: str, version: int) -> str | None:
        """Who registered the version, from the audit log; None when it is unknown or disputed (a stamp on
        the version, or another register entry, that names someone else)."""
        entry = self.registered(name, version)
        if entry is None or self.disputed(name, version):
            return None
        return entry.user

    def disputed(self, name: str, version: int) -> str | None:
        """Why the author of a version is in dispute (None: it is not). A version is registered once, by
        one user, whom the server stamps on it: register entries for its template naming several users, or
        a stamp naming another, mean an entry was appended (or a stamp written) by hand."""
        found = self.registry.get(f"{name}/{version}")
        entries = [e for e in self.entries("register", name, version=int(version))
                   if json.loads(e.after or "{}").get("template") == found.template]
        stamp = (found.tags or {}).get(TAG_AUTHOR)
        users = {e.user for e in entries}
        if len(users) < 2 and (stamp is None or not users or users == {stamp}):
            return None
        named = ", ".join(f"{e.user} (entry #{e.seq})" for e in entries)
        return (f"v{version}'s author is disputed: the audit log names {named or 'nobody'}"
                + (f", the stamp on it names {stamp}" if stamp else "") + " — a register entry or stamp was forged")

    def all(self, name: str, version: int, alias: str, *, evidence_run_id: str | None = None) -> list[Check]:
        if not self.policy.is_protected(alias):
            return []
        rule = self.policy.rule_for(name)
        return [self.evidence(name, version, alias, rule, evidence_run_id), self.approvals(name, version, alias, rule),
                self.contract_check(name, version), self.integrity(name, version)]

    @staticmethod
    def require(checks: list[Check], name: str, version: int, alias: str) -> None:
        """Raise naming every failed check (and listing them all) unless all passed."""
        failed = [c for c in checks if not c.ok]
        if failed:
            lines = "\n".join(f"  {c}" for c in checks)
            raise PermissionDeniedError(f"{name}/{version} cannot take {name}@{alias}; failed: "
                                        f"{', '.join(c.name for c in failed)}\n{lines}\n{name}@{alias} is unchanged.")

    # -- contract and integrity ---------------------------------------------------------------------
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

    def integrity(self, name: str, version: int) -> Check:
        entries = self.entries("register", name, version=int(version))
        entry = self.registered(name, version) or (entries[-1] if entries else None)
        if entry is None:
            return Check("integrity", False, f"v{version} has no register entry in the audit log: it was created "
                                             "outside promptyard; register it through promptyard")
        disputed = self.disputed(name, version)
        if disputed:
            return Check("integrity", False, disputed)
        recorded = json.loads(entry.after or "{}")
        found = self.registry.get(f"{name}/{version}")
        now = {"template": found.template, "response_format": found.response_format,
               "model_config": found.model_config}
        changed = sorted(k for k in recorded if k in now and (recorded[k] or None) != (now[k] or None))
        if changed:
            return Check("integrity", False, f"v{version}'s {', '.join(changed)} changed after it was registered "
                                             f"(audit entry #{entry.seq})")
        return Check("integrity", True, f"v{version} is what {entry.user} registered (audit entry #{entry.seq})")

    # -- approvals ----------------------------------------------------------------------------------
    def approvals(self, name: str, version: int, alias: str, rule: PromotionRule) -> Check:
        if rule.approvals == 0:
            return Check("approval", True, "the policy requires no approval")
        author = self.author_of(name, version)
        if author is None:
            return Check("approval", False, f"the author of v{version} is unknown or disputed (no audit entry, or a "
                                            "stamp that names someone else), so four eyes cannot be checked: register "
                                            "the version through promptyard")
        latest: dict[str, str] = {}
        found = self.registry.get(f"{name}/{version}")
        digest, tags = template_digest(found.template), found.tags or {}
        for entry in sorted(self.entries("approve", name, version=version) + self.entries("reject", name,
                            version=version), key=lambda e: e.seq):
            if entry.alias == alias and json.loads(entry.after or "{}").get("template_sha256") in (digest, None):
                latest[entry.user] = entry.action

        def tagged(prefix: str, user: str) -> bool:  # written by that user (a guarded server checks the login)
            return read_note(tags.get(prefix + user, "")).get("alias") == alias

        rejected = sorted({u for u, action in latest.items() if action == "reject"}
                          | {k.removeprefix(REJECTION) for k in tags if k.startswith(REJECTION)
                             and tagged(REJECTION, k.removeprefix(REJECTION))})
        if rejected:
            return Check("approval", False, f"rejected by {', '.join(rejected)}")
        approvers = sorted(u for u, action in latest.items() if action == "approve" and u != author
                           and tagged(APPROVAL, u)
                           and not self.policy.is_service(u) and self.policy.role_of(u, name) in ("approver", "admin"))
        if len(approvers) < rule.approvals:
            return Check("approval", False, f"{len(approvers)} of {rule.approvals} approval(s) by an approver other "
                                            f"than the author ({author}); ask one to run `promptyard prompts approve "
                                            f"{name} {version} --alias {alias}`")
        return Check("approval", True, f"approved by {', '.join(approvers)} (author {author})")

    # -- evidence -----------------------------------------------------------------------------------
    def evidence(self, name: str, version: int, alias: str, rule: PromotionRule, run_id: str | None = None) -> Check:
        current = self.standing(name, alias)
        if current is None:
            return Check("evidence", True, f"{name}@{alias} does not exist yet: nothing to compare with")
        if current == version:
            return Check("evidence", True, f"v{version} already holds {name}@{alias}")
        if self.registry.alias_version(name, alias) is None and not self.registry.has_version(name, current):
            return Check("evidence", True, f"v{current}, which held {name}@{alias} last, was deleted: nothing to "
                                           "compare with (approval and integrity still apply)")
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
            model = f", model {record.lm_model}" if record.lm_model else ""
            return Check("evidence", True, f"run {run.info.run_id}: {record.split} on {record.dataset}, n={record.n} at "
                                           f"{record.confidence:.0%}, lower bound of v{version} − v{current} "
                                           f"{record.low:+.3f} ≥ −{rule.margin:g}, {age:.1f} days old, recorded by "
                                           f"{entry.user} (audit #{entry.seq}){model}", run.info.run_id)
        return Check("evidence", False, "; ".join(reasons[:3]))

    def _trusted(self, run, name: str, version: int, current: int, rule: PromotionRule):
        """(record, audit entry, age in days) when the run is evidence that counts, else why not."""
        anchors = [e for e in self.entries("evidence", name) if e.evidence_run_id == run.info.run_id]
        if not anchors:
            return ("is not anchored in the audit log: a run made by hand is not evidence (produce it with "
                    "`promptyard ab offline` or an optimization)")
        entry = anchors[-1]
        record = Evidence.from_json(entry.after)
        if not record.matches(run):
            return f"was changed after it was recorded (its tags or metrics differ from audit entry #{entry.seq})"
        stamp = run.data.tags.get(LOGGED_BY)
        if stamp is not None and stamp != entry.user:
            return (f"was logged by {stamp} (the guarded server's record of the login), but its audit entry #{entry.seq}"
                    f" names {entry.user}")
        if stamp is None and self.attested:
            return ("was not logged through this guarded MLflow server (no record of the login that wrote it): "
                    "produce it with `promptyard ab offline` or an optimization against the server")
        if rule.evidence_by and entry.user not in rule.evidence_by:
            return f"was recorded by {entry.user}; the policy trusts evidence from {', '.join(rule.evidence_by)} only"
        if self.policy.role_of(entry.user, name) not in ("editor", "approver", "admin"):
            return f"was recorded by {entry.user}, who is not an editor of {name}"
        if rule.evidence_models and record.split != "online" and record.lm_model not in rule.evidence_models:
            return f"was measured with model {record.lm_model}; the policy accepts {', '.join(rule.evidence_models)}"
        if record.split == "online" and not self._experiment_ran(name, record):
            return f"names experiment {record.dataset}, which the audit log never saw start on {name} with these versions"
        age = (self.now() - _seconds(entry)) / 86400
        required = None
        if rule.dataset and record.split != "online":
            try:
                required = load_card(rule.dataset).name
            except PromptyardError as exc:
                return f"cannot be checked: the policy's dataset {rule.dataset!r} cannot be read ({exc})"
        problem = evidence_problem(record, prompt=name, version=version, current=current, rule=rule, age_days=age,
                                   required_dataset=required,
                                   current_digest=lambda e: dataset_digest(rule.dataset or e.dataset_path or e.dataset))
        return problem or (record, entry, age)

    def _experiment_ran(self, name: str, record: Evidence) -> bool:
        experiment_id = record.dataset.removeprefix("online:")
        for entry in self.entries("experiment", name):
            split = json.loads(entry.after or "null")
            if entry.reason == "start" and isinstance(split, dict) and split.get("id") == experiment_id and \
                    split.get("control") == record.baseline and str(record.candidate) in split.get("weights", {}):
                return True
        return False
