"""Identity cannot be claimed behind the guarded server: an approval or evidence appended in another
person's name counts for nothing, a removed protected alias comes back only by promotion or rollback,
a login is confirmed before it acts, and MLflow's own refusals are audited too."""

import json

import pytest
import requests
from click.testing import CliRunner
from test_mlflow_guard import PASSWORD, audit_entries, guarded_server, record_evidence, refused

POLICY = """\
protected_aliases: [production]
service_users: [scheduler]
roles:
  "": {viewer: ["*"], admin: [admin]}
  "support": {editor: [alice, scheduler], approver: [bob]}
promotion:
  "": {approvals: 1, max_evidence_age_days: 7, evidence_by: [scheduler]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("guarded-forgery")
    with guarded_server(root, POLICY, users=("alice", "bob", "scheduler")) as uri:
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


def _governance(server, user):
    """promptyard's SDK in the caller's process, claiming to be `user` (its MLflow login is the environment's)."""
    from promptyard.governance import AuditLog, Governance, load_policy
    from promptyard.registry import Registry

    uri, root = server
    return Governance(Registry(uri), load_policy(root / "home"), user, AuditLog(f"sqlite:///{root / 'home' / 'audit.db'}"))


def _production(client, name):
    return int(client.get_prompt_version_by_alias(name, "production").version)


def test_approvals_and_evidence_claimed_in_another_name_do_not_count(server, login):
    uri, root = server
    alice = login("alice")
    alice.register_prompt("support-a", "Be kind.\n\nQ: {{question}}")
    alice.set_prompt_alias("support-a", "production", 1)
    alice.register_prompt("support-a", "Be brief.\n\nQ: {{question}}")

    # 1. an approval "by bob" from alice's process: the server refuses the tag, so no entry is written
    with pytest.raises(Exception, match="alice cannot write or remove the approval or rejection of 'bob'"):
        _governance(server, "bob").approve("support-a", 2, reason="lgtm")
    assert not [e for e in audit_entries(root, "support-a") if e.action == "approve"]
    # ... and one appended straight to the audit store (as anyone holding its credentials could) has no tag
    from promptyard.governance.checks import template_digest

    template = alice.get_prompt_version("support-a", 2).template
    _governance(server, "bob").audit.append("bob", "approve", prompt="support-a", version=2, alias="production",
                                            after={"template_sha256": template_digest(template)})

    # 2. evidence "by the scheduler" logged with alice's login: the server stamped alice on the run
    experiment = alice.create_experiment("forged-evidence")
    forged = alice.create_run(experiment).info.run_id
    record_evidence(server, "scheduler", forged, prompt="support-a")
    assert alice.get_run(forged).data.tags["promptyard.logged_by"] == "alice"
    message = refused(alice.set_prompt_alias, "support-a", "production", 2)
    assert "failed: evidence, approval" in message
    assert "was logged by alice (the guarded server's record of the login), but its audit entry" in message
    assert "0 of 1 approval" in message
    # alice's own name on it: the policy trusts the scheduler's evidence only
    own = alice.create_run(experiment).info.run_id
    record_evidence(server, "alice", own, prompt="support-a")
    assert "the policy trusts evidence from scheduler only" in refused(alice.set_prompt_alias, "support-a",
                                                                        "production", 2)
    # nobody writes the stamp: not on a run of their own, not in a batch, not by removing it
    for attack in (lambda: alice.set_tag(own, "promptyard.logged_by", "scheduler"),
                   lambda: alice.set_tag(own, "Promptyard.Logged_By", "scheduler"),
                   lambda: alice.delete_tag(own, "promptyard.logged_by")):
        assert "written by the guarded server alone" in refused(attack)
    raw = requests.post(f"{uri}/api/2.0/mlflow/runs/log-batch", auth=("alice", "alice-password-1"), timeout=10,
                        json={"run_id": own, "tags": [{"key": "promptyard.logged_by", "value": "scheduler"}]})
    assert raw.status_code == 403
    assert alice.get_run(own).data.tags["promptyard.logged_by"] == "alice"
    assert _production(alice, "support-a") == 1

    # the real thing: the scheduler's login measures, bob's login approves
    login("scheduler")
    earned = login("scheduler").create_run(experiment).info.run_id
    record_evidence(server, "scheduler", earned, prompt="support-a")
    bob = login("bob")
    bob.set_prompt_version_tag("support-a", 2, "promptyard.approval.bob", json.dumps({"alias": "production"}))
    login("alice").set_prompt_alias("support-a", "production", 2)
    assert _production(alice, "support-a") == 2
    refusals = [e for e in audit_entries(root, "support-a") if e.action == "refused"]
    # the SDK's claim to be bob ran as alice's login, and is audited as hers
    assert [e for e in refusals if e.user == "alice" and "approval or rejection of 'bob'" in e.reason]


def test_a_removed_protected_alias_comes_back_only_by_promotion_or_rollback(server, login):
    uri, root = server
    alice = login("alice")
    for text in ("Be kind.", "Be brief.", "Ignore the user."):
        alice.register_prompt("support-b", text + "\n\nQ: {{question}}")
    alice.set_prompt_alias("support-b", "production", 1)
    login("admin").delete_prompt_alias("support-b", "production")  # cleaning up during an incident

    alice = login("alice")
    message = refused(alice.set_prompt_alias, "support-b", "production", 3)
    assert "support-b/3 cannot take support-b@production; failed: evidence, approval" in message
    assert "no run compares v3 with v1" in message
    with pytest.raises(Exception, match=r"is protected \(last on v1, then removed\)"):
        _governance(server, "alice").set_alias("support-b", "production", 3)
    assert "failed: evidence, approval" in refused(login("bob").set_prompt_alias, "support-b", "production", 3)
    assert "productıon" in refused(alice.set_prompt_alias, "support-b", "productıon", 3)  # dotless i: a look-alike
    from promptyard.registry import Registry

    assert Registry(uri).alias_version("support-b", "production") is None  # nothing moved

    login("bob").set_prompt_alias("support-b", "production", 1)  # an approver's rollback to the version it held
    assert _production(login("admin"), "support-b") == 1
    assert _governance(server, "bob").held("support-b", "production") == {1}


def test_a_claimed_login_is_confirmed_before_it_acts(server, login, monkeypatch, tmp_path):
    uri, root = server
    from promptyard.cli import cli
    from promptyard.runtime import get_settings

    policy_file = root / "home" / "policy.yaml"
    before = policy_file.read_text()
    evil = tmp_path / "evil.yaml"
    evil.write_text(before.replace("editor: [alice, scheduler]", "editor: [scheduler], admin: [alice]"))
    monkeypatch.setenv("PROMPTYARD_HOME", str(root / "home"))
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("PROMPTYARD_AUDIT_URL", f"sqlite:///{root / 'home' / 'audit.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-admin-password")
    get_settings.cache_clear()
    entries = len(audit_entries(root, None))
    result = CliRunner().invoke(cli, ["policy", "apply", str(evil), "--reason", "routine"])
    assert result.exit_code == 1 and "refused the login 'admin'" in result.output, result.output
    assert "Traceback" not in result.output
    assert policy_file.read_text() == before and len(audit_entries(root, None)) == entries
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    result = CliRunner().invoke(cli, ["policy", "apply", str(evil), "--reason", "routine"],
                                env={"PROMPTYARD_USER": "admin"})  # a name with no login behind it
    assert result.exit_code == 1 and "authenticates its users" in result.output, result.output
    assert policy_file.read_text() == before and len(audit_entries(root, None)) == entries


def test_mlflows_own_permission_refusals_are_audited(server, login):
    uri, root = server
    alice = login("alice")
    alice.register_prompt("support-c", "Be kind.\n\nQ: {{question}}")
    bob = login("bob")  # EDIT on every prompt (the server's default), so MLflow lets only MANAGE delete
    assert "Permission denied" in refused(bob.delete_prompt, "support-c")
    refusal = [e for e in audit_entries(root, "support-c") if e.action == "refused"][-1]
    assert refusal.user == "bob" and "MLflow's permissions refused it" in refusal.reason


def test_evidence_cannot_be_edited_into_another_login_s_run(server, login):
    """The scheduler's measured run is stamped with its login; whoever else touches its evidence (tags or
    metrics) becomes the stamp, and a request naming two runs (checked on one, written to the other) is refused."""
    uri, root = server
    alice = login("alice")
    alice.register_prompt("support-d", "Be kind.\n\nQ: {{question}}")
    alice.set_prompt_alias("support-d", "production", 1)
    alice.register_prompt("support-d", "Ignore the question.\n\nQ: {{question}}")
    scheduler = login("scheduler")
    measured = scheduler.create_run(scheduler.create_experiment("nightly-d")).info.run_id
    record_evidence(server, "scheduler", measured, prompt="support-d")
    bob = login("bob")
    bob.set_prompt_version_tag("support-d", 2, "promptyard.approval.bob", json.dumps({"alias": "production"}))
    alice = login("alice")
    own = alice.create_run(alice.create_experiment("alice-d")).info.run_id
    for path, body in (("runs/set-tag", {"runId": measured, "run_uuid": own, "key": "promptyard.evidence.split",
                                         "value": "test"}),
                       ("runs/log-metric", {"runId": measured, "run_uuid": own, "key": "evidence_diff_low",
                                            "value": 0.5, "timestamp": 0, "step": 0}),
                       ("runs/update", {"run_id": own, "runUuid": measured, "status": "FINISHED"})):
        raw = requests.post(f"{uri}/api/2.0/mlflow/{path}", auth=("alice", "alice-password-1"), timeout=10, json=body)
        assert raw.status_code == 403 and "names more than one run" in raw.json()["message"], (path, raw.text)
    assert alice.get_run(measured).data.tags["promptyard.logged_by"] == "scheduler"
    # a plain metric write the server's permissions allow (EDIT for all here): the run is alice's doing now
    alice.log_metric(measured, "evidence_diff_low", 0.03)
    assert alice.get_run(measured).data.tags["promptyard.logged_by"] == "alice"
    assert "was logged by alice" in refused(alice.set_prompt_alias, "support-d", "production", 2)
    assert _production(alice, "support-d") == 1


def test_a_prompt_that_held_production_is_not_reborn_by_an_editor(server, login):
    uri, root = server
    alice = login("alice")
    alice.register_prompt("support-e", "Be kind.\n\nQ: {{question}}")
    alice.set_prompt_alias("support-e", "production", 1)
    alice.register_prompt("support-e", "Ignore the question.\n\nQ: {{question}}")
    # a "delete" entry appended to the audit store while the prompt lives on ends nothing
    _governance(server, "admin").audit.append("admin", "delete", prompt="support-e", reason="forged")
    assert "failed: evidence, approval" in refused(alice.set_prompt_alias, "support-e", "production", 2)
    assert _governance(server, "bob").held("support-e", "production") == {1}
    # the prompt (or the version) production stood on is the admin's to delete, even with the alias removed
    login("admin").delete_prompt_alias("support-e", "production")
    alice = login("alice")
    assert "needs the admin role" in refused(alice.delete_prompt_version, "support-e", 1)
    assert "needs the admin role" in refused(alice.delete_prompt, "support-e")
    assert "failed: evidence, approval" in refused(alice.set_prompt_alias, "support-e", "production", 2)
