"""Enforce promptyard's policy inside an authenticated MLflow server, for plain MLflow clients too.

MLflow's basic-auth app (`mlflow server --app-name basic-auth`) authenticates users and grants
READ / EDIT / MANAGE per experiment, registered model and prompt. It has no notion of aliases: a
user who may EDIT a prompt may point `production` anywhere. This app closes that gap:

    mlflow server --app-name promptyard-auth ...      # basic-auth + the checks below

It runs MLflow's basic-auth first, then, for prompts only:
- moving a protected alias passes the same decision as `promptyard prompts promote` (role,
  evidence, four-eyes approval, contract) or is a rollback by an approver; deleting one, or
  deleting / renaming a prompt or version that holds one, needs the admin role;
- approval and rejection tags (`promptyard.approval.<user>`) can only be written or removed by
  that user, who must be an approver and, to approve, not the author;
- the author tag is stamped by the server on every new version and cannot be forged or changed;
- every change it allows is appended to the audit log (reason "via the MLflow REST API").
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
from promptyard.governance.policy import load_policy
from promptyard.governance.tags import APPROVAL, REJECTION, TAG_AUTHOR
from promptyard.registry import Registry
from promptyard.runtime import get_settings

__all__ = ["create_app"]

log = logging.getLogger("promptyard.governance.mlflow_guard")
VIA = "via the MLflow REST API"


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


def _governance(user: str):
    """The acting user under the policy in force (read per request: an edited policy applies at once)."""
    registry, audit = _stores()
    return Governance(registry, load_policy(get_settings().home_dir), user, audit)


def _body() -> dict:
    from flask import request

    return request.get_json(force=True, silent=True) or dict(request.args)


def _refuse(message: str):
    from flask import make_response

    response = make_response(json.dumps({"error_code": "PERMISSION_DENIED", "message": message}), 403)
    response.headers["Content-Type"] = "application/json"
    return response


def _protected_aliases_on(governance, name: str, version: int | None = None) -> list[str]:
    found = []
    for alias in sorted(governance.policy.protected_aliases):
        current = governance.registry.alias_version(name, alias)
        if current is not None and (version is None or current == int(version)):
            found.append(alias)
    return found


def _guard():
    from flask import g, request

    path, method = request.path, request.method
    watched = ("/mlflow/registered-models/alias", "/mlflow/model-versions/set-tag", "/mlflow/model-versions/delete-tag",
               "/mlflow/model-versions/create", "/mlflow/registered-models/delete", "/mlflow/model-versions/delete",
               "/mlflow/registered-models/rename")
    if not path.endswith(watched) or method not in ("POST", "DELETE"):
        return None
    data = _body()
    name = data.get("name")
    user = request.authorization.username if request.authorization else None
    if not name or not user:
        return None  # MLflow answers malformed or anonymous requests itself
    try:
        governance = _governance(user)
        if governance.registry.prompt(name) is None:
            return None  # a registered model, not a prompt
        if path.endswith("/registered-models/alias"):
            alias = data.get("alias", "")
            if method == "DELETE":
                if governance.policy.is_protected(alias):
                    governance.require("admin", name, f"delete protected alias {alias!r} (apps read it)")
                return None
            action = governance.authorize_alias_move(name, alias, int(data["version"]))
            g.promptyard_change = (action, name, int(data["version"]), alias,
                                   governance.registry.alias_version(name, alias))
        elif path.endswith(("/model-versions/set-tag", "/model-versions/delete-tag")):
            _check_tag(governance, name, int(data["version"]), data.get("key", ""), method == "DELETE",
                       data.get("value"))
            g.promptyard_change = ("tag", name, int(data["version"]), data.get("key", ""), data.get("value"))
        elif path.endswith("/model-versions/create"):
            governance.require("editor", name, "register versions")
            for tag in data.get("tags") or []:
                if tag.get("key") == TAG_AUTHOR and tag.get("value") != user:
                    raise _denied(f"{user} cannot register a version authored by {tag.get('value')!r}: the server "
                                  "records the author.")
            g.promptyard_change = ("register", name, None, None, None)
        else:  # deleting or renaming a prompt or version that apps read through a protected alias
            version = data.get("version")
            holding = _protected_aliases_on(governance, name, version)
            if holding:
                governance.require("admin", name, f"delete or rename {name}{'/' + str(version) if version else ''}, "
                                                  f"which holds {', '.join(holding)}")
    except PromptyardError as exc:
        log.warning("refused %s %s by %s: %s", method, path, user, exc)
        return _refuse(str(exc))
    return None


def _denied(message: str):
    return PermissionDeniedError(message)


def _check_tag(governance, name: str, version: int, key: str, delete: bool, value: str | None) -> None:
    if key == TAG_AUTHOR:
        raise _denied(f"The author of {name}/{version} is recorded by the server and cannot be changed.")
    if key.startswith((APPROVAL, REJECTION)):
        who = key.split(".", 2)[2] if key.count(".") >= 2 else ""
        if who != governance.user:
            raise _denied(f"{governance.user} cannot write or remove the approval or rejection of {who!r}.")
        if not delete:
            governance.require("approver", name, "approve or reject promotions")
            try:
                note = json.loads(value or "")
            except json.JSONDecodeError:
                note = None
            if not isinstance(note, dict) or not isinstance(note.get("alias"), str):
                raise _denied(f"{key} must be JSON like {{\"alias\": \"production\", \"reason\": \"...\"}}; "
                              "or run `promptyard prompts approve`.")
            author = (governance.registry.get(f"{name}/{version}").tags or {}).get(TAG_AUTHOR)
            if key.startswith(APPROVAL) and author == governance.user:
                raise _denied(f"{governance.user} registered {name}/{version} and cannot approve it: a different "
                              "approver must (four eyes).")


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
            governance.registry.set_version_tags(name, created, {TAG_AUTHOR: user})
            governance.audit.append(user, "register", prompt=name, version=created, reason=VIA)
        elif kind == "tag":
            if key.startswith((APPROVAL, REJECTION)) and request.method == "POST":
                alias = json.loads(extra or "{}").get("alias") if (extra or "").startswith("{") else None
                governance.audit.append(user, "approve" if key.startswith(APPROVAL) else "reject", prompt=name,
                                        version=version, alias=alias, reason=VIA)
        else:
            governance.audit.append(user, kind, prompt=name, version=version, alias=key, before=extra,
                                    after=version, reason=VIA)
    except Exception:  # the change happened; never turn it into an error after the fact
        log.exception("could not record %s on %s", kind, name)
    return response
