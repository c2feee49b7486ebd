"""A hostile teammate against the guarded MLflow server (`mlflow server --app-name promptyard-auth`)
with nothing but raw REST calls, as `curl` or a plain `MlflowClient` would make them. Every attack
must be refused naming the key or rule, change nothing in the registry (read straight from the
server's store), and be in the audit log as a refusal by that user."""

import functools
import json
import sqlite3

import pytest
import requests
from click.testing import CliRunner
from test_mlflow_guard import PASSWORD, guarded_server

POLICY = """\
protected_aliases: [production]
roles:
  "": {viewer: ["*"], admin: [admin]}
  "support": {editor: [alice], approver: [bob, dave]}
  "sandbox": {editor: [alice]}
promotion:
  "": {approvals: 1, max_evidence_age_days: 7}
"""
IS_PROMPT = "mlflow.prompt.is_prompt"
TABLES = {"registered_models": "name, description", "registered_model_tags": "name, key, value",
          "registered_model_aliases": "name, alias, version",
          "model_versions": "name, version, current_stage, description",
          "model_version_tags": "name, version, key, value"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`support`: v1 (production) and v2, both alice's."""
    root = tmp_path_factory.mktemp("guard-attacks")
    with guarded_server(root, POLICY, users=("alice", "bob", "dave", "vic")) as uri:
        server = uri, root
        register(server, "alice", "support", "Be kind.\n\nQ: {{question}}")
        ok(rest(server, "alice", "POST", "/mlflow/registered-models/alias",
                {"name": "support", "alias": "production", "version": "1"}))
        register(server, "alice", "support", "Be brief.\n\nQ: {{question}}")
        yield server


def rest(server, user, method, path, body=None, *, raw=None, prefix="/api/2.0", headers=None):
    """One request as sent: the path exactly as written (percent-escapes too), a JSON body or raw bytes."""
    uri, _ = server
    auth = (user, PASSWORD if user == "admin" else f"{user}-password-1")
    if raw is not None:
        headers = {"Content-Type": "application/json", **(headers or {})}
    request = requests.Request(method, f"{uri}{prefix}{path}", json=body if raw is None else None, data=raw,
                               auth=auth, headers=headers).prepare()
    request.url = f"{uri}{prefix}{path}"  # requests would un-escape %61 ('a') before sending
    with requests.Session() as session:
        return session.send(request, timeout=60)


def ok(response):
    assert response.status_code == 200, response.text
    return response


def register(server, user, name, template) -> int:
    """A prompt version as MLflow's own client registers one (the prompt first, if new)."""
    if name not in {row[0] for row in snapshot(server[1])["registered_models"]}:
        ok(rest(server, user, "POST", "/mlflow/registered-models/create",
                {"name": name, "tags": [{"key": IS_PROMPT, "value": "true"}]}))
    created = ok(rest(server, user, "POST", "/mlflow/model-versions/create", {
        "name": name, "source": "prompt-template", "tags": [
            {"key": IS_PROMPT, "value": "true"}, {"key": "mlflow.prompt.text", "value": template},
            {"key": "_mlflow_prompt_type", "value": "text"}]}))
    return int(created.json()["model_version"]["version"])


def snapshot(root) -> dict:
    """Everything in the server's registry: models, versions, their tags, aliases, descriptions, stages."""
    with sqlite3.connect(root / "mlflow.db") as db:
        return {table: sorted(db.execute(f"SELECT {columns} FROM {table}").fetchall())
                for table, columns in TABLES.items()}


@functools.lru_cache
def audit(root):
    from promptyard.governance import AuditLog

    return AuditLog(f"sqlite:///{root / 'home' / 'audit.db'}")


def entries_after(root, seq):
    return [e for e in audit(root).entries() if e.seq > seq]


def message(response) -> str:
    if response.headers.get("Content-Type", "").startswith("application/json"):
        return response.json().get("message", response.text)
    return response.text


def attack(server, user, method, path, body=None, *, says, **request):
    """Refused (403, naming the rule), nothing changed, one refusal by `user` audited; returns it."""
    root = server[1]
    before, seq = snapshot(root), audit(root).last().seq
    response = rest(server, user, method, path, body, **request)
    assert response.status_code == 403 and says in message(response), (response.status_code, response.text)
    assert snapshot(root) == before
    new = entries_after(root, seq)
    assert [(e.user, e.action) for e in new] == [(user, "refused")] and says in new[0].reason, new
    return new[0]


def split(name, control, weights, *, id="x1", epoch=0, thompson=True, alias="production"):
    """An A/B split as `promptyard ab start` stores it on `promptyard.ab.<alias>`."""
    return json.dumps({"id": id, "prompt": name, "alias": alias, "control": control, "epoch": epoch,
                       "thompson": thompson, "weights": {str(v): w for v, w in weights.items()}, "started_at": 0.0})


def prompt_with_production(server, name, *versions):
    """`name` with v1 on production and one more version per (user, template)."""
    register(server, "alice", name, "Be kind.\n\nQ: {{question}}")
    ok(rest(server, "alice", "POST", "/mlflow/registered-models/alias", {"name": name, "alias": "production",
                                                                        "version": "1"}))
    return [register(server, user, name, template) for user, template in versions]


# -- the cases of the brief -------------------------------------------------------------------------
@pytest.mark.parametrize("user", ["alice", "admin"])
@pytest.mark.parametrize("key", [IS_PROMPT, "mlflow.prompt.text", "_mlflow_prompt_type"])
def test_what_a_version_is_cannot_be_deleted(server, user, key):
    attack(server, user, "DELETE", "/mlflow/model-versions/delete-tag", {"name": "support", "version": "2", "key": key},
           says=f"support/2 is immutable: '{key}'")


def test_a_plain_model_becomes_a_prompt_only_by_an_admin(server):
    root = server[1]
    ok(rest(server, "alice", "POST", "/mlflow/registered-models/create", {"name": "support-model"}))
    for value in ("true", "TRUE"):
        attack(server, "alice", "POST", "/mlflow/registered-models/set-tag",
               {"name": "support-model", "key": IS_PROMPT, "value": value},
               says="alice is editor on 'support-model' and cannot turn a registered model into a prompt: that needs "
                    "the admin role")
    seq = audit(root).last().seq
    ok(rest(server, "admin", "POST", "/mlflow/registered-models/set-tag",
            {"name": "support-model", "key": IS_PROMPT, "value": "true"}))
    assert [(e.user, e.action, e.prompt, json.loads(e.after)) for e in entries_after(root, seq)] == [
        ("admin", "tag", "support-model", {IS_PROMPT: "true"})]  # allowed, and audited


def test_reserved_keys_on_a_plain_model_and_its_versions_need_admin(server):
    ok(rest(server, "alice", "POST", "/mlflow/registered-models/create", {"name": "support-plain"}))
    for key in ("promptyard.author", "promptyard.parent_version", IS_PROMPT, "mlflow.prompt.text"):
        attack(server, "alice", "POST", "/mlflow/model-versions/create", {
            "name": "support-plain", "source": "prompt-template", "tags": [{"key": key, "value": "bob"}]},
            says=f"registering a version of support-plain (a registered model, not a prompt): tag '{key}' is reserved")
    attack(server, "alice", "POST", "/mlflow/registered-models/set-tag",
           {"name": "support-plain", "key": "promptyard.contract", "value": '{"variables": []}'},
           says="cannot set the reserved tag 'promptyard.contract' on registered model support-plain, which is not a "
                "prompt: that needs the admin role")
    attack(server, "alice", "POST", "/mlflow/registered-models/create",
           {"name": "support-other", "tags": [{"key": "promptyard.ab.production", "value": "{}"}]},
           says="creating registered model support-other: tag 'promptyard.ab.production' is reserved")
    attack(server, "alice", "POST", "/mlflow/registered-models/create",  # MLflow reads "TRUE" as a prompt, too
           {"name": "support-upper", "tags": [{"key": IS_PROMPT, "value": "TRUE"},
                                              {"key": "promptyard.contract", "value": '{"variables": []}'}]},
           says="mlflow.prompt.is_prompt must be 'true' (a prompt) or absent (a model), not 'TRUE'")


def test_a_raw_rest_reallocation_moves_weights_and_nothing_else(server):
    name = "support.ab"
    v2, v3 = prompt_with_production(server, name, ("alice", "Two.\n\nQ: {{question}}"),
                                    ("alice", "Three.\n\nQ: {{question}}"))
    key = "promptyard.ab.production"
    ok(rest(server, "bob", "POST", "/mlflow/registered-models/set-tag",  # an approver starts it; alice's v2: bob's eyes
            {"name": name, "key": key, "value": split(name, 1, {1: 0.5, v2: 0.5})}))
    tag = "/mlflow/registered-models/set-tag"
    for changed, says in [
        (split(name, 1, {1: 0.5, v3: 0.5}, epoch=1), f"a reallocation keeps the versions [1, {v2}], got [1, {v3}]"),
        (split(name, v2, {1: 0.5, v2: 0.5}, epoch=1), "a reallocation may change the weights only, not control"),
        (split(name, 1, {1: 0.5, v2: 0.5}, epoch=1, thompson=False), "may change the weights only, not thompson"),
        (split(name, 1, {1: 0.01, v2: 0.99}, epoch=5), "a reallocation moves to the next epoch"),
        (split(name, 1, {1: 0.01, v2: 0.99}, epoch=1, alias="candidate"), "the weights only, not alias"),
        (split(name, 1, {1: 0.5, v3: 0.5}, id="x2"), f"alice is editor on '{name}' and cannot start an experiment"),
    ]:
        attack(server, "alice", "POST", tag, {"name": name, "key": key, "value": changed}, says=says)
    attack(server, "alice", "DELETE", "/mlflow/model-versions/delete", {"name": name, "version": str(v2)},
           says=f"cannot delete or rename {name}/{v2}, which holds production traffic (A/B split)")
    ok(rest(server, "alice", "POST", tag, {"name": name, "key": key,
                                           "value": split(name, 1, {1: 0.2, v2: 0.8}, epoch=1)}))  # a reallocation


def test_an_approver_needs_a_second_approver_before_splitting_production_to_their_own_version(server):
    name = "support.own"
    (own,) = prompt_with_production(server, name, ("bob", "Bob's own.\n\nQ: {{question}}"))
    start = {"name": name, "key": "promptyard.ab.production", "value": split(name, 1, {1: 0.99, own: 0.01})}
    attack(server, "bob", "POST", "/mlflow/registered-models/set-tag", start,
           says=f"v{own} would get {name}@production traffic with no second person's eyes on it: bob registered it; "
                "another approver must approve it first")
    ok(rest(server, "dave", "POST", "/mlflow/model-versions/set-tag", {
        "name": name, "version": str(own), "key": "promptyard.approval.dave", "value": '{"alias": "production"}'}))
    ok(rest(server, "bob", "POST", "/mlflow/registered-models/set-tag", start))  # now a second person looked


def test_a_forged_register_entry_leaves_the_author_disputed(server, monkeypatch):
    """dave can write to the audit store: he registers a version through the server, then appends an
    entry saying alice registered it, to approve his own work."""
    from promptyard.cli import cli
    from promptyard.runtime import get_settings

    uri, root = server
    name, template = "support.forged", "Forged.\n\nQ: {{question}}"
    register(server, "dave", name, template)  # the server stamps dave and audits his register
    audit(root).append("alice", "register", prompt=name, version=1, reason="appended by hand",
                       after={"template": template, "response_format": None, "model_config": None})
    attack(server, "dave", "POST", "/mlflow/model-versions/set-tag",
           {"name": name, "version": "1", "key": "promptyard.approval.dave", "value": '{"alias": "production"}'},
           says=f"dave cannot approve {name}/1: its author is unknown")
    for variable, value in {"PROMPTYARD_MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": "admin",
                            "MLFLOW_TRACKING_PASSWORD": PASSWORD, "PROMPTYARD_AUDIT_URL": audit(root).url,
                            "PROMPTYARD_POLICY_FILE": str(root / "home" / "policy.yaml")}.items():
        monkeypatch.setenv(variable, value)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert f"{name}/1: v1's author is disputed: the audit log names dave (entry #" in result.output
    assert "alice (entry #" in result.output and "the stamp on it names dave" in result.output


@pytest.mark.parametrize("user, path, body, says", [
    ("alice", "/mlflow/model-versions/update", {"name": "support", "version": "1", "description": "x"},
     "alice is editor on 'support' and cannot change support/1 (a version is immutable, its description and stage "
     "too): that needs the admin role"),
    ("vic", "/mlflow/model-versions/update", {"name": "support", "version": "1", "description": "x"},
     "vic is viewer on 'support' and cannot change prompts: that needs the editor role"),
    ("alice", "/mlflow/model-versions/transition-stage", {"name": "support", "version": "2", "stage": "Production"},
     "cannot change support/2 (a version is immutable"),
])
def test_a_version_description_or_stage_changes_only_by_an_admin(server, user, path, body, says):
    method = "POST" if path.endswith("transition-stage") else "PATCH"
    attack(server, user, method, path, body, says=says)


def test_a_viewer_sets_no_prompt_keys(server):
    viewer = "vic is viewer on 'support{}' and cannot {}"
    attack(server, "vic", "POST", "/mlflow/registered-models/set-tag", {"name": "support", "key": "mlflow.prompt.x",
                                                                        "value": "1"},
           says=viewer.format("", "change prompts"))
    attack(server, "vic", "POST", "/mlflow/model-versions/set-tag", {"name": "support", "version": "1",
                                                                     "key": "mlflow.prompt.text", "value": "x"},
           says=viewer.format("", "change prompts"))
    attack(server, "vic", "POST", "/mlflow/registered-models/create",
           {"name": "support-vic", "tags": [{"key": IS_PROMPT, "value": "true"}]},
           says=viewer.format("-vic", "create prompts: that needs the editor role"))
    ok(rest(server, "vic", "POST", "/mlflow/registered-models/create", {"name": "support-vic-model"}))  # MLflow's rules
    for key in ("mlflow.prompt.text", IS_PROMPT):
        attack(server, "vic", "POST", "/mlflow/registered-models/set-tag",
               {"name": "support-vic-model", "key": key, "value": "true"}, says=viewer.format("-vic-model", ""))


ALIAS = "/mlflow/registered-models/alias"


@pytest.mark.parametrize("user, path, body, raw, says", [
    # MLflow decodes a JSON string body a second time; unread, it slipped past the guard (an admin, whom MLflow's
    # own checks skip, rewrote a template in place)
    ("admin", "/mlflow/model-versions/set-tag", None, json.dumps(json.dumps(
        {"name": "support", "version": "2", "key": "mlflow.prompt.text", "value": "Rewritten {{question}}"})),
     "support/2 is immutable: 'mlflow.prompt.text'"),
    ("admin", "/mlflow/model-versions/set-tag", None, json.dumps("not json"), "the body is a JSON string that is not"),
    ("admin", ALIAS, None, json.dumps([{"name": "support"}]), "the body must be a JSON object, got list"),
    ("alice", ALIAS, {"name": "support", "alias": "production", "version": "2.0"}, None,
     "version '2.0' is not a version number"),
    ("alice", ALIAS, {"name": "support", "alias": "production"}, None, "malformed request: version missing"),
    ("alice", ALIAS, {"name": "support", "version": "2"}, None, "malformed request: alias missing"),
    ("alice", ALIAS, {"name": "support", "alias": "production", "version": ["2"]}, None,
     "version must be a version number"),
    ("alice", ALIAS, {"name": "support", "alias": "production", "version": True}, None,
     "version must be a version number, got True"),
    ("alice", ALIAS, {"name": "support", "alias": ["production"], "version": "2"}, None, "alias must be a string"),
    ("admin", ALIAS, {"name": 7, "alias": "production", "version": "2"}, None, "name must be a string"),
    ("alice", "/mlflow/model-versions/set-tag", {"name": "support", "version": "1", "key": None, "value": "x"}, None,
     "key must be a string, got None"),
    ("alice", "/mlflow/model-versions/set-tag", {"name": "support", "version": "1", "value": "x"}, None,
     "malformed request: key missing"),
    ("alice", "/mlflow/model-versions/create", {"name": "support", "source": "x", "tags": {"promptyard.author": "b"}},
     None, "tags must be a list"),
    ("alice", "/mlflow/registered-models/rename", {"name": "support", "new_name": "a", "newName": "b"}, None,
     "new_name given twice"),
])
def test_a_malformed_request_is_refused_and_audited(server, user, path, body, raw, says):
    attack(server, user, "POST", path, body, raw=raw, says=says)


def test_deletions_are_audited(server):
    root = server[1]
    name = "support.del"
    (v2,) = prompt_with_production(server, name, ("alice", "Two.\n\nQ: {{question}}"))
    for path, body in [("/mlflow/registered-models/alias", {"name": name, "alias": "candidate", "version": str(v2)}),
                       ("/mlflow/registered-models/set-tag", {"name": name, "key": "team", "value": "care"}),
                       ("/mlflow/model-versions/set-tag", {"name": name, "version": str(v2), "key": "note",
                                                           "value": "x"})]:
        ok(rest(server, "alice", "POST", path, body))
    attack(server, "alice", "DELETE", ALIAS, {"name": name, "alias": "production"},
           says=f"alice is editor on '{name}' and cannot delete protected alias 'production' (apps read it)")
    attack(server, "alice", "DELETE", "/mlflow/model-versions/delete", {"name": name, "version": "1"},
           says=f"cannot delete or rename {name}/1, which holds production")
    attack(server, "alice", "DELETE", "/mlflow/registered-models/delete", {"name": name},
           says=f"cannot delete or rename {name}, which holds production")
    seq = audit(root).last().seq
    for path, body in [(ALIAS, {"name": name, "alias": "candidate"}),
                       ("/mlflow/registered-models/delete-tag", {"name": name, "key": "team"}),
                       ("/mlflow/model-versions/delete-tag", {"name": name, "version": str(v2), "key": "note"}),
                       ("/mlflow/model-versions/delete", {"name": name, "version": str(v2)})]:
        ok(rest(server, "alice", "DELETE", path, body))
    assert [(e.user, e.action, e.version, e.alias, e.before, e.after) for e in entries_after(root, seq)] == [
        ("alice", "alias", None, "candidate", str(v2), None), ("alice", "tag", None, None, None, '{"team": null}'),
        ("alice", "tag", v2, None, None, '{"note": null}'),
        ("alice", "delete", v2, None, None, '{"deleted": "model-versions/delete"}')]


# -- beyond the brief: other doors of MLflow's server ---------------------------------------------------
@pytest.mark.parametrize("method, prefix, path, headers", [
    ("POST", "/api/2.0", "/mlflow/registered-models/%61lias", None),  # decoded by the server: the same route
    ("POST", "/api/2.0", "/mlflow/registered-models%2Falias", None),
    ("POST", "/ajax-api/2.0", ALIAS, None),  # the UI's copy of every route
    ("POST", "/api/2.0", ALIAS, {"X-HTTP-Method-Override": "GET"}),  # Flask ignores method overrides
    ("POST", "/api/2.0", ALIAS, {"x-http-method": "DELETE", "X-Method-Override": "PUT"}),
])
def test_every_spelling_of_a_registry_route_meets_the_guard(server, method, prefix, path, headers):
    attack(server, "alice", method, path, {"name": "support", "alias": "production", "version": "2"}, prefix=prefix,
           headers=headers, says="support/2 cannot take support@production; failed: evidence, approval")


@pytest.mark.parametrize("prefix, path", [("/api/2.0", ALIAS + "/"), ("/api/2.0", "/mlflow/registered-models/ALIAS"),
                                          ("/api/2.0/", ALIAS), ("/API/2.0", ALIAS), ("/api/3.0", ALIAS)])
def test_a_route_mlflow_does_not_serve_changes_nothing(server, prefix, path):
    before = snapshot(server[1])
    for user in ("alice", "admin"):
        response = rest(server, user, "POST", path, {"name": "support", "alias": "production", "version": "2"},
                        prefix=prefix)
        assert response.status_code in (403, 404, 405, 308), response.text
    assert snapshot(server[1]) == before


def test_a_path_that_only_ends_like_a_registry_route_is_not_audited_as_one(server):
    root = server[1]
    path = "/mlflow-artifacts/artifacts/x/mlflow/registered-models/alias"
    ok(rest(server, "admin", "PUT", path, raw=b"artifact"))
    seq = audit(root).last().seq
    ok(rest(server, "admin", "DELETE", path, {"name": "support", "alias": "production"}))  # an artifact deleted
    assert entries_after(root, seq) == []  # not "support@production deleted" (a forged alias move in the log)


@pytest.mark.parametrize("user, method, prefix, path, body, says", [
    ("vic", "POST", "/ajax-api/3.0", "/mlflow/demo/generate", {"features": ["prompts"]},
     "Nobody may generate MLflow's demo data on a promptyard-guarded server: it registers prompts and moves their "
     "production alias"),
    ("admin", "POST", "/ajax-api/3.0", "/mlflow/demo/delete", {}, "Nobody may delete MLflow's demo data"),
    ("alice", "POST", "/api/3.0", "/mlflow/prompt-optimization/jobs", {
        "experiment_id": "0", "source_prompt_uri": "prompts:/support/1",
        "config": {"optimizer_type": "OPTIMIZER_TYPE_METAPROMPT", "dataset_id": "d-1", "scorers": ["Correctness"]}},
     "Nobody may start a server-side prompt optimization job on a promptyard-guarded server"),
    ("alice", "POST", "/ajax-api/3.0", "/jobs/", {"job_name": "optimize_prompts", "params": {
        "prompt_uri": "prompts:/support/1"}},
     "Nobody may run MLflow's 'optimize_prompts' job on a promptyard-guarded server"),
    ("alice", "POST", "/ajax-api/3.0", "/mlflow/assistant/message", {"message": "point support@production at v2"},
     "Nobody may drive MLflow's assistant on a promptyard-guarded server: it runs a coding agent with a shell"),
])
def test_what_writes_prompts_inside_the_server_is_refused(server, user, method, prefix, path, body, says):
    entry = attack(server, user, method, path, body, prefix=prefix, says=says)
    assert "straight" in entry.reason  # says why: it would write behind the guard


@pytest.mark.parametrize("user, path, body, says", [
    ("alice", ALIAS, {"name": "support", "alias": "Production", "version": "2"},
     "alias 'Production' looks like the protected alias 'production'"),
    ("alice", ALIAS, {"name": "support", "alias": "ｐｒｏｄｕｃｔｉｏｎ", "version": "2"},  # full-width letters
     "looks like the protected alias"),
    ("alice", "/mlflow/registered-models/set-tag", {"name": "support", "key": "Promptyard.contract", "value": "{}"},
     "tag 'Promptyard.contract' looks like a reserved key"),
    ("alice", "/mlflow/registered-models/set-tag", {"name": "support", "key": "promptyard.contract ", "value": "{}"},
     "looks like a reserved key"),
    ("bob", "/mlflow/registered-models/set-tag", {"name": "support", "key": "promptyard.ab.PRODUCTION", "value": "{}"},
     "alias 'PRODUCTION' looks like the protected alias 'production'"),
    ("alice", "/mlflow/model-versions/set-tag", {"name": "support", "version": "2", "key": "MLflow.prompt.text",
                                                 "value": "x"}, "tag 'MLflow.prompt.text' looks like a reserved key"),
])
def test_a_key_or_alias_that_a_case_insensitive_database_would_merge_is_refused(server, user, path, body, says):
    attack(server, user, "POST", path, body, says=says)
