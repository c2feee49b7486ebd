"""Earned promotion: roles, evidence, four eyes, contract, rollback, audit — through the SDK."""

import json

import mlflow
import pytest
from helpers import SEED_TEMPLATE, tiny_rows, write_dataset

from promptyard.errors import PermissionDeniedError, TemplateError
from promptyard.evaluation import load_dataset
from promptyard.governance import Evidence, Governance
from promptyard.runtime import Tracker, get_settings

POLICY = """\
protected_aliases: [production]
roles:
  "": {viewer: ["*"], admin: [carol]}
  "support": {editor: [alice], approver: [bob, dave]}
promotion:
  "": {approvals: 1, max_evidence_age_days: 14, margin: 0.01, dataset: tickets}
"""


def team_policy(more_rules: str = "") -> str:
    """The team's policy; its `dataset` is the tickets folder of this test."""
    folder = get_settings().home_dir.parent / "datasets" / "tickets"
    return POLICY.replace("dataset: tickets", f"dataset: {folder}{more_rules}")


@pytest.fixture
def tickets(tmp_path):
    """The dataset the policy names: 150 test examples."""
    return load_dataset(write_dataset(tmp_path / "datasets" / "tickets", tiny_rows(300), test=150, validation=50))


@pytest.fixture
def team(registry, tickets):
    home = get_settings().home_dir
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.yaml").write_text(team_policy())
    as_user = {u: Governance.from_settings(registry, user=u) for u in ("alice", "bob", "carol", "dave", "vic")}
    alice = as_user["alice"]
    alice.register("support", "Be kind.\n\nQ: {{question}}")
    alice.set_alias("support", "production", 1)  # a new protected alias needs no evidence
    alice.register("support", "Be kind and brief.\n\nQ: {{question}}")
    return as_user


def evidence(registry, candidate, *, baseline=1, low=0.02, split="test", n=150, confidence=0.95, dataset=None,
             by="alice", team=None):
    """An offline A/B result for support/`candidate` on the tickets data, recorded (run + audit) by `by`."""
    data = load_dataset(get_settings().home_dir.parent / "datasets" / "tickets")
    tracker = Tracker(registry.tracking_uri, "evidence")
    run_id = tracker.start_run("offline A/B")
    record = Evidence(prompt="support", baseline=baseline, candidate=candidate, split=split,
                      dataset=dataset or data.card.name, dataset_digest=data.digest, metric="exact_label", n=n,
                      confidence=confidence, diff=low + 0.05, low=low, high=low + 0.1,
                      dataset_path=str(data.path.parent))
    (team or {}).get(by, Governance.from_settings(registry, user=by)).record_evidence(run_id, record)
    tracker.finish(run_id)
    return run_id


def version_on(registry, alias="production"):
    return int(registry.get(f"support@{alias}").version)


def test_register_stamps_the_author_and_is_audited(team, registry):
    assert registry.get("support/2").tags["promptyard.author"] == "alice"
    entries = [e for e in team["alice"].audit.entries("support") if e.action != "intent"]
    assert [(e.user, e.action, e.version, e.alias) for e in entries] == [
        ("alice", "register", 1, None), ("alice", "alias", 1, "production"), ("alice", "register", 2, None)]


def test_roles_are_enforced(team, registry):
    with pytest.raises(PermissionDeniedError, match="vic is viewer on 'support' and cannot register"):
        team["vic"].register("support", "x {{question}}")
    with pytest.raises(PermissionDeniedError, match="alice is editor .* cannot approve"):
        team["alice"].approve("support", 2)
    with pytest.raises(PermissionDeniedError, match="cannot roll back"):
        team["alice"].rollback("support", 1)
    assert len(registry.versions("support")) == 2


def test_a_protected_alias_cannot_be_moved_directly(team, registry):
    with pytest.raises(PermissionDeniedError, match="support@production is protected .* prompts promote support 2"):
        team["carol"].set_alias("support", "production", 2)  # not even by an admin
    assert version_on(registry) == 1
    team["alice"].set_alias("support", "staging", 2)  # other aliases: editors move them freely
    assert version_on(registry, "staging") == 2


def test_promotion_needs_evidence_approval_and_contract(team, registry, tickets):
    with pytest.raises(PermissionDeniedError) as refused:
        team["alice"].promote("support", 2)
    message = str(refused.value)
    assert "failed: evidence, approval" in message and "ok   contract" in message
    assert f"ab offline support/1 support/2 --dataset {tickets.path.parent}" in message
    assert version_on(registry) == 1

    author_as_approver = Governance(registry, team["bob"].policy.__class__(
        team["bob"].policy.protected_aliases, {"": {"approver": frozenset({"alice"})}}), "alice", team["bob"].audit)
    with pytest.raises(PermissionDeniedError, match="alice registered support/2 and cannot approve it"):
        author_as_approver.approve("support", 2)  # four eyes, even for an approver
    team["bob"].approve("support", 2, reason="reviewed")
    run_id = evidence(registry, 2, team=team)
    checks = team["alice"].promote("support", 2, reason="offline A/B win")
    assert [(c.name, c.ok) for c in checks] == [("evidence", True), ("approval", True), ("contract", True),
                                               ("integrity", True)] and checks[0].run_id == run_id
    assert version_on(registry) == 2
    last = team["alice"].audit.entries("support")[-1]
    assert (last.action, last.before, last.after, last.evidence_run_id, last.user) == ("promote", "1", "2", run_id, "alice")


@pytest.mark.parametrize("kwargs, problem", [
    ({"dataset": "other"}, "is on dataset other, the policy requires tickets"),
    ({"split": "validation"}, "measured on the validation split"),
    ({"low": -0.05}, "may be worse: lower bound -0.050"),
    ({"baseline": 3}, "compares with v3, but the alias is on v1"),
    ({"n": 3}, "rests on 3 paired examples; the policy needs at least 100"),
    ({"confidence": 0.05}, "is at confidence 0.05; the policy needs at least 0.95"),
])
def test_evidence_that_does_not_qualify(team, registry, kwargs, problem):
    team["bob"].approve("support", 2)
    evidence(registry, 2, **kwargs)
    with pytest.raises(PermissionDeniedError, match=problem):
        team["alice"].promote("support", 2)
    assert version_on(registry) == 1


def test_contract_violation_and_rejection(team, registry):
    team["alice"].register("support", "Be kind.\n\nQ: {{query}}")
    team["bob"].approve("support", 3)
    evidence(registry, 3, team=team)
    with pytest.raises(PermissionDeniedError, match=r"contract: v3 drops \{\{question\}\}; needs \{\{query\}\}"):
        team["alice"].promote("support", 3)
    team["dave"].approve("support", 2)
    team["bob"].approve("support", 2, reject=True, reason="tone")
    evidence(registry, 2, team=team)
    with pytest.raises(PermissionDeniedError, match="rejected by bob"):
        team["alice"].promote("support", 2)
    assert version_on(registry) == 1


def test_rollback_is_for_approvers_to_an_earlier_version(team, registry):
    team["bob"].approve("support", 2)
    evidence(registry, 2, team=team)
    team["alice"].promote("support", 2)
    team["alice"].register("support", "Newest.\n\nQ: {{question}}")
    with pytest.raises(PermissionDeniedError, match="v3 never held support@production"):
        team["bob"].rollback("support", 3, reason="try")
    team["bob"].rollback("support", 1, reason="complaints")
    assert version_on(registry) == 1
    entry = team["bob"].audit.entries("support")[-1]
    assert (entry.action, entry.user, entry.before, entry.after, entry.reason) == ("rollback", "bob", "2", "1", "complaints")
    assert team["bob"].audit.verify() == len(team["bob"].audit.entries())


def test_credentials_never_reach_the_registry(team, registry):
    with pytest.raises(TemplateError, match="looks like a credential"):
        team["alice"].register("support", "Use key sk-proj-abcdefghijklmnopqrstuvwxyz123456 {{question}}")
    with pytest.raises(TemplateError, match="Tag owner_token"):
        team["alice"].register("support", SEED_TEMPLATE.replace("{{text}}", "{{question}}"),
                               tags={"owner_token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"})
    assert len(registry.versions("support")) == 2


def test_offline_ab_run_is_evidence(team, registry, fake_llm, tickets, monkeypatch):
    from promptyard.serving import compare_prompts

    monkeypatch.setenv("PROMPTYARD_USER", "alice")
    data = tickets.path.parent
    alice = team["alice"]
    alice.register("support-sentiment", SEED_TEMPLATE)
    alice.set_alias("support-sentiment", "production", 1)
    alice.register("support-sentiment", SEED_TEMPLATE.replace("Classify", "Read carefully and classify"))
    result = compare_prompts(get_settings(), "support-sentiment/1", "support-sentiment/2", str(data))
    team["bob"].approve("support-sentiment", 2)
    checks = alice.promote("support-sentiment", 2)
    assert checks[0].run_id == result["run_id"] and "test on tickets" in checks[0].detail
    assert checks[0].detail.endswith("model fake")  # the model that answered, for a policy's evidence_models
    anchored = json.loads([e for e in alice.audit.entries() if e.action == "evidence"][-1].after)
    assert (anchored["lm_model"], anchored["lm_base_url"]) == ("fake", fake_llm.base_url.rstrip("/"))
    tags = mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri).get_prompt_version("support-sentiment", 2).tags
    assert json.loads(tags["promptyard.approval.bob"])["alias"] == "production"


def test_a_policy_file_edited_in_place_is_audited_on_first_use(team, registry):
    def policy_entries():
        return [e for e in team["alice"].audit.entries() if e.action == "policy"]

    assert len(policy_entries()) == 1  # the team's policy, first used by the fixture
    home = get_settings().home_dir
    (home / "policy.yaml").write_text(team_policy().replace("approver: [bob, dave]", "approver: [bob]"))
    Governance.from_settings(registry, user="carol")
    Governance.from_settings(registry, user="alice")
    entries = policy_entries()
    assert len(entries) == 2 and entries[-1].user == "carol" and "first use" in entries[-1].reason
    assert team["alice"].audit.verify() == len(team["alice"].audit.entries())
