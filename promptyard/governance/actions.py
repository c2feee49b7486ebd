"""Governed writes: every change promptyard makes to the registry goes through `Governance`.

It checks the acting user's role in the policy, refuses credentials and reserved keys in what
users supply, stamps the author on new versions, and appends to the audit log — refusals too
(who tried what, and why not). A protected alias (default `production`) moves only by `promote`
(evidence, four-eyes approval, contract: see `checks`) or by an approver's `rollback` to a version
that held it before; a service identity never moves one.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property

from promptyard.errors import PermissionDeniedError
from promptyard.governance.audit import AuditLog
from promptyard.governance.checks import Check, PromotionChecks, template_digest
from promptyard.governance.evidence import Evidence
from promptyard.governance.experiment_rules import reallocation_problem, split_problem
from promptyard.governance.journal import Journal
from promptyard.governance.policy import Policy, current_user, load_policy
from promptyard.governance.secret_scan import refuse_secrets
from promptyard.governance.tags import (
    APPROVAL,
    EXPERIMENT,
    PROVENANCE_KEYS,
    REJECTION,
    TAG_AUTHOR,
    refuse_reserved,
)
from promptyard.registry import TAG_CONTRACT, Contract, GenerationConfig, Registry
from promptyard.runtime import Tracker

__all__ = ["Governance"]

_depth = threading.local()  # governed calls under way in this thread: a refusal is audited once, outermost


def _audits_refusals(action: str):
    """Audit a PermissionDeniedError raised by the governed `action` (once), then let it through."""

    def wrap(method):
        signature = inspect.signature(method)

        @functools.wraps(method)
        def governed(self, *args, **kwargs):
            _depth.n = getattr(_depth, "n", 0) + 1
            try:
                return method(self, *args, **kwargs)
            except PermissionDeniedError as exc:
                bound = signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                given = bound.arguments
                prompt = given.get("name") or getattr(given.get("evidence"), "prompt", None)
                self.record_refusal(exc, action, prompt, version=given.get("version"), alias=given.get("alias"))
                raise
            finally:
                _depth.n -= 1

        return governed

    return wrap


@dataclass
class Governance:
    registry: Registry
    policy: Policy
    user: str
    audit: AuditLog
    now: Callable[[], float] = field(default=time.time, repr=False)
    guarded: bool = False  # deciding inside the guarded MLflow server: evidence must carry the server's stamp

    @classmethod
    def from_settings(cls, registry: Registry | None = None, *, user: str | None = None, settings=None) -> Governance:
        from promptyard.runtime import get_settings

        settings = settings or get_settings()
        registry = registry or Registry(settings.tracking_uri)
        governance = cls(registry, load_policy(settings.home_dir), user or current_user(registry.tracking_uri),
                         AuditLog(settings.audit_store_url))
        governance.record_policy_change()
        return governance

    @cached_property
    def journal(self) -> Journal:
        """Per-prompt lock and write-ahead intents: the audit log and the registry never disagree."""
        return Journal(self.audit, self.registry)

    @cached_property
    def promotion(self) -> PromotionChecks:
        """The promotion checks under this policy (runs are read through the tracker)."""
        return PromotionChecks(self.registry, self.policy, Tracker(self.registry.tracking_uri), self.audit, self.now,
                               attested=self.guarded)

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
        try:
            self.policy.require(self.user, role, prompt, action)
        except PermissionDeniedError as exc:
            if getattr(_depth, "n", 0) == 0:  # a direct check (CLI, flow, guard); governed calls audit themselves
                self.record_refusal(exc, action, prompt)
            raise

    def record_refusal(self, exc: Exception, action: str, prompt: str | None, *, version=None,
                       alias: str | None = None) -> None:
        """Who tried what, and why it was refused (once per refusal)."""
        if getattr(exc, "audited", False):
            return
        exc.audited = True
        self.audit.append(self.user, "refused", prompt=prompt, version=int(version) if str(version).isdigit() else None,
                          alias=alias, after={"action": action}, reason=str(exc)[:2000])

    def _refuse_service(self, name: str, alias: str, what: str) -> None:
        if self.policy.is_service(self.user) and self.policy.is_protected(alias):
            raise PermissionDeniedError(
                f"{self.user} is a service identity (policy: {self.policy.source}) and cannot {what} {name}@{alias}: "
                "scheduled work registers versions and moves other aliases; a person promotes.")

    # -- versions and aliases ------------------------------------------------------------------
    @_audits_refusals("register a version")
    def register(self, name: str, template: str, *, commit_message: str = "", tags: dict | None = None,
                 generation: GenerationConfig | None = None, available_fields=None,
                 provenance: dict[str, str] | None = None):
        """Register a version. `tags` are the user's own (reserved keys refused); `provenance` holds
        the optimization's descriptive `promptyard.*` keys and nothing else."""
        self.require("editor", name, "register versions")
        refuse_reserved(tags, f"Registering {name}")
        unknown = sorted(set(provenance or {}) - PROVENANCE_KEYS)
        if unknown:
            raise PermissionDeniedError(f"Registering {name}: {', '.join(unknown)} is not a provenance key "
                                        f"({', '.join(sorted(PROVENANCE_KEYS))}).")
        refuse_secrets(template, f"The template of {name}")
        for key, value in (tags or {}).items():
            refuse_secrets(f"{key}={value}", f"Tag {key} of {name}")
        tags = {**(tags or {}), **(provenance or {}), TAG_AUTHOR: self.user}
        with self.journal.writing(self.user, name, "register", template=template):
            version = self.registry._register(name, template, commit_message=commit_message, tags=tags,
                                              generation=generation, available_fields=available_fields)
            self.audit.append(self.user, "register", prompt=name, version=int(version.version),
                              reason=commit_message, after={"template": template, "response_format":
                                                            version.response_format,
                                                            "model_config": version.model_config})
        return version

    def register_once(self, name: str, template: str, *, generation: GenerationConfig, commit_message: str = "",
                      provenance: dict[str, str] | None = None) -> tuple[object, bool]:
        """The version with exactly this template and request settings, registered unless one exists;
        (version, created). Concurrent callers with the same template get the same version."""
        self.require("editor", name, "register versions")
        with self.journal.locked(name):
            existing = self.registry.find_version(name, template, generation or GenerationConfig())
            if existing is not None:
                return existing, False
            return self.register(name, template, commit_message=commit_message, provenance=provenance,
                                 generation=generation), True

    @_audits_refusals("move an alias")
    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None) -> None:
        """Move a non-protected alias, or create a protected alias that never existed (one that was removed
        comes back only by `promote` or `rollback`)."""
        self.require("editor", name, f"move alias {alias!r}")
        self._refuse_service(name, alias, "set")
        with self.journal.locked(name):  # the check and the move are one step for every process
            current = self.registry.alias_version(name, alias)
            if current == int(version):
                return
            if self.policy.is_protected(alias):
                standing = self.promotion.standing(name, alias)
                if standing is not None:
                    now = f"now v{current}" if current is not None else f"last on v{standing}, then removed"
                    raise PermissionDeniedError(
                        f"{name}@{alias} is protected ({now}): move it with `promptyard prompts promote "
                        f"{name} {version} --to {alias}` (checks evidence, approval and contract), or roll back with "
                        f"`promptyard prompts rollback {name} --to VERSION --alias {alias}`.")
                self.promotion.require([self.promotion.contract_check(name, int(version))], name, int(version),
                                       alias)
            with self.journal.writing(self.user, name, "alias", alias=alias, version=int(version)):
                self.registry._set_alias(name, alias, int(version))
                self.audit.append(self.user, "alias", prompt=name, version=int(version), alias=alias, before=current,
                                  after=int(version), reason=reason)

    @_audits_refusals("promote")
    def promote(self, name: str, version: int, *, alias: str = "production", evidence_run_id: str | None = None,
                reason: str | None = None) -> list[Check]:
        """Run every check; move the alias only if all pass (else raise, naming each failure)."""
        self.require("editor", name, f"promote to {alias!r}")
        self._refuse_service(name, alias, "promote")
        version = int(version)
        self.registry.get(f"{name}/{version}")
        with self.journal.locked(name):
            current = self.registry.alias_version(name, alias)
            checks = self.promotion.all(name, version, alias, evidence_run_id=evidence_run_id)
            self.promotion.require(checks, name, version, alias)
            evidence = next((c.run_id for c in checks if c.name == "evidence" and c.run_id), None)
            with self.journal.writing(self.user, name, "promote", alias=alias, version=version):
                self.registry._set_alias(name, alias, version)
                self.audit.append(self.user, "promote", prompt=name, version=version, alias=alias, before=current,
                                  after=version, reason=reason, evidence_run_id=evidence)
        return checks

    def held(self, name: str, alias: str) -> set[int]:
        """The versions the audit log saw on `name@alias` (this incarnation of the prompt)."""
        return self.promotion.held(name, alias)

    def authorize_alias_move(self, name: str, alias: str, version: int) -> str:
        """What moving the alias would be (alias | promote | rollback), or raise why it may not.

        The same decision the SDK makes, for callers that move the alias themselves (the MLflow
        server guard, in front of plain MLflow clients)."""
        version = int(version)
        current = self.registry.alias_version(name, alias)
        self._refuse_service(name, alias, "move")
        protected = self.policy.is_protected(alias)
        first = protected and current is None and self.promotion.standing(name, alias) is None  # never held before
        if not protected or first or current == version:
            self.require("editor", name, f"move alias {alias!r}")
            if first:
                self.promotion.require([self.promotion.contract_check(name, version)], name, version, alias)
            return "alias"
        role = self.policy.role_of(self.user, name)
        if role in ("approver", "admin") and version in self.held(name, alias):
            self.promotion.require([self.promotion.contract_check(name, version)], name, version, alias)
            return "rollback"
        self.require("editor", name, f"promote to {alias!r}")
        self.promotion.require(self.promotion.all(name, version, alias), name, version, alias)
        return "promote"

    @_audits_refusals("roll back")
    def rollback(self, name: str, version: int, *, alias: str = "production", reason: str | None = None) -> None:
        """Put the alias back on a version the audit log saw on it; approvers only; the contract holds."""
        self.require("approver", name, f"roll back {alias!r}")
        self._refuse_service(name, alias, "roll back")
        version = int(version)
        self.registry.get(f"{name}/{version}")
        with self.journal.locked(name):
            current = self.registry.alias_version(name, alias)
            held = self.held(name, alias)
            if version not in held:
                raise PermissionDeniedError(
                    f"v{version} never held {name}@{alias} (held: {', '.join(f'v{v}' for v in sorted(held)) or 'none'}"
                    f", from the audit log): a rollback returns to an earlier version; use `promptyard prompts "
                    f"promote {name} {version} --to {alias}`.")
            self.promotion.require([self.promotion.contract_check(name, version)], name, version, alias)
            with self.journal.writing(self.user, name, "rollback", alias=alias, version=version):
                self.registry._set_alias(name, alias, version)
                self.audit.append(self.user, "rollback", prompt=name, version=version, alias=alias, before=current,
                                  after=version, reason=reason)

    # -- approvals, contract, evidence, experiments, prompt tags --------------------------------
    @_audits_refusals("approve or reject")
    def approve(self, name: str, version: int, *, alias: str = "production", reason: str | None = None,
                reject: bool = False) -> None:
        self.require("approver", name, "approve or reject promotions")
        if self.policy.is_service(self.user):
            raise PermissionDeniedError(f"{self.user} is a service identity and cannot approve or reject: a person "
                                        "reviews what scheduled work produced.")
        found = self.registry.get(f"{name}/{version}")
        author = self.promotion.author_of(name, int(version))
        if not reject and author in (self.user, None):
            raise PermissionDeniedError(
                f"{self.user} registered {name}/{version} and cannot approve it: a different approver must (four eyes)."
                if author else f"The author of {name}/{version} is unknown (no audit entry and no author stamp), so "
                "four eyes cannot be checked: register the version through promptyard, then approve it.")
        note = json.dumps({"alias": alias, "at": self.now(), "reason": reason or ""})
        mine, other = (REJECTION, APPROVAL) if reject else (APPROVAL, REJECTION)
        # an approval counts only with both: the tag (which a guarded server lets only this user write) and
        # the audit entry. The tag goes first: a refused or crashed tag write leaves no entry that could count.
        self.registry._set_version_tags(name, int(version), {mine + self.user: note})
        if other + self.user in (found.tags or {}):
            self.registry._delete_version_tag(name, int(version), other + self.user)
        self.audit.append(self.user, "reject" if reject else "approve", prompt=name, version=int(version),
                          alias=alias, reason=reason, after={"template_sha256": template_digest(found.template)})

    @_audits_refusals("change the contract")
    def set_contract(self, name: str, contract: Contract, *, reason: str | None = None) -> None:
        self.require("approver", name, "change the prompt contract")
        before = self.promotion.contract(name)
        self.registry._set_prompt_tag(name, TAG_CONTRACT, contract.to_tag())
        self.audit.append(self.user, "policy", prompt=name, before=asdict(before) if before else None,
                          after=json.loads(contract.to_tag()), reason=reason or "contract")

    @_audits_refusals("record evidence")
    def record_evidence(self, run_id: str, evidence: Evidence) -> None:
        """Write the evidence on its run (tags and metrics, for people) and anchor it in the audit log
        (what promotion trusts), by an editor of the prompt."""
        self.require("editor", evidence.prompt, "record promotion evidence")
        self.promotion.tracker.log(run_id, tags=evidence.tags(), metrics=evidence.metrics())
        self.audit.append(self.user, "evidence", prompt=evidence.prompt, version=evidence.candidate,
                          evidence_run_id=run_id, after=json.loads(evidence.to_json()),
                          reason=f"{evidence.split} on {evidence.dataset}: n={evidence.n}, diff {evidence.diff:+.4f}")

    @_audits_refusals("start an experiment")
    def may_start_experiment(self, name: str, alias: str) -> None:
        """An approver on a protected alias (never a service identity), an editor elsewhere."""
        self.require("approver" if self.policy.is_protected(alias) else "editor", name,
                     f"start an experiment on {name}@{alias}")
        self._refuse_service(name, alias, "start an experiment on")

    @_audits_refusals("start an experiment")
    def check_split(self, name: str, alias: str, split: dict) -> None:
        """Refuse a split that is malformed, names another prompt or a stale control, breaks the contract,
        or — on a protected alias — sends traffic to a treatment no second person has looked at: the
        starter's own versions need an approval by another approver first."""
        self.may_start_experiment(name, alias)
        problem = split_problem(split, prompt=name, alias=alias, control=self.registry.alias_version(name, alias))
        if problem:
            raise PermissionDeniedError(f"The experiment on {name}@{alias} is not valid: {problem}.")
        versions = sorted(int(v) for v in split["weights"])
        broken = [c.detail for c in (self.promotion.contract_check(name, v) for v in versions) if not c.ok]
        if broken:
            raise PermissionDeniedError(f"Every version in the split must keep the prompt contract (apps format them "
                                        f"all): {'; '.join(broken)}.")
        if self.policy.is_protected(alias):
            rule = self.policy.rule_for(name)
            for version in (v for v in versions if v != split["control"]):
                author = self.promotion.author_of(name, version)
                if author is None or (author == self.user and not self.promotion.approvals(
                        name, version, alias, rule).ok):
                    raise PermissionDeniedError(
                        f"v{version} would get {name}@{alias} traffic with no second person's eyes on it: "
                        + (f"{self.user} registered it; another approver must approve it first"
                           if author else "its author is unknown; register it through promptyard") + ".")

    @_audits_refusals("start an experiment")
    def start_experiment(self, name: str, alias: str, split: str, *, after) -> None:
        """Store an A/B split on `name@alias` (see `check_split`)."""
        self.check_split(name, alias, json.loads(split))
        self.registry._set_prompt_tag(name, EXPERIMENT + alias, split)
        self.audit.append(self.user, "experiment", prompt=name, alias=alias, after=after, reason="start")

    @_audits_refusals("reallocate an experiment")
    def reallocate_experiment(self, name: str, alias: str, split: str, *, before, after, reason: str) -> None:
        """Move traffic within a running experiment: editors; the same experiment with new weights over
        the same versions, and only one started with reallocation on (its starter consented)."""
        self.require("editor", name, f"reallocate the experiment on {name}@{alias}")
        current = json.loads(self.registry.prompt_tags(name).get(EXPERIMENT + alias) or "{}")
        problem = reallocation_problem(current, json.loads(split))
        if problem:
            raise PermissionDeniedError(f"The experiment on {name}@{alias} cannot be reallocated so: {problem}.")
        self.registry._set_prompt_tag(name, EXPERIMENT + alias, split)
        self.audit.append(self.user, "experiment", prompt=name, alias=alias, before=before, after=after, reason=reason)

    @_audits_refusals("stop an experiment")
    def end_experiment(self, name: str, alias: str, result: str, *, version: int, before: int, reason: str,
                       evidence_run_id: str | None = None) -> None:
        """Remove the split and keep its result (the alias itself moves only by `promote`/`set_alias`)."""
        self.require("editor", name, f"stop the experiment on {name}@{alias}")
        self.registry._set_prompt_tag(name, f"{EXPERIMENT}{alias}.last", result)
        self.registry._delete_prompt_tag(name, EXPERIMENT + alias)
        self.audit.append(self.user, "experiment", prompt=name, alias=alias, version=version, before=before,
                          after=version, reason=reason, evidence_run_id=evidence_run_id)

    @_audits_refusals("tag a prompt")
    def check_user_tags(self, name: str, tags: dict[str, str], where: str) -> None:
        """Refuse (and audit) reserved keys among tags a user supplies, before anything is written."""
        refuse_reserved(tags, where)

    @_audits_refusals("set prompt tags")
    def set_prompt_tags(self, name: str, tags: dict[str, str], *, reason: str | None = None) -> None:
        """Prompt-level tags people set (team, owner, ...): editors; no reserved keys, no credentials; audited."""
        self.require("editor", name, "set prompt tags")
        refuse_reserved(tags, f"Tagging {name}")
        for key, value in tags.items():
            refuse_secrets(f"{key}={value}", f"Tag {key} of {name}")
        before = self.registry.prompt_tags(name)
        for key, value in tags.items():
            self.registry._set_prompt_tag(name, key, value)
        self.audit.append(self.user, "tag", prompt=name, before={k: before.get(k) for k in tags}, after=tags,
                          reason=reason)

