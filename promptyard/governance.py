"""Governance: roles, earned promotion of protected aliases, approvals, contracts, audit.

Every write that promptyard makes to the registry goes through `Governance`, which checks the
acting user's role in the policy, refuses credentials in templates, stamps the author on new
versions, and appends to the audit log. Moving a protected alias (default `production`) needs:

1. evidence: a run comparing the new version with the alias' current one, paired on a test split
   (optimization or offline A/B) or decided online (A/B analysis), recent, on the dataset the
   policy names, whose interval's lower bound of (new − current) is ≥ −margin;
2. approvals by approvers who are not the version's author (four eyes);
3. the prompt contract: the variables apps send (and, if declared, a constrained output format).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from promptyard.audit import AuditLog
from promptyard.errors import PermissionDeniedError
from promptyard.lm import GenerationConfig
from promptyard.policy import Policy, PromotionRule, current_user, load_policy
from promptyard.registry import Registry
from promptyard.secret_scan import refuse_secrets
from promptyard.templates import variables

__all__ = ["Governance", "Check", "Contract", "evidence_tags", "TAG_AUTHOR", "TAG_CONTRACT"]

TAG_AUTHOR = "promptyard.author"
TAG_CONTRACT = "promptyard.contract"
APPROVAL = "promptyard.approval."
REJECTION = "promptyard.rejection."
EVIDENCE = "promptyard.evidence."


def evidence_tags(prompt: str, baseline: int, candidate: int, dataset: str, split: str) -> dict[str, str]:
    """Tags that make an MLflow run count as promotion evidence (with metric `evidence_diff_low`)."""
    return {f"{EVIDENCE}prompt": prompt, f"{EVIDENCE}baseline": str(baseline),
            f"{EVIDENCE}candidate": str(candidate), f"{EVIDENCE}dataset": dataset, f"{EVIDENCE}split": split}


def _note(value: str) -> dict:
    try:
        note = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return note if isinstance(note, dict) else {}


@dataclass(frozen=True)
class Check:
    name: str  # evidence | approval | contract
    ok: bool
    detail: str
    run_id: str | None = None

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass(frozen=True)
class Contract:
    variables: list[str]
    response_format: bool = False  # versions must constrain their output format
    declared: bool = True  # False: taken from the version currently on the protected alias

    def problems(self, template: str, response_format) -> list[str]:
        have = variables(template)
        found = [f"drops {{{{{v}}}}}" for v in self.variables if v not in have]
        found += [f"needs {{{{{v}}}}}, which apps do not send" for v in have if v not in self.variables]
        if self.response_format and not response_format:
            found.append("has no response_format, which the contract requires")
        return found


@dataclass
class Governance:
    registry: Registry
    policy: Policy
    user: str
    audit: AuditLog
    now: callable = field(default=time.time, repr=False)

    @classmethod
    def from_settings(cls, registry: Registry | None = None, *, user: str | None = None, settings=None) -> Governance:
        from promptyard.settings import get_settings

        settings = settings or get_settings()
        governance = cls(registry or Registry(settings.tracking_uri), load_policy(settings.home_dir),
                         user or current_user(), AuditLog(settings.audit_store_url))
        governance.record_policy_change()
        return governance

    def record_policy_change(self) -> None:
        """A policy file edited in place (e.g. merged in git) is audited the first time it is used."""
        last = self.audit.last("policy", without_prompt=True)
        seen = json.loads(last.after).get("sha256") if last and last.after else None
        if seen == self.policy.digest or (seen is None and self.policy.source == "built-in default"):
            return
        self.audit.append(self.user, "policy", before={"sha256": seen},
                          after={"source": self.policy.source, "sha256": self.policy.digest},
                          reason="policy in force changed (first use of this version)")

    def require(self, role: str, prompt: str, action: str) -> None:
        self.policy.require(self.user, role, prompt, action)

    # -- writing -------------------------------------------------------------------------------
    def register(self, name: str, template: str, *, commit_message: str = "", tags: dict | None = None,
                 generation: GenerationConfig | None = None, available_fields=None):
        self.require("editor", name, "register versions")
        refuse_secrets(template, f"The template of {name}")
        for key, value in (tags or {}).items():
            refuse_secrets(f"{key}={value}", f"Tag {key} of {name}")
        tags = {**(tags or {}), TAG_AUTHOR: self.user}
        version = self.registry.register(name, template, commit_message=commit_message, tags=tags,
                                         generation=generation, available_fields=available_fields)
        self.audit.append(self.user, "register", prompt=name, version=int(version.version), reason=commit_message,
                          after={"template": template, "response_format": version.response_format,
                                 "model_config": version.model_config})
        return version

    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None) -> None:
        """Move a non-protected alias, or create a protected alias that does not exist yet."""
        self.require("editor", name, f"move alias {alias!r}")
        current = self.alias_version(name, alias)
        if current == int(version):
            return
        if self.policy.is_protected(alias):
            if current is not None:
                raise PermissionDeniedError(
                    f"{name}@{alias} is protected (now v{current}): move it with `promptyard prompts promote {name} "
                    f"{version} --to {alias}` (checks evidence, approval and contract), or roll back with "
                    f"`promptyard prompts rollback {name} --to VERSION --alias {alias}`.")
            self._require_checks([self.check_contract(name, int(version))], name, int(version), alias)
        self.registry.set_alias(name, alias, int(version))
        self.audit.append(self.user, "alias", prompt=name, version=int(version), alias=alias, before=current,
                          after=int(version), reason=reason)

    def approve(self, name: str, version: int, *, alias: str = "production", reason: str | None = None,
                reject: bool = False) -> None:
        self.require("approver", name, "approve or reject promotions")
        found = self.registry.get(f"{name}/{version}")
        author = (found.tags or {}).get(TAG_AUTHOR)
        if not reject and author == self.user:
            raise PermissionDeniedError(f"{self.user} registered {name}/{version} and cannot approve it: a "
                                        "different approver must (four eyes).")
        note = json.dumps({"alias": alias, "at": self.now(), "reason": reason or ""})
        mine, other = (REJECTION, APPROVAL) if reject else (APPROVAL, REJECTION)
        self.registry.set_version_tags(name, int(version), {mine + self.user: note})
        if other + self.user in (found.tags or {}):
            self.registry.client.delete_prompt_version_tag(name, int(version), other + self.user)
        self.audit.append(self.user, "reject" if reject else "approve", prompt=name, version=int(version),
                          alias=alias, reason=reason)

    def set_contract(self, name: str, contract: Contract, *, reason: str | None = None) -> None:
        self.require("approver", name, "change the prompt contract")
        before = self.contract(name)
        value = json.dumps({"variables": contract.variables, "response_format": contract.response_format})
        self.registry.client.set_prompt_tag(name, TAG_CONTRACT, value)
        self.audit.append(self.user, "policy", prompt=name, before=asdict(before) if before else None,
                          after=json.loads(value), reason=reason or "contract")

    def promote(self, name: str, version: int, *, alias: str = "production", evidence_run_id: str | None = None,
                reason: str | None = None) -> list[Check]:
        """Run every check; move the alias only if all pass (else raise, naming each failure)."""
        self.require("editor", name, f"promote to {alias!r}")
        version = int(version)
        self.registry.get(f"{name}/{version}")
        current = self.alias_version(name, alias)
        checks = self.checks(name, version, alias, evidence_run_id=evidence_run_id)
        self._require_checks(checks, name, version, alias)
        self.registry.set_alias(name, alias, version)
        evidence = next((c.run_id for c in checks if c.name == "evidence" and c.run_id), None)
        self.audit.append(self.user, "promote", prompt=name, version=version, alias=alias, before=current,
                          after=version, reason=reason, evidence_run_id=evidence)
        return checks

    def is_rollback(self, name: str, version: int, alias: str, current: int | None) -> bool:
        held = {e.version for e in self.audit.entries(name) if e.alias == alias and e.action in
                ("alias", "promote", "rollback")}
        return version in held or (current is not None and version < current)

    def authorize_alias_move(self, name: str, alias: str, version: int) -> str:
        """What moving the alias would be (alias | promote | rollback), or raise why it may not.

        The same decision the SDK makes, for callers that move the alias themselves (the MLflow
        server guard, in front of plain MLflow clients)."""
        version = int(version)
        current = self.alias_version(name, alias)
        if not self.policy.is_protected(alias) or current is None or current == version:
            self.require("editor", name, f"move alias {alias!r}")
            if self.policy.is_protected(alias) and current is None:
                self._require_checks([self.check_contract(name, version)], name, version, alias)
            return "alias"
        role = self.policy.role_of(self.user, name)
        if role in ("approver", "admin") and self.is_rollback(name, version, alias, current):
            return "rollback"
        self.require("editor", name, f"promote to {alias!r}")
        self._require_checks(self.checks(name, version, alias), name, version, alias)
        return "promote"

    def rollback(self, name: str, version: int, *, alias: str = "production", reason: str | None = None) -> None:
        """Put the alias back on a version it held before; approvers only; audited."""
        self.require("approver", name, f"roll back {alias!r}")
        version = int(version)
        self.registry.get(f"{name}/{version}")
        current = self.alias_version(name, alias)
        if not self.is_rollback(name, version, alias, current):
            raise PermissionDeniedError(f"v{version} never held {name}@{alias}: a rollback returns to an earlier "
                                        f"version; use `promptyard prompts promote {name} {version} --to {alias}`.")
        self.registry.set_alias(name, alias, version)
        self.audit.append(self.user, "rollback", prompt=name, version=version, alias=alias, before=current,
                          after=version, reason=reason)

    # -- checks --------------------------------------------------------------------------------
    def checks(self, name: str, version: int, alias: str, *, evidence_run_id: str | None = None) -> list[Check]:
        if not self.policy.is_protected(alias):
            return []
        rule = self.policy.rule_for(name)
        return [self.check_evidence(name, version, alias, rule, evidence_run_id),
                self.check_approvals(name, version, alias, rule), self.check_contract(name, version)]

    def _require_checks(self, checks: list[Check], name: str, version: int, alias: str) -> None:
        failed = [c for c in checks if not c.ok]
        if failed:
            lines = "\n".join(f"  {c}" for c in checks)
            raise PermissionDeniedError(f"{name}/{version} cannot take {name}@{alias}; failed: "
                                        f"{', '.join(c.name for c in failed)}\n{lines}\n{name}@{alias} is unchanged.")

    def check_contract(self, name: str, version: int) -> Check:
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

    def check_approvals(self, name: str, version: int, alias: str, rule: PromotionRule) -> Check:
        if rule.approvals == 0:
            return Check("approval", True, "the policy requires no approval")
        tags = self.registry.get(f"{name}/{version}").tags or {}
        author = tags.get(TAG_AUTHOR)
        rejected = [k.removeprefix(REJECTION) for k, v in tags.items()
                    if k.startswith(REJECTION) and _note(v).get("alias") == alias]
        if rejected:
            return Check("approval", False, f"rejected by {', '.join(rejected)}")
        approvers = []
        for key, value in tags.items():
            who = key.removeprefix(APPROVAL)
            if key.startswith(APPROVAL) and _note(value).get("alias") == alias and who != author:
                role = self.policy.role_of(who, name)
                if role in ("approver", "admin"):
                    approvers.append(who)
        if len(approvers) < rule.approvals:
            return Check("approval", False, f"{len(approvers)} of {rule.approvals} approval(s) by an approver other "
                                            f"than the author ({author or 'unknown'}); ask one to run `promptyard "
                                            f"prompts approve {name} {version} --alias {alias}`")
        return Check("approval", True, f"approved by {', '.join(sorted(approvers))} (author {author or 'unknown'})")

    def check_evidence(self, name: str, version: int, alias: str, rule: PromotionRule,
                       run_id: str | None = None) -> Check:
        current = self.alias_version(name, alias)
        if current is None:
            return Check("evidence", True, f"{name}@{alias} does not exist yet: nothing to compare with")
        if current == version:
            return Check("evidence", True, f"v{version} already holds {name}@{alias}")
        client = self.registry.client
        if run_id:
            runs = [client.get_run(run_id)]
        else:
            experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
            runs = client.search_runs(experiments, filter_string=(
                f"tags.`{EVIDENCE}prompt` = '{name}' and tags.`{EVIDENCE}candidate` = '{version}'"),
                order_by=["attributes.start_time DESC"], max_results=50) if experiments else []
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

    # -- reading -------------------------------------------------------------------------------
    def alias_version(self, name: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            found = self.registry.client.get_prompt_version_by_alias(name, alias)
        except MlflowException:
            return None
        return int(found.version) if found is not None else None

    def contract(self, name: str) -> Contract | None:
        prompt = self.registry.client.get_prompt(name)
        text = (prompt.tags or {}).get(TAG_CONTRACT) if prompt else None
        if text:
            data = json.loads(text)
            return Contract(list(data.get("variables", [])), bool(data.get("response_format")), True)
        for alias in sorted(self.policy.protected_aliases):
            current = self.alias_version(name, alias)
            if current is not None:
                found = self.registry.get(f"{name}/{current}")
                return Contract(variables(self.registry.template_text(found)), False, False)
        return None
