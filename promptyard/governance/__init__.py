"""Governance: who may change which prompt, and the record of every change.

Owns the policy (roles per namespace, protected aliases, promotion rules), `Governance` (every
registry write: role check, credential scan, author stamp, audit), the promotion checks
(evidence, four-eyes approval, contract), the tags it owns, the hash-chained audit log with its
write-ahead journal and per-prompt lock, importing
prompt files, and the MLflow server guard (`mlflow_guard`, loaded by `mlflow server --app-name
promptyard-auth`; its decisions in `guard_rules`). May import: `promptyard.evaluation`, `promptyard.registry`,
`promptyard.runtime`, `promptyard.errors`.
"""

from promptyard.governance.actions import Governance
from promptyard.governance.audit import ACTIONS, AuditEntry, AuditLog
from promptyard.governance.checks import Check, PromotionChecks
from promptyard.governance.drift import alias_drift
from promptyard.governance.evidence import Evidence, evidence_problem
from promptyard.governance.experiment_rules import check_weights, reallocation_problem, split_problem
from promptyard.governance.journal import Journal
from promptyard.governance.policy import ROLES, Policy, PromotionRule, current_user, load_policy, parse_policy
from promptyard.governance.prompt_files import ImportResult, import_prompts
from promptyard.governance.secret_scan import find_secrets, redact, refuse_secrets
from promptyard.governance.tags import (
    APPROVAL,
    EVIDENCE,
    PROVENANCE_KEYS,
    REJECTION,
    TAG_AUTHOR,
    evidence_tags,
    is_reserved,
    refuse_reserved,
)

__all__ = [
    "ACTIONS",
    "APPROVAL",
    "EVIDENCE",
    "PROVENANCE_KEYS",
    "REJECTION",
    "ROLES",
    "TAG_AUTHOR",
    "AuditEntry",
    "AuditLog",
    "Check",
    "Evidence",
    "Governance",
    "ImportResult",
    "Journal",
    "Policy",
    "PromotionChecks",
    "PromotionRule",
    "alias_drift",
    "check_weights",
    "current_user",
    "evidence_problem",
    "evidence_tags",
    "is_reserved",
    "find_secrets",
    "import_prompts",
    "load_policy",
    "parse_policy",
    "reallocation_problem",
    "redact",
    "refuse_reserved",
    "refuse_secrets",
    "split_problem",
]
