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
  deleting or renaming a prompt or version that holds one or takes its traffic in an A/B split;
- a version is immutable: its template, type, response format and model config never change, and
  its provenance tags are written once, at creation;
- `promptyard.author` is stamped by the server on every new version and cannot be forged; an
  approval or rejection (`promptyard.approval.<user>`) is written or removed only by that user,
  an approver who is not the author and not a service identity;
- prompt-level tags: the contract needs an approver; an A/B split on a protected alias needs an
  approver to start (an editor may reallocate one started with reallocation on, or end one);
  any other `promptyard.*` key, and making a model a prompt or not, need admin;
- evidence: a run's `promptyard.evidence.*` tags and evidence metrics get the login that wrote them
  stamped on the run; a request that names a run twice (run_id / runId / run_uuid disagreeing, which
  MLflow's permission check and its handlers read differently) is refused
  (`promptyard.logged_by`, which no client may write), and promotion here counts evidence only when
  that login is the one its audit entry names;
- every change it allows, and every refusal (MLflow's own permission refusals too), is appended to
  the audit log.
Requests are matched by the route MLflow serves them on and read as MLflow reads them (see
`guard_rules`); a request the guard cannot read so, or from no authenticated user, is refused.
MLflow endpoints that write prompts from inside the server (prompt optimization jobs, demo data)
are refused outright, and the server will not start with MLflow workspaces (one guard, one registry).
The policy and audit log come from the server's environment (PROMPTYARD_HOME /
PROMPTYARD_POLICY_FILE / PROMPTYARD_AUDIT_URL); users are MLflow's basic-auth users.
"""

from __future__ import annotations

import functools
import json
import logging
import os

from promptyard.errors import PermissionDeniedError, PromptyardError, UserError
from promptyard.governance.actions import Governance
from promptyard.governance.audit import AuditLog
from promptyard.governance.checks import template_digest
from promptyard.governance.guard_rules import BEHIND_THE_GUARD, WRITES, check, read_request
from promptyard.governance.guard_runs import RUN_WRITES, check_run_tags, named_runs
from promptyard.governance.policy import load_policy
from promptyard.governance.tags import APPROVAL, EXPERIMENT, LOGGED_BY, REJECTION, TAG_AUTHOR, read_note
from promptyard.registry import Registry
from promptyard.runtime import Tracker, get_settings

__all__ = ["create_app"]

log = logging.getLogger("promptyard.governance.mlflow_guard")
VIA = "via the MLflow REST API"
ANONYMOUS = "(unauthenticated)"
_JOBS = "/ajax-api/3.0/jobs"  # MLflow's job API (FastAPI): jobs run with the store's own credentials
_PROMPT_JOBS = frozenset({"optimize_prompts"})  # jobs that register prompt versions
_ASSISTANT = "/ajax-api/3.0/mlflow/assistant/"  # MLflow's assistant: a coding agent with a shell on the server


def create_app(app=None):
    """MLflow app factory (entry point `mlflow.app`: promptyard-auth)."""
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES

    if MLFLOW_ENABLE_WORKSPACES.get():
        raise UserError("promptyard-auth guards one registry, and MLflow workspaces give each request its own: "
                        "unset MLFLOW_ENABLE_WORKSPACES (or run one guarded server per workspace).")
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as create_basic_auth_app

    served = create_basic_auth_app(flask_app)  # authentication and MLflow's own permissions first
    flask_app.before_request(_guard)
    flask_app.after_request(_record)
    if hasattr(served, "user_middleware"):  # uvicorn: FastAPI in front of Flask, with routes of its own
        from starlette.middleware import Middleware

        served.user_middleware.append(Middleware(_InsideGuard))  # innermost: after MLflow's authentication
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
    return Governance(registry, load_policy(get_settings().home_dir), user, audit, guarded=True)


def _refusal(message: str) -> str:
    return json.dumps({"error_code": "PERMISSION_DENIED", "message": message})


def _refuse(message: str):
    from flask import g, make_response

    g.promptyard_refused = True  # audited already

    response = make_response(_refusal(message), 403)
    response.headers["Content-Type"] = "application/json"
    return response


def _user() -> str | None:
    """Who MLflow authenticated (its basic-auth app, or a custom authorization function)."""
    from flask import g, request

    user = getattr(g, "mlflow_authenticated_user", None)
    return user or (request.authorization.username if request.authorization else None)


def _guard():
    from flask import g, request

    endpoint = request.endpoint or ""
    if request.method != "GET" and len(named_runs(request.get_json(force=True, silent=True), request.args)) > 1:
        exc = PermissionDeniedError(f"malformed request: {request.method} {request.path} names more than one run "
                                    "(run_id, runId, run_uuid, runUuid disagree); name the run once.")
        governance = _governance(_user() or ANONYMOUS)
        governance.record_refusal(exc, f"{request.method} {request.path}", None)
        return _refuse(str(exc))
    if endpoint in RUN_WRITES:
        return _guard_run_tags(RUN_WRITES[endpoint])
    if endpoint not in WRITES and endpoint not in BEHIND_THE_GUARD:
        return None
    action = WRITES.get(endpoint, endpoint.strip("_").replace("_", "-"))
    governance = _governance(_user() or ANONYMOUS)
    data = {}
    try:
        if governance.user == ANONYMOUS:
            raise PermissionDeniedError(f"{request.method} {action}: no authenticated user; the guard decides only "
                                        "for users MLflow authenticated.")
        if endpoint in BEHIND_THE_GUARD:
            what, why = BEHIND_THE_GUARD[endpoint]
            raise PermissionDeniedError(f"Nobody may {what} on a promptyard-guarded server: {why}.")
        data = read_request(request.get_json(force=True, silent=True), action, request.method)
        g.promptyard_change = check(governance, action, request.method, data)
    except (PromptyardError, ValueError, TypeError, KeyError) as exc:
        name = data.get("name") if isinstance(data.get("name"), str) else None
        governance.record_refusal(exc, f"{request.method} {action}", name, version=data.get("version"),
                                  alias=data.get("alias") if isinstance(data.get("alias"), str) else None)
        log.warning("refused %s %s by %s: %s", request.method, action, governance.user, exc)
        return _refuse(str(exc) if isinstance(exc, PromptyardError) else f"malformed request: {exc}")
    return None


def _guard_run_tags(action: str):
    """Run tags: nobody writes the server's stamp; evidence tags get it once MLflow has written them."""
    from flask import g, request

    try:
        g.promptyard_evidence_run = check_run_tags(request.get_json(force=True, silent=True), action)
    except PromptyardError as exc:
        governance = _governance(_user() or ANONYMOUS)
        governance.record_refusal(exc, f"POST {action}", None)
        log.warning("refused %s by %s: %s", action, governance.user, exc)
        return _refuse(str(exc))
    return None


def _stamp_evidence_run(run_id: str, response) -> None:
    """Record on the run which login wrote its evidence tags (promotion checks it against the audit entry)."""
    if not run_id:  # created with the tags: the id is in the response
        run_id = json.loads(response.get_data())["run"]["info"]["run_id"]
    registry, _ = _stores()
    Tracker(registry.tracking_uri).log(run_id, tags={LOGGED_BY: _user()})  # the store itself, not through the server


class _InsideGuard:
    """Refuse, on the FastAPI side, what would change prompts from inside the server: MLflow jobs that
    register prompt versions, and the assistant (a coding agent with a shell on the server host)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path, method = scope.get("path", ""), scope.get("method")
        if scope["type"] != "http" or method in ("GET", "HEAD", "OPTIONS") or not (
                path.rstrip("/").endswith(_JOBS) or _ASSISTANT in path):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            job = json.loads(body or b"{}")
        except ValueError:
            job = None
        name = job.get("job_name") if isinstance(job, dict) else None
        if _ASSISTANT in path:
            why = ("Nobody may drive MLflow's assistant on a promptyard-guarded server: it runs a coding agent with "
                   "a shell on the server host, straight at the stores and the policy.")
        elif name in _PROMPT_JOBS:
            why = (f"Nobody may run MLflow's {name!r} job on a promptyard-guarded server: it registers prompt "
                   "versions straight into the store (no author, no audit); run `promptyard optimize`.")
        else:
            return await self.app(scope, _replay(body, receive), send)
        import anyio
        from starlette.responses import Response

        user = (scope.get("state") or {}).get("username") or ANONYMOUS
        exc = PermissionDeniedError(why)
        await anyio.to_thread.run_sync(lambda: _governance(user).record_refusal(exc, f"{method} {path}", None))
        return await Response(_refusal(why), 403, media_type="application/json")(scope, receive, send)


def _replay(body: bytes, receive):
    """`receive` for an app downstream of a middleware that read the whole body already."""
    replayed = False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _record(response):
    """After MLflow made an allowed change: stamp authors and append to the audit log."""
    from flask import g, request

    if response.status_code == 403 and not getattr(g, "promptyard_refused", False) and (
            request.endpoint in WRITES or request.endpoint in RUN_WRITES):
        _record_mlflow_refusal(request, response)
        return response
    evidence_run = getattr(g, "promptyard_evidence_run", None)
    if evidence_run is not None and response.status_code == 200:
        try:
            _stamp_evidence_run(evidence_run, response)
        except Exception:  # without the stamp the evidence simply does not count behind this server
            log.exception("could not stamp the login on evidence run %s", evidence_run)
    change = getattr(g, "promptyard_change", None)
    if change is None or response.status_code != 200:
        return response
    kind, name, version, key, extra = change
    try:
        governance = _governance(_user())
        _append(governance, request.method, kind, name, version, key, extra, response)
    except Exception:  # the change happened; never turn it into an error after the fact
        log.exception("could not record %s on %s", kind, name)
    return response


def _record_mlflow_refusal(request, response) -> None:
    """A write MLflow's own permissions refused (before the guard looked at it): audited like the guard's."""
    try:
        body = request.get_json(force=True, silent=True)
        data = body if isinstance(body, dict) else {}
        name = data.get("name") if isinstance(data.get("name"), str) else None
        try:
            message = json.loads(response.get_data()).get("message") or ""
        except ValueError:
            message = response.get_data(as_text=True)[:500]
        action = WRITES.get(request.endpoint) or RUN_WRITES[request.endpoint]
        version = data.get("version") if isinstance(data.get("version"), str | int) else None
        _governance(_user() or ANONYMOUS).record_refusal(
            PermissionDeniedError(f"MLflow's permissions refused it: {message}"), f"{request.method} {action}", name,
            version=version, alias=data.get("alias") if isinstance(data.get("alias"), str) else None)
    except Exception:
        log.exception("could not audit a refusal by MLflow's permissions")


def _append(governance: Governance, method: str, kind: str, name: str, version, key, extra, response) -> None:
    user, audit = governance.user, governance.audit
    if kind == "register":
        created = int(json.loads(response.get_data())["model_version"]["version"])
        governance.registry._set_version_tags(name, created, {TAG_AUTHOR: user})
        found = governance.registry.get(f"{name}/{created}")
        audit.append(user, "register", prompt=name, version=created, reason=VIA, after={
            "template": found.template, "response_format": found.response_format, "model_config": found.model_config})
    elif kind == "tag" and key.startswith((APPROVAL, REJECTION)) and method == "POST":
        template = governance.registry.get(f"{name}/{version}").template
        audit.append(user, "approve" if key.startswith(APPROVAL) else "reject", prompt=name, version=version,
                     alias=read_note(extra or "").get("alias"), reason=VIA,
                     after={"template_sha256": template_digest(template)})
    elif kind == "tag":
        audit.append(user, "experiment" if key.startswith(EXPERIMENT) else "tag", prompt=name, version=version,
                     after={key: None if method == "DELETE" else extra}, reason=VIA)
    elif kind == "deleted":  # a prompt deleted: what the audit log knew of its name no longer applies
        audit.append(user, "delete", prompt=name, version=version, after={kind: extra}, reason=VIA)
    elif kind == "renamed":  # neither name keeps what the audit log knew of it (authors, approvals, evidence)
        audit.append(user, "delete", prompt=name, after={"renamed_to": extra}, reason=VIA)
        audit.append(user, "delete", prompt=extra, after={"renamed_from": name}, reason=VIA)
    elif kind == "changed":
        audit.append(user, "tag", prompt=name, version=version, after={kind: extra}, reason=VIA)
    elif kind == "alias-deleted":
        audit.append(user, "alias", prompt=name, alias=key, before=extra, after=None, reason=f"deleted {VIA}")
    else:
        audit.append(user, kind, prompt=name, version=version, alias=key, before=extra, after=version, reason=VIA)
