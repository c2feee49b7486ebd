"""Protected aliases hold against a plain MLflow client on an authenticated server
(`mlflow server --app-name promptyard-auth`), and promptyard's own CLI works through it."""

import json
import os
import socket
import subprocess
import sys
import time
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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("guarded-mlflow")
    (root / "home").mkdir()
    (root / "home" / "policy.yaml").write_text(POLICY)
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
    for user in ("alice", "bob"):
        requests.post(f"{uri}/api/2.0/mlflow/users/create", json={"username": user, "password": f"{user}-password-1"},
                      auth=("admin", PASSWORD), timeout=10).raise_for_status()
    yield uri, root
    proc.terminate()
    proc.wait(30)
    log.close()


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


def audit_entries(root):
    from promptyard.governance import AuditLog

    return AuditLog(f"sqlite:///{root / 'home' / 'audit.db'}").entries("support")


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
    run = alice.create_run(experiment, tags={
        "promptyard.evidence.prompt": "support", "promptyard.evidence.baseline": "1",
        "promptyard.evidence.candidate": "2", "promptyard.evidence.dataset": "tickets",
        "promptyard.evidence.split": "test"})
    alice.log_metric(run.info.run_id, "evidence_diff_low", 0.03)
    alice.set_terminated(run.info.run_id)
    alice.set_prompt_alias("support", "production", 2)  # now earned
    assert int(alice.get_prompt_version_by_alias("support", "production").version) == 2

    assert "failed: evidence" in refused(alice.set_prompt_alias, "support", "production", 1)  # editors: no rollback
    login("bob").set_prompt_alias("support", "production", 1)  # an approver's rollback is always allowed
    actions = [(e.user, e.action, e.version) for e in audit_entries(root)]
    assert ("alice", "promote", 2) in actions and ("bob", "rollback", 1) in actions and ("bob", "approve", 2) in actions
    assert all(e.reason == "via the MLflow REST API" for e in audit_entries(root))


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
