"""Policy files: roles per namespace, errors that name the line."""

import pytest

from promptyard.errors import PermissionDeniedError, PolicyError
from promptyard.governance import load_policy, parse_policy

POLICY = """\
protected_aliases: [production, stable]
roles:
  "": {viewer: ["*"], admin: [carol]}
  "support.": {editor: [alice], approver: [bob]}
promotion:
  "": {approvals: 1, max_evidence_age_days: 30}
  "support.": {dataset: intent_recognition, approvals: 2}
"""


def test_roles_by_namespace_and_hierarchy():
    policy = parse_policy(POLICY, "p.yaml")
    assert policy.role_of("alice", "support.refund") == "editor"
    assert policy.role_of("alice", "sales.intro") == "viewer"
    assert policy.role_of("carol", "support.refund") == "admin"
    policy.require("bob", "editor", "support.refund", "register")  # approver ⊇ editor
    with pytest.raises(PermissionDeniedError, match="alice is editor on 'support.refund' and cannot approve"):
        policy.require("alice", "approver", "support.refund", "approve")
    assert policy.is_protected("stable") and not policy.is_protected("staging")
    rule = policy.rule_for("support.refund")
    assert (rule.approvals, rule.dataset, rule.max_evidence_age_days) == (2, "intent_recognition", 30)


def test_unknown_user_and_unknown_role():
    policy = parse_policy('roles:\n  "": {editor: [alice]}\n', "p.yaml")
    with pytest.raises(PermissionDeniedError, match="Unknown user 'mallory'.*users in the policy: alice"):
        policy.require("mallory", "viewer", "x", "read")
    with pytest.raises(PolicyError, match="Unknown role 'owner'"):
        policy.require("alice", "owner", "x", "own")


@pytest.mark.parametrize("text, message", [
    ('roles:\n  "": {viewer: [a]\n', r"p.yaml line \d+ does not parse"),
    ('roles:\n  "":\n    viewr: [a]\n', "p.yaml line 3: unknown role 'viewr'"),
    ('protected_aliases: [production]\nrole: {}\n', "p.yaml line 2: unknown key 'role'"),
    ('promotion:\n  "": {aprovals: 2}\n', "p.yaml line 2: unknown promotion setting.*aprovals"),
    ('roles:\n  "":\n    editor: alice\n', "p.yaml line 3: users of role 'editor' must be a list"),
])
def test_bad_policy_files_name_the_line(text, message):
    with pytest.raises(PolicyError, match=message):
        parse_policy(text, "p.yaml")


def test_lookup_order(tmp_path, monkeypatch):
    assert load_policy(tmp_path).source == "built-in default"
    (tmp_path / "policy.yaml").write_text(POLICY)
    assert load_policy(tmp_path).source == str(tmp_path / "policy.yaml")
    other = tmp_path / "team.yaml"
    other.write_text('roles:\n  "": {admin: [root]}\n')
    monkeypatch.setenv("PROMPTYARD_POLICY_FILE", str(other))
    assert load_policy(tmp_path).source == str(other)
    monkeypatch.setenv("PROMPTYARD_POLICY_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path)
