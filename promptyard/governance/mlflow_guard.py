"""Enforce promptyard's policy inside an authenticated MLflow server, for plain MLflow clients too.

MLflow's basic-auth app (`mlflow server --app-name basic-auth`) authenticates users and grants
READ / EDIT / MANAGE per experiment, registered model and prompt. It has no notion of aliases or
of which tags matter: a user who may EDIT a prompt may point `production` anywhere, write an
approval in someone else's name, or rewrite a version's template in place. This app closes that:

    mlflow server --app-name promptyard-auth ...      # basic-auth + the checks below

It runs MLflow's basic-auth first, then, for prompts (every registry write path MLflow serves):
- moving a protected alias passes the same decision as `promptyard prompts promote` (role,
  evidence, four-eyes approval, contract) or is an approver's rollback to a version the alias held
  (contract kept); a service identity never moves one; deleting one needs the admin role, as does
  deleting or renaming a prompt or version that holds one;
- a version is immutable: its template, type, response format and model config never change, and
  its provenance tags are written once, at creation;
- `promptyard.author` is stamped by the server on every new version and cannot be forged; an
  approval or rejection (`promptyard.approval.<user>`) is written or removed only by that user,
  an approver who is not the author and not a service identity;
- prompt-level tags: the contract needs an approver; an A/B split on a protected alias needs an
  approver to start (an editor may reallocate one started with reallocation on, or end one);
  any other `promptyard.*` key, and making a model a prompt or not, need admin;
- every change it allows, and every refusal, is appended to the audit log.
The policy and audit log come from the server's environment (PROMPTYARD_HOME /
PROMPTYARD_POLICY_FILE / PROMPTYARD_AUDIT_URL); users are MLflow's basic-auth users.
"""

from __future__ import annotations

import functools
import json
import logging
import os

from promptyard.errors import PermissionDeniedError, PromptyardError
from promptyard.governance.actions import Governance
from promptyard.governance.audit import AuditLog
from promptyard.governance.checks import template_digest
from promptyard.governance.policy import load_policy
from promptyard.governance.experiment_rules import reallocation_problem
from promptyard.governance.tags import (
    APPROVAL,
    EXPERIMENT,
    IMMUTABLE_VERSION_KEYS,
    IS_PROMPT,
    PROVENANCE_KEYS,
    REJECTION,
    RESERVED,
    TAG_AUTHOR,
    read_note,
)
from promptyard.registry import TAG_CONTRACT, Registry
from promptyard.runtime import get_settings

__all__ = ["create_app"]

log = logging.getLogger("promptyard.governance.mlflow_guard")
VIA = "via the MLflow REST API"
_WRITES = ("/mlflow/registered-models/create", "/mlflow/registered-models/delete", "/mlflow/registered-models/rename",
           "/mlflow/registered-models/update", "/mlflow/registered-models/set-tag",
           "/mlflow/registered-models/delete-tag", "/mlflow/registered-models/alias", "/mlflow/model-versions/create",
           "/mlflow/model-versions/delete", "/mlflow/model-versions/update", "/mlflow/model-versions/set-tag",
           "/mlflow/model-versions/delete-tag", "/mlflow/model-versions/transition-stage")
_LINKS = frozenset({"mlflow.prompt.associatedRunIds", "_mlflow_experiment_ids"})  # MLflow's links to runs: editors


def create_app(app=None):
    """MLflow app factory (entry point `mlflow.app`: promptyard-auth)."""
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as create_basic_auth_app

    served = create_basic_auth_app(flask_app)  # authentication and MLflow's own permissions first
    flask_app.before_request(_guard)
    flask_app.after_request(_record)
    return served


@functools.lru_cache(maxsize=1)
def _stores():
    """The server's registry and audit log, opened once per server process."""
    from mlflow.server.constants import BACKEND_STORE_URI_ENV_VAR, REGISTRY_STORE_URI_ENV_VAR

    uri = os.environ.get(REGISTRY_STORE_URI_ENV_VAR) or os.environ[BACKEND_STORE_URI_ENV_VAR]
    return Registry(uri), AuditLog(get_settings().audit_store_url)


def _governance(user: str) -> Governance:
    """The acting user under the policy in force (read per request: an edited policy applies at once)."""
    registry, audit = _stores()
    return Governance(registry, load_policy(get_settings().home_dir), user, audit)


def _refuse(message: str):
    from flask import make_response

    response = make_response(json.dumps({"error_code": "PERMISSION_DENIED", "message": message}), 403)
    response.headers["Content-Type"] = "application/json"
    return response


def _guard():
    from flask import g, request

    path, method = request.path, request.method
    if not path.endswith(_WRITES) or method not in ("POST", "DELETE", "PATCH"):
        return None
    data = request.get_json(force=True, silent=True) or dict(request.args)
    name = data.get("name") if isinstance(data, dict) else None
    user = request.authorization.username if request.authorization else None
    if not user or not name:
        return None  # MLflow answers anonymous or nameless requests itself
    governance = _governance(user)
    try:
        if not isinstance(name, str) or not isinstance(data.get("version", ""), str | int):
            raise PermissionDeniedError(f"{path}: name and version must be plain strings, got {name!r}.")
        g.promptyard_change = _check(governance, path, method, name, data)
    except (PromptyardError, ValueError, TypeError, KeyError) as exc:
        governance.record_refusal(exc, f"{method} {path.split('/mlflow/', 1)[-1]}", name if isinstance(name, str)
                                  else None, version=data.get("version"), alias=data.get("alias"))
        log.warning("refused %s %s by %s: %s", method, path, user, exc)
        return _refuse(str(exc) if isinstance(exc, PromptyardError) else f"malformed request: {exc}")
    return None


def _version(data: dict) -> int:
    value = str(data.get("version", "")).strip()
    if not value.isdigit():
        raise PermissionDeniedError(f"version {data.get('version')!r} is not a version number.")
    return int(value)


def _check(governance: Governance, path: str, method: str, name: str, data: dict):
    """Raise why the request may not happen; return what to record once MLflow has made it (or None)."""
    tags = {t.get("key"): t.get("value") for t in data.get("tags") or [] if isinstance(t, dict)}
    if path.endswith("/model-versions/create"):
        _no_reserved(tags, f"registering {name}", allowed={TAG_AUTHOR, *PROVENANCE_KEYS, *_mlflow_bookkeeping(tags)})
    if path.endswith("/registered-models/create"):
        if tags.get(IS_PROMPT) == "true":
            _no_reserved(tags, f"creating prompt {name}", allowed={IS_PROMPT})
        return None
    if governance.registry.prompt(name) is None:  # a registered model, not a prompt: MLflow's own rules...
        if path.endswith(("/registered-models/set-tag", "/registered-models/delete-tag")) and \
                data.get("key") == IS_PROMPT:  # ...except making it one (its aliases and tags come along unchecked)
            governance.require("admin", name, "turn a registered model into a prompt")
        return None
    governance.require("editor", name, "change prompts")
    if path.endswith("/registered-models/alias"):
        alias = data.get("alias", "")
        if method == "DELETE":
            if governance.policy.is_protected(alias):
                governance.require("admin", name, f"delete protected alias {alias!r} (apps read it)")
            return "alias-deleted", name, None, alias, governance.registry.alias_version(name, alias)
        version = _version(data)
        action = governance.authorize_alias_move(name, alias, version)
        return action, name, version, alias, governance.registry.alias_version(name, alias)
    if path.endswith(("/registered-models/set-tag", "/registered-models/delete-tag")):
        _check_prompt_tag(governance, name, data.get("key", ""), data.get("value"), path.endswith("delete-tag"))
        return "tag", name, None, data.get("key", ""), data.get("value")
    if path.endswith(("/model-versions/set-tag", "/model-versions/delete-tag")):
        version = _version(data)
        _check_version_tag(governance, name, version, data.get("key", ""), data.get("value"),
                           path.endswith("delete-tag"))
        return "tag", name, version, data.get("key", ""), data.get("value")
    if path.endswith("/model-versions/create"):
        governance.require("editor", name, "register versions")
        _author_is(governance, tags)
        return "register", name, None, None, None
    if path.endswith(("/model-versions/update", "/model-versions/transition-stage")):
        governance.require("admin", name, f"change {name}/{data.get('version')} (a version is immutable, its "
                                          "description too)")
        return "changed", name, _version(data), None, path.rsplit("/", 1)[-1]
    if path.endswith("/registered-models/update"):
        return "changed", name, None, None, "description"
    version = _version(data) if data.get("version") not in (None, "") else None  # delete or rename
    holding = [a for a in sorted(governance.policy.protected_aliases)
               if (current := governance.registry.alias_version(name, a)) is not None
               and (version is None or current == version)]
    if holding:
        governance.require("admin", name, f"delete or rename {name}{'/' + str(version) if version else ''}, "
                                          f"which holds {', '.join(holding)}")
    return "deleted", name, version, None, path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1]


def _author_is(governance: Governance, tags: dict) -> None:
    if tags.get(TAG_AUTHOR, governance.user) != governance.user:
        raise PermissionDeniedError(f"{governance.user} cannot register a version authored by {tags[TAG_AUTHOR]!r}: "
                                    "the server records the author.")


def _mlflow_bookkeeping(tags: dict) -> set[str]:
    """MLflow's own keys on a new prompt version (its template, type, format): allowed at creation."""
    return {k for k in tags if k.startswith(("mlflow.prompt.", "_mlflow_"))}


def _no_reserved(tags: dict, what: str, *, allowed: set[str]) -> None:
    for key in tags:
        if key not in allowed and str(key).startswith((RESERVED, "mlflow.prompt.", "_mlflow_")):
            raise PermissionDeniedError(f"{what}: tag {key!r} is reserved and written only by promptyard "
                                        "(approvals, evidence, contract, experiments have their own commands).")


def _check_prompt_tag(governance: Governance, name: str, key: str, value: str | None, delete: bool) -> None:
    if key in _LINKS:
        return  # editors (checked above): MLflow links prompts to experiments and runs
    if key == TAG_CONTRACT:
        governance.require("approver", name, "change the prompt contract")
        if not delete and not isinstance(read_note(value or "").get("variables"), list):
            raise PermissionDeniedError(f"{key} must be JSON like {{\"variables\": [\"question\"]}}; or run "
                                        "`promptyard prompts contract`.")
    elif key.startswith(EXPERIMENT) and key.endswith(".last"):
        return  # the result of an experiment that ended: shown, decides nothing
    elif key.startswith(EXPERIMENT):
        alias = key.removeprefix(EXPERIMENT)
        current = read_note(governance.registry.prompt_tags(name).get(key) or "null")
        if delete:
            return  # ending an experiment keeps the alias where it is
        new = read_note(value or "")
        if current and current.get("id") == new.get("id"):
            problem = reallocation_problem(current, new)
            if problem:
                raise PermissionDeniedError(f"{key} cannot change so: {problem}.")
        else:
            governance.check_split(name, alias, new)
    elif key == IS_PROMPT or key.startswith((RESERVED, "mlflow.prompt.", "_mlflow_")):
        governance.require("admin", name, f"{'delete' if delete else 'set'} the reserved prompt tag {key!r}")


def _check_version_tag(governance: Governance, name: str, version: int, key: str, value: str | None,
                       delete: bool) -> None:
    if key in _LINKS:
        return
    if key in IMMUTABLE_VERSION_KEYS or key.startswith(("mlflow.prompt.", "_mlflow_prompt")):
        raise PermissionDeniedError(f"{name}/{version} is immutable: {key!r} (what the version is) cannot change; "
                                    "register a new version instead.")
    if key == TAG_AUTHOR:
        raise PermissionDeniedError(f"The author of {name}/{version} is recorded by the server and cannot be changed.")
    if key in PROVENANCE_KEYS:
        raise PermissionDeniedError(f"{key!r} of {name}/{version} records where the version came from and is written "
                                    "once, when it is registered.")
    if key.startswith((APPROVAL, REJECTION)):
        who = key.removeprefix(APPROVAL).removeprefix(REJECTION)
        if who != governance.user:
            raise PermissionDeniedError(f"{governance.user} cannot write or remove the approval or rejection of {who!r}.")
        if delete:
            return
        governance.require("approver", name, "approve or reject promotions")
        if governance.policy.is_service(governance.user):
            raise PermissionDeniedError(f"{governance.user} is a service identity and cannot approve or reject.")
        if not isinstance(read_note(value or "").get("alias"), str):
            raise PermissionDeniedError(f"{key} must be JSON like {{\"alias\": \"production\", \"reason\": \"...\"}}; "
                                        "or run `promptyard prompts approve`.")
        author = governance.promotion.author_of(name, version)
        if key.startswith(APPROVAL) and author in (governance.user, None):
            raise PermissionDeniedError(f"{governance.user} cannot approve {name}/{version}: "
                                        + ("they registered it (four eyes)." if author else "its author is unknown."))
    elif key.startswith(RESERVED):
        governance.require("admin", name, f"{'delete' if delete else 'set'} the reserved tag {key!r}")


def _record(response):
    """After MLflow made an allowed change: stamp authors and append to the audit log."""
    from flask import g, request

    change = getattr(g, "promptyard_change", None)
    if change is None or response.status_code != 200:
        return response
    kind, name, version, key, extra = change
    user = request.authorization.username
    try:
        governance = _governance(user)
        if kind == "register":
            created = int(json.loads(response.get_data())["model_version"]["version"])
            governance.registry._set_version_tags(name, created, {TAG_AUTHOR: user})
            found = governance.registry.get(f"{name}/{created}")
            governance.audit.append(user, "register", prompt=name, version=created, reason=VIA, after={
                "template": found.template, "response_format": found.response_format,
                "model_config": found.model_config})
        elif kind == "tag" and key.startswith((APPROVAL, REJECTION)) and request.method == "POST":
            template = governance.registry.get(f"{name}/{version}").template
            governance.audit.append(user, "approve" if key.startswith(APPROVAL) else "reject", prompt=name,
                                    version=version, alias=read_note(extra or "").get("alias"), reason=VIA,
                                    after={"template_sha256": template_digest(template)})
        elif kind == "tag":
            governance.audit.append(user, "experiment" if key.startswith(EXPERIMENT) else "tag", prompt=name,
                                    version=version, after={key: None if request.method == "DELETE" else extra},
                                    reason=VIA)
        elif kind == "deleted":  # a prompt deleted: what the audit log knew of its name no longer applies
            governance.audit.append(user, "delete", prompt=name, version=version, after={kind: extra}, reason=VIA)
        elif kind == "changed":
            governance.audit.append(user, "tag", prompt=name, version=version, after={kind: extra}, reason=VIA)
        elif kind == "alias-deleted":
            governance.audit.append(user, "alias", prompt=name, alias=key, before=extra, after=None,
                                    reason=f"deleted {VIA}")
        else:
            governance.audit.append(user, kind, prompt=name, version=version, alias=key, before=extra,
                                    after=version, reason=VIA)
    except Exception:  # the change happened; never turn it into an error after the fact
        log.exception("could not record %s on %s", kind, name)
    return response
