"""Who may do what to which prompts: roles per namespace, read from a versioned YAML file.

    # promptyard-policy.yaml
    protected_aliases: [production]
    service_users: [scheduler]  # identities that run scheduled work: never a protected alias
    roles:                      # name prefix -> role -> users ("*" = everyone)
      "":        {viewer: ["*"], editor: [scheduler], admin: [carol]}
      "support.": {editor: [alice], approver: [bob]}
    promotion:                  # what moving a protected alias needs, by name prefix
      "":        {approvals: 1, max_evidence_age_days: 30, margin: 0.01, min_examples: 100}
      "support.": {dataset: intent_recognition}

Namespaces are dotted name prefixes (`support.` covers `support.refund`, `support.billing`),
since MLflow prompt names allow letters, digits, '.', '-' and '_' only.
Roles are ordered: viewer < editor < approver < admin; a user's role on a prompt is the highest
role any matching prefix gives them. The file is looked up at PROMPTYARD_POLICY_FILE, then
`<home>/policy.yaml`, then `./promptyard-policy.yaml`; without one, the built-in policy lets
every user edit, approve and administer, and still requires evidence and an approval by a
second person to move `production`.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from promptyard.errors import PermissionDeniedError, PolicyError, TrackingUnavailableError

__all__ = ["ROLES", "Policy", "PromotionRule", "current_user", "load_policy", "find_policy_file", "parse_policy"]

ROLES = ("viewer", "editor", "approver", "admin")
_TOP_KEYS = {"protected_aliases", "service_users", "roles", "promotion", "version"}

DEFAULT_POLICY = """\
protected_aliases: [production]
roles:
  "": {admin: ["*"]}
promotion:
  "": {approvals: 1, max_evidence_age_days: 30, margin: 0.01, accept_online: true}
"""


class PromotionRule(BaseModel):
    """What moving a protected alias needs (the `promotion:` settings for a name prefix)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvals: StrictInt = Field(1, ge=0, description="Approvals by approvers other than the author.")
    dataset: str | None = Field(None, description="The dataset offline evidence must be measured on.")
    max_evidence_age_days: float = Field(30.0, gt=0, strict=True, description="Oldest evidence accepted, in days.")
    margin: float = Field(0.01, ge=0, strict=True, description="Not worse: the interval's lower bound of (new − current) ≥ −margin.")
    accept_online: StrictBool = Field(True, description="An online A/B decision counts as evidence.")
    min_examples: StrictInt = Field(100, ge=1, description="Fewest paired examples (or units, online) in evidence.")
    min_confidence: float = Field(0.95, gt=0, lt=1, strict=True, description="Lowest confidence of the evidence's interval.")
    evidence_by: list[str] = Field(default_factory=list, description="Only evidence recorded by these identities "
                                                                     "counts (empty: anyone with the editor role).")
    evidence_models: list[str] = Field(default_factory=list, description="Only evidence measured with these models "
                                                                         "counts (empty: any model).")


@dataclass(frozen=True)
class Policy:
    protected_aliases: frozenset[str]
    roles: dict[str, dict[str, frozenset[str]]]  # prefix -> role -> users
    promotion: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "built-in default"
    digest: str = ""
    service_users: frozenset[str] = frozenset()

    def is_service(self, user: str) -> bool:
        """An identity that runs scheduled work: it may register and move other aliases, never a
        protected one, and its approvals do not count."""
        return user in self.service_users

    def role_of(self, user: str, prompt: str) -> str | None:
        best = -1
        for prefix, roles in self.roles.items():
            if prompt.startswith(prefix):
                for role, users in roles.items():
                    if user in users or "*" in users:
                        best = max(best, ROLES.index(role))
        return ROLES[best] if best >= 0 else None

    def known_users(self) -> set[str]:
        return {u for roles in self.roles.values() for users in roles.values() for u in users if u != "*"}

    def require(self, user: str, role: str, prompt: str, action: str) -> None:
        if role not in ROLES:
            raise PolicyError(f"Unknown role {role!r}: roles are {', '.join(ROLES)}.")
        have = self.role_of(user, prompt)
        if have is None:
            known = ", ".join(sorted(self.known_users())) or "none named"
            raise PermissionDeniedError(
                f"Unknown user {user!r}: the policy ({self.source}) gives them no role on {prompt!r} "
                f"(users in the policy: {known}). Ask an admin to add them, or set PROMPTYARD_USER."
            )
        if ROLES.index(have) < ROLES.index(role):
            raise PermissionDeniedError(
                f"{user} is {have} on {prompt!r} and cannot {action}: that needs the {role} role "
                f"(policy: {self.source})."
            )

    def rule_for(self, prompt: str) -> PromotionRule:
        merged: dict[str, Any] = {}
        for prefix in sorted(self.promotion, key=len):  # longer prefixes override shorter ones
            if prompt.startswith(prefix):
                merged.update(self.promotion[prefix])
        return PromotionRule(**merged)

    def is_protected(self, alias: str) -> bool:
        return alias in self.protected_aliases


def current_user(tracking_uri: str | None = None) -> str:
    """The acting user: the MLflow user a team server authenticates (only when the tracking URI is a
    server, and only once it accepted the password: locally nothing checks that name), else
    PROMPTYARD_USER, else the OS user."""
    if tracking_uri is None:
        from promptyard.runtime import get_settings

        tracking_uri = get_settings().tracking_uri
    server_user = os.environ.get("MLFLOW_TRACKING_USERNAME") if tracking_uri.startswith("http") else None
    if server_user:
        confirm_login(tracking_uri.rstrip("/"), server_user, os.environ.get("MLFLOW_TRACKING_PASSWORD") or "")
        return server_user
    if tracking_uri.startswith("http") and _asks_for_login(tracking_uri.rstrip("/")):
        raise PermissionDeniedError(f"MLflow at {tracking_uri} authenticates its users, so promptyard acts only as a "
                                    "login it confirms: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
                                    "(PROMPTYARD_USER names nobody here).")
    return os.environ.get("PROMPTYARD_USER") or getpass.getuser()


@functools.lru_cache(maxsize=32)
def _asks_for_login(server: str) -> bool:
    """Whether the server refuses anonymous requests (False when it does not answer: the caller's own call
    to it will say so)."""
    import httpx

    try:
        return httpx.get(f"{server}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "Default"},
                         timeout=10).status_code == 401
    except httpx.HTTPError:
        return False


@functools.lru_cache(maxsize=32)
def confirm_login(server: str, user: str, password: str) -> None:
    """A name is an identity only once the server accepts its password (once per process): a claimed
    MLFLOW_TRACKING_USERNAME never acts unchecked, even in commands that write nothing to MLflow."""
    import httpx

    try:
        answer = httpx.get(f"{server}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "Default"},
                           auth=(user, password), timeout=10)
    except httpx.HTTPError as exc:
        raise TrackingUnavailableError(f"MLflow at {server} does not answer ({type(exc).__name__}), so the login "
                                       f"{user!r} (MLFLOW_TRACKING_USERNAME) cannot be confirmed: start the server "
                                       "or point the tracking URI at a running one.") from None
    if answer.status_code == 401:
        raise PermissionDeniedError(f"MLflow at {server} refused the login {user!r}: set MLFLOW_TRACKING_PASSWORD to "
                                    "that user's password (promptyard acts only as a login the server confirms).")


def find_policy_file(home: Path) -> Path | None:
    configured = os.environ.get("PROMPTYARD_POLICY_FILE")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise PolicyError(f"PROMPTYARD_POLICY_FILE={configured} does not exist: point it to a policy YAML file.")
        return path
    for path in (home / "policy.yaml", Path("promptyard-policy.yaml")):
        if path.is_file():
            return path
    return None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def parse_policy(text: str, source: str) -> Policy:
    """Parse and validate a policy; every error names the line."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PolicyError(f"Policy {source}{where} does not parse: {getattr(exc, 'problem', exc)}.") from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise PolicyError(f"Policy {source}: expected a mapping with protected_aliases, roles, promotion.")
    data: dict[str, Any] = {}
    for key_node, value_node in root.value:
        if key_node.value not in _TOP_KEYS:
            raise PolicyError(f"Policy {source} line {_line(key_node)}: unknown key {key_node.value!r} "
                              f"(known: {', '.join(sorted(_TOP_KEYS))}).")
        data[key_node.value] = value_node
    aliases = yaml.safe_load(yaml.serialize(data["protected_aliases"])) if "protected_aliases" in data else ["production"]
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise PolicyError(f"Policy {source} line {_line(data['protected_aliases'])}: protected_aliases must be a "
                          "list of alias names, e.g. [production].")
    services = yaml.safe_load(yaml.serialize(data["service_users"])) if "service_users" in data else []
    if not isinstance(services, list) or not all(isinstance(u, str) and u for u in services):
        raise PolicyError(f"Policy {source} line {_line(data['service_users'])}: service_users must be a list of "
                          "user names, e.g. [scheduler].")
    roles: dict[str, dict[str, frozenset[str]]] = {}
    for prefix_node, role_map in _mapping(data.get("roles"), source, "roles"):
        roles[str(prefix_node.value or "")] = {}
        for role_node, users_node in _mapping(role_map, source, f"roles[{prefix_node.value!r}]"):
            if role_node.value not in ROLES:
                raise PolicyError(f"Policy {source} line {_line(role_node)}: unknown role {role_node.value!r} "
                                  f"(roles: {', '.join(ROLES)}).")
            users = yaml.safe_load(yaml.serialize(users_node))
            if not isinstance(users, list) or not all(isinstance(u, str) and u for u in users):
                raise PolicyError(f"Policy {source} line {_line(users_node)}: users of role {role_node.value!r} "
                                  "must be a list of user names, e.g. [alice, bob] or [\"*\"].")
            roles[str(prefix_node.value or "")][role_node.value] = frozenset(users)
    promotion: dict[str, dict[str, Any]] = {}
    for prefix_node, rule_node in _mapping(data.get("promotion"), source, "promotion"):
        promotion[str(prefix_node.value or "")] = _rule(rule_node, source)
    return Policy(frozenset(aliases), roles, promotion, source, hashlib.sha256(text.encode()).hexdigest(),
                  frozenset(services))


def _rule(node: yaml.Node, source: str) -> dict[str, Any]:
    """One `promotion:` mapping, every value checked for its type and range (errors name the line)."""
    rule = yaml.safe_load(yaml.serialize(node)) or {}
    known = sorted(PromotionRule.model_fields)
    if not isinstance(rule, dict):
        raise PolicyError(f"Policy {source} line {_line(node)}: a promotion rule must be a mapping of settings "
                          f"({', '.join(known)}).")
    unknown = sorted(set(rule) - set(known))
    if unknown:
        raise PolicyError(f"Policy {source} line {_line(node)}: unknown promotion setting(s) {', '.join(unknown)} "
                          f"(known: {', '.join(known)}).")
    try:
        PromotionRule(**rule)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        line = next((_line(v) for k, v in node.value if k.value == key), _line(node))
        about = PromotionRule.model_fields[key].description if key in PromotionRule.model_fields else ""
        raise PolicyError(f"Policy {source} line {line}: promotion setting {key}={first.get('input')!r} is not valid: "
                          f"{first['msg']} ({about})") from None
    return rule


def _mapping(node, source: str, what: str):
    if node is None:
        return []
    if not isinstance(node, yaml.MappingNode):
        raise PolicyError(f"Policy {source} line {_line(node)}: {what} must be a mapping.")
    return node.value


def load_policy(home: Path) -> Policy:
    path = find_policy_file(home)
    if path is None:
        return parse_policy(DEFAULT_POLICY, "built-in default")
    return parse_policy(path.read_text(), str(path))
