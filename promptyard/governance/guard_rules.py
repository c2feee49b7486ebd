"""What the MLflow server guard decides about one registry write (see `mlflow_guard`).

The request is read as MLflow's own handlers read it — the route Flask matched (never a path
suffix), a JSON body that old clients double-encode, `new_name` spelled `newName` — so the guard
never checks one request while MLflow carries out another. Anything it cannot read that way is
refused as malformed. Then, for a prompt:

- every write needs the editor role; a prompt's versions are prompt versions, authored by the
  caller (the server stamps the author), with no reserved key besides MLflow's own bookkeeping and
  promptyard's descriptive provenance;
- a protected alias moves by promotion or rollback (`Governance.authorize_alias_move`); deleting
  one, or deleting or renaming a prompt or version that holds one (or takes its traffic in an A/B
  split), needs admin, as does renaming any prompt (its audit history stays with the old name) and
  changing a version's description or stage (versions are immutable);
- reserved tags: see `_check_prompt_tag` and `_check_version_tag`.

For a registered model that is not a prompt, MLflow's own permissions apply, except that making it
a prompt, or putting a reserved key on it or its versions, needs admin; creating a prompt needs the
editor role. A tag key or alias that only looks like a reserved one (another case, width or
surrounding space: the same row on a case-insensitive database) is refused everywhere.
"""

from __future__ import annotations

import json
import unicodedata

from promptyard.errors import PermissionDeniedError
from promptyard.governance.actions import Governance
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
    fold,
    is_reserved,
    looks_like,
    read_note,
)
from promptyard.registry import TAG_CONTRACT

__all__ = ["WRITES", "BEHIND_THE_GUARD", "read_request", "check"]

WRITES = {  # MLflow's view function -> the registry write it makes
    "_create_registered_model": "registered-models/create", "_rename_registered_model": "registered-models/rename",
    "_update_registered_model": "registered-models/update", "_delete_registered_model": "registered-models/delete",
    "_set_registered_model_tag": "registered-models/set-tag",
    "_delete_registered_model_tag": "registered-models/delete-tag",
    "_set_registered_model_alias": "registered-models/alias",
    "_delete_registered_model_alias": "registered-models/alias",
    "_create_model_version": "model-versions/create", "_update_model_version": "model-versions/update",
    "_transition_stage": "model-versions/transition-stage", "_delete_model_version": "model-versions/delete",
    "_set_model_version_tag": "model-versions/set-tag", "_delete_model_version_tag": "model-versions/delete-tag",
}
BEHIND_THE_GUARD = {  # MLflow endpoints that write prompts from inside the server, where nothing can check them
    "_create_prompt_optimization_job": ("start a server-side prompt optimization job", "it registers prompt versions "
                                        "straight into the store (no author, no audit); run `promptyard optimize`"),
    "_generate_demo": ("generate MLflow's demo data", "it registers prompts and moves their production alias "
                                                      "straight in the store"),
    "_delete_demo": ("delete MLflow's demo data", "it deletes prompts and their production alias straight in the "
                                                  "store"),
}
_LINKS = frozenset({"mlflow.prompt.associatedRunIds", "_mlflow_experiment_ids"})  # MLflow's links to runs: editors
_PREFIXES = (RESERVED, "mlflow.prompt.", "_mlflow_")
_MODEL_RESERVED = (RESERVED, "mlflow.prompt.", "_mlflow_prompt")  # never on a registered model that is no prompt
_TEXT_FIELDS = ("name", "alias", "key", "value", "new_name", "newName", "description", "stage", "source")
_NEEDS = {"registered-models/rename": ("new_name",), "registered-models/alias": ("alias",),
          "registered-models/set-tag": ("key",), "registered-models/delete-tag": ("key",),
          "model-versions/update": ("version",), "model-versions/transition-stage": ("version", "stage"),
          "model-versions/delete": ("version",), "model-versions/set-tag": ("version", "key"),
          "model-versions/delete-tag": ("version", "key")}


def _malformed(problem: str) -> PermissionDeniedError:
    return PermissionDeniedError(f"malformed request: {problem}; the guard refuses what it cannot read as MLflow does.")


def read_request(body, action: str, method: str) -> dict:
    """The request's fields as MLflow's handlers read them (body only; a double-encoded body decoded
    once), or raise naming what is malformed or missing."""
    if isinstance(body, str):  # MLflow decodes a JSON string body a second time (old clients)
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            raise _malformed("the body is a JSON string that is not JSON itself") from None
    data = {} if body is None else body
    if not isinstance(data, dict):
        raise _malformed(f"the body must be a JSON object, got {type(data).__name__}")
    data = dict(data)
    if "new_name" in data and "newName" in data:
        raise _malformed("new_name given twice (new_name and newName)")
    if "newName" in data:
        data["new_name"] = data.pop("newName")
    for name in _TEXT_FIELDS:
        if name in data and not isinstance(data[name], str):
            raise _malformed(f"{name} must be a string, got {data[name]!r}")
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, str | int)):
        raise _malformed(f"version must be a version number, got {version!r}")
    tags = data.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, dict) and isinstance(t.get(
            "key"), str) and isinstance(t.get("value", ""), str) for t in tags)):
        raise _malformed("tags must be a list of {\"key\": ..., \"value\": ...} strings")
    needed = ("name", *_NEEDS.get(action, ()), *(("version",) if action == "registered-models/alias" and
                                                 method == "POST" else ()))
    missing = [field for field in needed if data.get(field) in (None, "")]
    if missing:
        raise _malformed(f"{', '.join(missing)} missing")
    return data


def _version(data: dict) -> int:
    value = str(data.get("version", "")).strip()
    if not value.isdigit():
        raise PermissionDeniedError(f"version {data.get('version')!r} is not a version number.")
    return int(value)


def _fold(text: str) -> str:
    return fold(text)


def _refuse_lookalike_key(governance: Governance, name: str, key: str, delete: bool) -> None:
    """A key that folds onto a reserved one: never set; removed only by an admin (cleaning up)."""
    if is_reserved(key) and (not key.startswith(_PREFIXES) or key != unicodedata.normalize("NFKC", key).strip()):
        what = (f"tag {key!r} looks like a reserved key (promptyard.*, mlflow.prompt.*, _mlflow_*) in another case, "
                "width, spacing or script, which a case-insensitive database may store as that key")
        if not delete:
            raise PermissionDeniedError(f"{what}: rename the tag.")
        governance.require("admin", name, f"delete {what}")


def _refuse_lookalike_alias(governance: Governance, name: str, alias: str, delete: bool) -> None:
    like = [a for a in sorted(governance.policy.protected_aliases) if looks_like(alias, fold(a)) and a != alias]
    if like:
        what = (f"alias {alias!r} looks like the protected alias {like[0]!r} (another case, width or script: the "
                "same alias on a case-insensitive database, or one a person cannot tell from it)")
        if not delete:
            raise PermissionDeniedError(f"{what}: use another name.")
        governance.require("admin", name, f"delete {what}")


def check(governance: Governance, action: str, method: str, data: dict):
    """Raise why the request may not happen; return what to record once MLflow has made it (or None)."""
    name = data["name"]
    tags = {t["key"]: t.get("value", "") for t in data.get("tags") or []}
    for key in tags:
        _refuse_lookalike_key(governance, name, key, False)
    if "key" in data:
        _refuse_lookalike_key(governance, name, data["key"], action.endswith("delete-tag"))
    if action == "registered-models/create":
        return _create(governance, name, tags)
    if governance.registry.prompt(name) is None:  # a registered model, not a prompt: MLflow's own rules...
        return _check_model(governance, action, name, data, tags)
    governance.require("editor", name, "change prompts")
    if action == "registered-models/alias":
        return _check_alias(governance, method, name, data["alias"], data)
    if action in ("registered-models/set-tag", "registered-models/delete-tag"):
        _check_prompt_tag(governance, name, data["key"], data.get("value"), action.endswith("delete-tag"))
        return "tag", name, None, data["key"], data.get("value")
    if action in ("model-versions/set-tag", "model-versions/delete-tag"):
        version = _version(data)
        _check_version_tag(governance, name, version, data["key"], data.get("value"), action.endswith("delete-tag"))
        return "tag", name, version, data["key"], data.get("value")
    if action == "model-versions/create":
        return _register(governance, name, tags)
    if action in ("model-versions/update", "model-versions/transition-stage"):
        governance.require("admin", name, f"change {name}/{data['version']} (a version is immutable, its "
                                          "description and stage too)")
        return "changed", name, _version(data), None, action.rsplit("/", 1)[-1]
    if action == "registered-models/update":
        return "changed", name, None, None, "description"
    return _check_removal(governance, action, name, data)


def _create(governance: Governance, name: str, tags: dict):
    if IS_PROMPT not in tags:
        _no_reserved(tags, f"creating registered model {name}", allowed=set(), model=True)
        return None
    if tags[IS_PROMPT] != "true":
        raise PermissionDeniedError(f"creating {name}: {IS_PROMPT} must be 'true' (a prompt) or absent (a model), "
                                    f"not {tags[IS_PROMPT]!r}.")
    governance.require("editor", name, "create prompts")
    _no_reserved(tags, f"creating prompt {name}", allowed={IS_PROMPT})
    return None


def _check_model(governance: Governance, action: str, name: str, data: dict, tags: dict):
    """A registered model that is not a prompt: MLflow's permissions, but promptyard's keys are not for it
    (an admin's change to them is audited: making a model a prompt brings its aliases and tags along)."""
    if action == "model-versions/create":
        _no_reserved(tags, f"registering a version of {name} (a registered model, not a prompt)", allowed=set(),
                     model=True)
    if not action.endswith(("set-tag", "delete-tag")) or not (data["key"] == IS_PROMPT or data["key"].startswith(
            _MODEL_RESERVED)):
        return None
    delete = action.endswith("delete-tag")
    if data["key"] == IS_PROMPT and action.startswith("registered-models/"):
        governance.require("admin", name, f"turn a registered model into a prompt{' or back' if delete else ''}")
    else:
        governance.require("admin", name, f"{'delete' if delete else 'set'} the reserved tag {data['key']!r} on "
                                          f"registered model {name}, which is not a prompt")
    version = _version(data) if action.startswith("model-versions/") else None
    return "tag", name, version, data["key"], data.get("value")


def _check_alias(governance: Governance, method: str, name: str, alias: str, data: dict):
    _refuse_lookalike_alias(governance, name, alias, method == "DELETE")
    if method == "DELETE":
        if governance.policy.is_protected(alias):
            governance.require("admin", name, f"delete protected alias {alias!r} (apps read it)")
        return "alias-deleted", name, None, alias, governance.registry.alias_version(name, alias)
    version = _version(data)
    action = governance.authorize_alias_move(name, alias, version)
    return action, name, version, alias, governance.registry.alias_version(name, alias)


def _register(governance: Governance, name: str, tags: dict):
    governance.require("editor", name, "register versions")
    if tags.get(IS_PROMPT) != "true" or "mlflow.prompt.text" not in tags:
        raise PermissionDeniedError(f"registering {name}: a version of a prompt is a prompt version (tags {IS_PROMPT}"
                                    "='true' and mlflow.prompt.text): register it as a prompt.")
    _no_reserved(tags, f"registering {name}", allowed={TAG_AUTHOR, *PROVENANCE_KEYS, *(
        k for k in tags if k.startswith(("mlflow.prompt.", "_mlflow_")))})  # MLflow's own keys on a new version
    if tags.get(TAG_AUTHOR, governance.user) != governance.user:
        raise PermissionDeniedError(f"{governance.user} cannot register a version authored by {tags[TAG_AUTHOR]!r}: "
                                    "the server records the author.")
    return "register", name, None, None, None


def _check_removal(governance: Governance, action: str, name: str, data: dict):
    """Delete a prompt or version, or rename a prompt."""
    version = _version(data) if action == "model-versions/delete" else None
    if action == "registered-models/rename":
        new_name = data["new_name"]
        for which in (name, new_name):
            governance.require("admin", which, f"rename prompt {name} to {new_name} (its audit history: authors, "
                                               "approvals, evidence, stays with the old name)")
    holding = []
    for alias in sorted(governance.policy.protected_aliases):
        current = governance.promotion.standing(name, alias)  # on it now, or last (a removed alias still counts)
        split = read_note(governance.registry.prompt_tags(name).get(EXPERIMENT + alias) or "null")
        in_split = {str(v) for v in split.get("weights") or {}} if isinstance(split.get("weights"), dict) else set()
        if current is not None and (version is None or current == version):
            removed = governance.registry.alias_version(name, alias) is None
            holding.append(f"{alias} (removed since)" if removed else alias)
        elif version is not None and str(version) in in_split:
            holding.append(f"{alias} traffic (A/B split)")
    if holding:
        governance.require("admin", name, f"delete or rename {name}{'/' + str(version) if version else ''}, "
                                          f"which holds {', '.join(holding)}")
    if action == "registered-models/rename":
        return "renamed", name, None, None, data["new_name"]
    return "deleted", name, version, None, action


def _no_reserved(tags: dict, what: str, *, allowed: set[str], model: bool = False) -> None:
    for key in tags:
        if key not in allowed and key.startswith(_MODEL_RESERVED if model else _PREFIXES):
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
    elif key.startswith(EXPERIMENT) and key.endswith(".last"):  # the result of the experiment being ended
        running = read_note(governance.registry.prompt_tags(name).get(key.removesuffix(".last")) or "null")
        if delete or not running or read_note(value or "").get("experiment") != running.get("id"):
            governance.require("admin", name, f"{'delete' if delete else 'set'} {key!r} other than as the result of "
                                              "the experiment that is ending (`promptyard ab stop`)")
    elif key.startswith(EXPERIMENT):
        alias = key.removeprefix(EXPERIMENT)
        _refuse_lookalike_alias(governance, name, alias, delete)
        if delete:
            return  # ending an experiment keeps the alias where it is
        current = read_note(governance.registry.prompt_tags(name).get(key) or "null")
        new = read_note(value or "")
        if current and current.get("id") == new.get("id"):
            problem = reallocation_problem(current, new)
            if problem:
                raise PermissionDeniedError(f"{key} cannot change so: {problem}.")
        else:
            governance.check_split(name, alias, new)
    elif key == IS_PROMPT or key.startswith(_PREFIXES):
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
        _check_approval(governance, name, version, key, value, delete)
    elif key.startswith(RESERVED):
        governance.require("admin", name, f"{'delete' if delete else 'set'} the reserved tag {key!r}")


def _check_approval(governance: Governance, name: str, version: int, key: str, value: str | None,
                    delete: bool) -> None:
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
