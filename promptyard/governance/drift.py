"""Aliases moved behind promptyard's back: where a protected alias points now, against where the
audit log last put it. Without the guarded server anyone who can write the MLflow store can move
an alias; this is how that is found afterwards."""

from __future__ import annotations

from promptyard.governance.audit import AuditLog
from promptyard.governance.policy import Policy
from promptyard.registry import Registry

__all__ = ["alias_drift"]


def alias_drift(registry: Registry, audit: AuditLog, policy: Policy) -> list[str]:
    """One line per protected alias that is not where the audit log last put it."""
    problems = []
    for prompt in registry.list():
        for alias in sorted(policy.protected_aliases):
            current = registry.alias_version(prompt.name, alias)
            moves = audit.alias_history(prompt.name, alias)
            audited = moves[-1].version if moves else None
            if current == audited:
                continue
            where = f"v{current}" if current is not None else "nowhere (deleted)"
            last = f"put it on v{audited} (entry {moves[-1].seq})" if moves else "never saw it move"
            problems.append(f"{prompt.name}@{alias} points to {where}, but the audit log {last}: it was moved outside "
                            "promptyard")
    return problems
