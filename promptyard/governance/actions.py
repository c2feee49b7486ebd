"""Governed writes: every change promptyard makes to the registry goes through `Governance`.

It checks the acting user's role in the policy, refuses credentials in templates and tags,
stamps the author on new versions, and appends to the audit log. A protected alias (default
`production`) moves only by `promote` (evidence, four-eyes approval, contract: see `checks`) or
by an approver's `rollback`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property

from promptyard.errors import PermissionDeniedError
from promptyard.governance.audit import AuditLog
from promptyard.governance.checks import Check, PromotionChecks
from promptyard.governance.policy import Policy, current_user, load_policy
from promptyard.governance.secret_scan import refuse_secrets
from promptyard.governance.tags import APPROVAL, REJECTION, TAG_AUTHOR
from promptyard.registry import TAG_CONTRACT, Contract, GenerationConfig, Registry
from promptyard.runtime import Tracker

__all__ = ["Governance"]

_ALIAS_ACTIONS = ("alias", "promote", "rollback")


@dataclass
class Governance:
    registry: Registry
    policy: Policy
    user: str
    audit: AuditLog
    now: Callable[[], float] = field(default=time.time, repr=False)

    @classmethod
    def from_settings(cls, registry: Registry | None = None, *, user: str | None = None, settings=None) -> Governance:
        from promptyard.runtime import get_settings

        settings = settings or get_settings()
        governance = cls(registry or Registry(settings.tracking_uri), load_policy(settings.home_dir),
                         user or current_user(), AuditLog(settings.audit_store_url))
        governance.record_policy_change()
        return governance

    @cached_property
    def promotion(self) -> PromotionChecks:
        """The promotion checks under this policy (runs are read through the tracker)."""
        return PromotionChecks(self.registry, self.policy, Tracker(self.registry.tracking_uri), self.now)

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

    # -- versions and aliases ------------------------------------------------------------------
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
        current = self.registry.alias_version(name, alias)
        if current == int(version):
            return
        if self.policy.is_protected(alias):
            if current is not None:
                raise PermissionDeniedError(
                    f"{name}@{alias} is protected (now v{current}): move it with `promptyard prompts promote {name} "
                    f"{version} --to {alias}` (checks evidence, approval and contract), or roll back with "
                    f"`promptyard prompts rollback {name} --to VERSION --alias {alias}`.")
            self.promotion.require([self.promotion.contract_check(name, int(version))], name, int(version), alias)
        self.registry.set_alias(name, alias, int(version))
        self.audit.append(self.user, "alias", prompt=name, version=int(version), alias=alias, before=current,
                          after=int(version), reason=reason)

    def promote(self, name: str, version: int, *, alias: str = "production", evidence_run_id: str | None = None,
                reason: str | None = None) -> list[Check]:
        """Run every check; move the alias only if all pass (else raise, naming each failure)."""
        self.require("editor", name, f"promote to {alias!r}")
        version = int(version)
        self.registry.get(f"{name}/{version}")
        current = self.registry.alias_version(name, alias)
        checks = self.promotion.all(name, version, alias, evidence_run_id=evidence_run_id)
        self.promotion.require(checks, name, version, alias)
        self.registry.set_alias(name, alias, version)
        evidence = next((c.run_id for c in checks if c.name == "evidence" and c.run_id), None)
        self.audit.append(self.user, "promote", prompt=name, version=version, alias=alias, before=current,
                          after=version, reason=reason, evidence_run_id=evidence)
        return checks

    def is_rollback(self, name: str, version: int, alias: str, current: int | None) -> bool:
        held = {e.version for e in self.audit.entries(name) if e.alias == alias and e.action in _ALIAS_ACTIONS}
        return version in held or (current is not None and version < current)

    def authorize_alias_move(self, name: str, alias: str, version: int) -> str:
        """What moving the alias would be (alias | promote | rollback), or raise why it may not.

        The same decision the SDK makes, for callers that move the alias themselves (the MLflow
        server guard, in front of plain MLflow clients)."""
        version = int(version)
        current = self.registry.alias_version(name, alias)
        if not self.policy.is_protected(alias) or current is None or current == version:
            self.require("editor", name, f"move alias {alias!r}")
            if self.policy.is_protected(alias) and current is None:
                self.promotion.require([self.promotion.contract_check(name, version)], name, version, alias)
            return "alias"
        role = self.policy.role_of(self.user, name)
        if role in ("approver", "admin") and self.is_rollback(name, version, alias, current):
            return "rollback"
        self.require("editor", name, f"promote to {alias!r}")
        self.promotion.require(self.promotion.all(name, version, alias), name, version, alias)
        return "promote"

    def rollback(self, name: str, version: int, *, alias: str = "production", reason: str | None = None) -> None:
        """Put the alias back on a version it held before; approvers only; audited."""
        self.require("approver", name, f"roll back {alias!r}")
        version = int(version)
        self.registry.get(f"{name}/{version}")
        current = self.registry.alias_version(name, alias)
        if not self.is_rollback(name, version, alias, current):
            raise PermissionDeniedError(f"v{version} never held {name}@{alias}: a rollback returns to an earlier "
                                        f"version; use `promptyard prompts promote {name} {version} --to {alias}`.")
        self.registry.set_alias(name, alias, version)
        self.audit.append(self.user, "rollback", prompt=name, version=version, alias=alias, before=current,
                          after=version, reason=reason)

    # -- approvals, contract, prompt tags ------------------------------------------------------
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
            self.registry.delete_version_tag(name, int(version), other + self.user)
        self.audit.append(self.user, "reject" if reject else "approve", prompt=name, version=int(version),
                          alias=alias, reason=reason)

    def set_contract(self, name: str, contract: Contract, *, reason: str | None = None) -> None:
        self.require("approver", name, "change the prompt contract")
        before = self.promotion.contract(name)
        self.registry.set_prompt_tag(name, TAG_CONTRACT, contract.to_tag())
        self.audit.append(self.user, "policy", prompt=name, before=asdict(before) if before else None,
                          after=json.loads(contract.to_tag()), reason=reason or "contract")

    def set_prompt_tags(self, name: str, tags: dict[str, str], *, reason: str | None = None) -> None:
        """Prompt-level tags people set (team, owner, ...): editors; no credentials; audited."""
        self.require("editor", name, "set prompt tags")
        for key, value in tags.items():
            refuse_secrets(f"{key}={value}", f"Tag {key} of {name}")
        before = self.registry.prompt_tags(name)
        for key, value in tags.items():
            self.registry.set_prompt_tag(name, key, value)
        self.audit.append(self.user, "tag", prompt=name, before={k: before.get(k) for k in tags}, after=tags,
                          reason=reason)
