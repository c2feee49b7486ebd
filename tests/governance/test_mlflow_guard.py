"""Protected aliases hold against a plain MLflow client on an authenticated server
(`mlflow server --app-name promptyard-auth`), and promptyard's own CLI works through it."""

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

POLICY = """\
protected_aliases: [production]
roles:
  "": {viewer: ["*"], admin: [admin]}
  "support": {editor: [alice], approver: [bob]}
promotion:
  "": {approvals: 1, max_evidence_age_days: 7}
"""
PASSWORD = "admin-password-for-tests"


@contextmanager
def guarded_server(root: Path, policy: str, users=("alice", "bob")):
    """`mlflow server --app-name promptyard-auth` on a free port, `policy` in force, `users` created
    (password `<user>-password-1`); yields its URI. Its stores are under `root`."""
    (root / "home").mkdir()
    (root / "home" / "policy.yaml").write_text(policy)
    (root / "auth.ini").write_text(
        f"[mlflow]\ndefault_permission = EDIT\ndatabase_uri = sqlite:///{root / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"), "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests-secret", "PROMPTYARD_HOME": str(root / "home"),
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("PROMPTYARD_POLICY_FILE", None)
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--app-name", "promptyard-auth",
                             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
                             str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"{uri}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((root / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        for user in users:
            requests.post(f"{uri}/api/2.0/mlflow/users/create", auth=("admin", PASSWORD), timeout=10,
                          json={"username": user, "password": f"{user}-password-1"}).raise_for_status()
        yield uri
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("guarded-mlflow")
    with guarded_server(root, POLICY) as uri:
        yield uri, root


@pytest.fixture
def login(server, monkeypatch):
    uri, _ = server

    def as_user(user):
        from mlflow import MlflowClient

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD if user == "admin" else f"{user}-password-1")
        return MlflowClient(uri, uri)

    return as_user


def refused(call, *args):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as error:
        call(*args)
    return str(error.value)


VIA = "via the MLflow REST API"


def audit_entries(root, prompt="support"):
    from promptyard.governance import AuditLog

    return AuditLog(f"sqlite:///{root / 'home' / 'audit.db'}").entries(prompt)


def record_evidence(server, user, run_id, *, candidate=2, prompt="support"):
    """Evidence for `prompt`/`candidate` over v1, recorded on the team's audit log as promptyard's CLI does."""
    from helpers import tiny_rows, write_dataset

    from promptyard.evaluation import load_dataset
    from promptyard.governance import AuditLog, Evidence, Governance, load_policy
    from promptyard.registry import Registry

    uri, root = server
    data = load_dataset(write_dataset(root / "datasets" / "tickets", tiny_rows(300), test=150, validation=50))
    governance = Governance(Registry(uri), load_policy(root / "home"), user,
                            AuditLog(f"sqlite:///{root / 'home' / 'audit.db'}"))
    governance.record_evidence(run_id, Evidence(
        prompt=prompt, baseline=1, candidate=candidate, split="test", dataset="tickets", dataset_digest=data.digest,
        metric="exact_label", n=150, confidence=0.95, diff=0.08, low=0.03, high=0.13,
        dataset_path=str(data.path.parent)))


def test_plain_mlflow_client_cannot_push_production(server, login):
    uri, root = server
    alice = login("alice")
    alice.register_prompt("support", "Be kind.\n\nQ: {{question}}")
    assert alice.get_prompt_version("support", 1).tags["promptyard.author"] == "alice"  # stamped by the server
    alice.set_prompt_alias("support", "production", 1)  # a new protected alias: allowed to editors
    alice.register_prompt("support", "Be brief.\n\nQ: {{question}}")

    message = refused(alice.set_prompt_alias, "support", "production", 2)
    assert "PERMISSION_DENIED" in message and "failed: evidence, approval" in message
    assert "cannot write or remove the approval" in refused(
        alice.set_prompt_version_tag, "support", 2, "promptyard.approval.bob", json.dumps({"alias": "production"}))
    assert "recorded by the server" in refused(alice.set_prompt_version_tag, "support", 2, "promptyard.author", "bob")
    assert "that needs the admin role" in refused(alice.delete_prompt_alias, "support", "production")
    assert int(alice.get_prompt_version_by_alias("support", "production").version) == 1

    bob = login("bob")
    bob.set_prompt_version_tag("support", 2, "promptyard.approval.bob", json.dumps({"alias": "production"}))
    alice = login("alice")
    experiment = alice.create_experiment("evidence")
    handmade = alice.create_run(experiment, tags={
        "promptyard.evidence.prompt": "support", "promptyard.evidence.baseline": "1",
        "promptyard.evidence.candidate": "2", "promptyard.evidence.dataset": "tickets",
        "promptyard.evidence.split": "test"})
    alice.log_metric(handmade.info.run_id, "evidence_diff_low", 0.03)
    assert "is not anchored in the audit log" in refused(alice.set_prompt_alias, "support", "production", 2)
    record_evidence(server, "alice", alice.create_run(experiment).info.run_id)  # as `promptyard ab offline` would
    alice.set_prompt_alias("support", "production", 2)  # now earned
    assert int(alice.get_prompt_version_by_alias("support", "production").version) == 2

    assert "failed: evidence" in refused(alice.set_prompt_alias, "support", "production", 1)  # editors: no rollback
    login("bob").set_prompt_alias("support", "production", 1)  # an approver's rollback to a version it held
    actions = [(e.user, e.action, e.version) for e in audit_entries(root)]
    assert ("alice", "promote", 2) in actions and ("bob", "rollback", 1) in actions and ("bob", "approve", 2) in actions
    assert {e.reason for e in audit_entries(root) if e.action not in ("refused", "evidence")} == {VIA}
    refusals = [(e.user, e.reason) for e in audit_entries(root) if e.action == "refused"]
    assert len(refusals) == 6 and all(user == "alice" for user, _ in refusals)


def test_promptyard_cli_through_the_guarded_server(server, login, monkeypatch):
    uri, root = server
    from promptyard.cli import cli
    from promptyard.runtime import get_settings

    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PROMPTYARD_POLICY_FILE", str(root / "home" / "policy.yaml"))
    get_settings.cache_clear()
    login("alice")
    runner = CliRunner()
    result = runner.invoke(cli, ["prompts", "register", "support-faq", "--template", "FAQ: {{question}}",
                                 "--alias", "production"], env={"PROMPTYARD_USER": "alice"})
    assert result.exit_code == 0, result.output
    runner.invoke(cli, ["prompts", "register", "support-faq", "--template", "FAQ, short: {{question}}"],
                  env={"PROMPTYARD_USER": "alice"})
    result = runner.invoke(cli, ["prompts", "promote", "support-faq", "2"], env={"PROMPTYARD_USER": "alice"})
    assert result.exit_code == 1 and "failed: evidence, approval" in result.output
    login("bob")
    result = runner.invoke(cli, ["prompts", "approve", "support-faq", "2"], env={"PROMPTYARD_USER": "bob"})
    assert result.exit_code == 0, result.output
    assert login("admin").get_prompt_version("support-faq", 2).tags["promptyard.author"] == "alice"


def test_plain_mlflow_client_side_doors_are_closed(server, login):
    """What MLflow's own permissions let an EDIT user do, and the guard refuses: each refused, named,
    nothing changed, audited."""
    uri, root = server
    alice = login("alice")
    alice.register_prompt("support-doors", "Be kind.\n\nQ: {{question}}")
    alice.set_prompt_alias("support-doors", "production", 1)
    alice.register_prompt("support-doors", "Be brief.\n\nQ: {{question}}")
    admin = login("admin")

    def state():
        versions = [admin.get_prompt_version("support-doors", v) for v in (1, 2)]
        return ([(v.template, dict(v.tags)) for v in versions], dict(admin.get_prompt("support-doors").tags),
                int(admin.get_prompt_version_by_alias("support-doors", "production").version))

    before = state()
    alice = login("alice")
    forged = json.dumps({"alias": "production", "reason": "ok"})
    attacks = [
        # MLflow's register_prompt writes the tags on the prompt first, then on the new version
        (lambda: alice.register_prompt("support-doors", "x {{question}}", tags={"promptyard.approval.bob": forged}),
         "cannot set the reserved prompt tag 'promptyard.approval.bob'"),
        (lambda: alice.register_prompt("support-doors", "x {{question}}", tags={"promptyard.author": "bob"}),
         "cannot set the reserved prompt tag 'promptyard.author'"),

        (lambda: alice.set_prompt_version_tag("support-doors", 1, "mlflow.prompt.text", "Rewritten in place {{question}}"),
         "support-doors/1 is immutable: 'mlflow.prompt.text'"),
        (lambda: alice.set_prompt_version_tag("support-doors", 2, "_mlflow_prompt_model_config", '{"temperature": 2}'),
         "is immutable"),
        (lambda: alice.set_prompt_version_tag("support-doors", 2, "promptyard.parent_version", "1"),
         "is written once, when it is registered"),
        (lambda: alice.set_prompt_tag("support-doors", "promptyard.contract", '{"variables": []}'),
         "alice is editor on 'support-doors' and cannot change the prompt contract"),
        (lambda: alice.set_prompt_tag("support-doors", "promptyard.ab.production",
                                      '{"id": "x", "control": 1, "weights": {"1": 0.01, "2": 0.99}}'),
         "cannot start an experiment on support-doors@production"),
        (lambda: alice.set_prompt_tag("support-doors", "promptyard.release", "approved"), "that needs the admin role"),
        (lambda: alice.set_prompt_tag("support-doors", "mlflow.prompt.is_prompt", "false"), "needs the admin role"),
        (lambda: alice.delete_prompt_tag("support-doors", "mlflow.prompt.is_prompt"), "needs the admin role"),
    ]
    for attack, message in attacks:
        assert message in refused(attack)
    raw = requests.post(f"{uri}/api/2.0/mlflow/model-versions/create", auth=("alice", "alice-password-1"), timeout=10,
                        json={"name": "support-doors", "source": "prompt-template", "tags": [
                            {"key": "mlflow.prompt.is_prompt", "value": "true"},
                            {"key": "mlflow.prompt.text", "value": "x {{question}}"},
                            {"key": "promptyard.evidence.split", "value": "test"}]})  # as curl would
    assert raw.status_code == 403 and "tag 'promptyard.evidence.split' is reserved" in raw.json()["message"]
    raw = requests.post(f"{uri}/api/2.0/mlflow/registered-models/create", auth=("alice", "alice-password-1"),
                        timeout=10, json={"name": "support-sneaky", "tags": [
                            {"key": "mlflow.prompt.is_prompt", "value": "true"},
                            {"key": "promptyard.contract", "value": '{"variables": []}'}]})
    assert raw.status_code == 403 and "creating prompt support-sneaky: tag 'promptyard.contract' is reserved" in \
        raw.json()["message"]
    bob = login("bob")
    # an approver moving production to a version it never held is a promotion, not a rollback: checks apply
    assert "failed: evidence, approval" in refused(bob.set_prompt_alias, "support-doors", "production", 2)
    assert "must be JSON like" in refused(bob.set_prompt_tag, "support-doors", "promptyard.contract", "anything")
    assert state() == before
    refusals = [e for e in audit_entries(root, "support-doors") if e.action == "refused"]
    assert len(refusals) >= len(attacks) and {e.user for e in refusals} == {"alice", "bob"}
