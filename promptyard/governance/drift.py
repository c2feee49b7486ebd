"""What changed behind promptyard's back: the registry against the audit log.

Without the guarded server anyone who can write the MLflow store can move an alias, create a
version, or rewrite one in place. None of it can be prevented there; all of it is found here:
a protected alias that is not where the audit log last put it, a version with no register entry,
and a version whose template, response format or model config is not what was registered.
"""

from __future__ import annotations

from promptyard.governance.audit import AuditLog
from promptyard.governance.checks import PromotionChecks
from promptyard.governance.policy import Policy
from promptyard.registry import Registry
from promptyard.runtime import Tracker

__all__ = ["alias_drift", "registry_drift"]


def alias_drift(registry: Registry, audit: AuditLog, policy: Policy) -> list[str]:
    """Every alias, version or template that is not what the audit log recorded (one line each)."""
    return registry_drift(registry, audit, policy)


def registry_drift(registry: Registry, audit: AuditLog, policy: Policy) -> list[str]:
    checks = PromotionChecks(registry, policy, Tracker(registry.tracking_uri), audit)
    problems = []
    for prompt in registry.list():
        name = prompt.name
        for alias in sorted(policy.protected_aliases):
            current = registry.alias_version(name, alias)
            moves = [e for e in audit.alias_history(name, alias)
                     if e.version is None or e.version in checks.held(name, alias)]
            audited = moves[-1].version if moves else None
            if current != audited:
                where = f"v{current}" if current is not None else "nowhere (deleted)"
                last = f"put it on v{audited} (entry {moves[-1].seq})" if moves else "never saw it move"
                problems.append(f"{name}@{alias} points to {where}, but the audit log {last}: it was moved outside "
                                "promptyard")
        for version in registry.versions(name):
            integrity = checks.integrity(name, int(version.version))
            if not integrity.ok:
                problems.append(f"{name}/{version.version}: {integrity.detail}")
    return problems
