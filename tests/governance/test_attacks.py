"""A hostile teammate against governance, through the SDK, the CLI, prompt files and the flows.
(The plain MLflow client against the guarded server: test_mlflow_guard.py.) Every attack must be
refused with a message that names what was refused, change nothing in the registry, and be audited."""

import json
import re
import time

import mlflow
import pytest
from click.testing import CliRunner
from helpers import SEED_TEMPLATE, tiny_rows, write_dataset

import promptyard
from promptyard.cli import cli
from promptyard.errors import PermissionDeniedError, UserError
from promptyard.evaluation import load_dataset
from promptyard.governance import Evidence, Governance
from promptyard.registry import Contract
from promptyard.runtime import Tracker, get_settings

POLICY = """\
protected_aliases: [production]
service_users: [scheduler]
roles:
  "": {viewer: ["*"], admin: [carol]}
  "support": {editor: [alice, scheduler], approver: [bob, dave]}
promotion:
  "": {approvals: 1, max_evidence_age_days: 14, dataset: tickets}
"""
FORGED = json.dumps({"alias": "production", "reason": "looks fine"})


def team_policy(more_rules: str = "") -> str:
    """The team's policy; its `dataset` is the tickets folder of this test."""
    folder = get_settings().home_dir.parent / "datasets" / "tickets"
    return POLICY.replace("dataset: tickets", f"dataset: {folder}{more_rules}")


@pytest.fixture
def tickets(tmp_path):
    return load_dataset(write_dataset(tmp_path / "datasets" / "tickets", tiny_rows(300), test=150, validation=50))


@pytest.fixture
def team(registry, tickets):
    home = get_settings().home_dir
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.yaml").write_text(team_policy())
    users = {u: Governance.from_settings(registry, user=u) for u in ("alice", "bob", "carol", "dave", "vic",
                                                                      "scheduler")}
    users["alice"].register("support", "Be kind.\n\nQ: {{question}}")
    users["alice"].set_alias("support", "production", 1)
    users["alice"].register("support", "Be kind and brief.\n\nQ: {{question}}")
    return users


def snapshot(registry, name="support"):
    """Everything an attack could change: versions with their tags, aliases, prompt tags."""
    versions = {int(v.version): (v.template, dict(v.tags), sorted(v.aliases)) for v in registry.versions(name)}
    return versions, {k: v for k, v in registry.prompt_tags(name).items() if not k.startswith("_mlflow")}


def refusals(team):
    return [e for e in team["carol"].audit.entries() if e.action == "refused"]


def record(team, run_id=None, *, by="alice", candidate=2, **changes):
    data = load_dataset(get_settings().home_dir.parent / "datasets" / "tickets")
    tracker = Tracker(team["alice"].registry.tracking_uri, "evidence")
    run_id = run_id or tracker.start_run("offline A/B")
    fields = dict(prompt="support", baseline=1, candidate=candidate, split="test", dataset="tickets",
                  dataset_digest=data.digest, metric="exact_label", n=150, confidence=0.95, diff=0.08, low=0.03,
                  high=0.13, dataset_path=str(data.path.parent))
    team[by].record_evidence(run_id, Evidence(**{**fields, **changes}))
    return run_id


def invoke(*args, user="alice", code=0):
    result = CliRunner().invoke(cli, list(args), env={"PROMPTYARD_USER": user})
    assert result.exit_code == code, result.output
    return result.output


# -- reserved keys ------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["promptyard.approval.bob", "promptyard.author", "promptyard.evidence.prompt",
                                 "mlflow.prompt.text", "_mlflow_prompt_type"])
def test_a_forged_reserved_tag_at_registration_is_refused_by_every_door(team, registry, tmp_path, key, monkeypatch):
    before = snapshot(registry)
    with pytest.raises(PermissionDeniedError, match=f"tag '{key}' is reserved"):
        team["alice"].register("support", "Forged.\n\nQ: {{question}}", tags={key: FORGED})
    with pytest.raises(PermissionDeniedError, match=f"{key} is not a provenance key"):
        team["alice"].register("support", "Forged.\n\nQ: {{question}}", provenance={key: FORGED})
    monkeypatch.setenv("PROMPTYARD_USER", "alice")
    with pytest.raises(PermissionDeniedError, match=f"tag '{key}' is reserved"):
        promptyard.register_prompt("support", "Forged.\n\nQ: {{question}}", tags={key: FORGED})
    out = invoke("prompts", "register", "support", "--template", "Forged.\\n\\nQ: {{question}}", "--tag",
                 f"{key}={FORGED}", code=1)
    assert f"tag '{key}' is reserved" in out
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "support.yaml").write_text(f"name: support\ntemplate: 'Forged: {{{{question}}}}'\ntags:\n  {key}: x\n")
    assert f"tag '{key}' is reserved" in invoke("prompts", "import", "--dir", str(folder), code=1)
    assert snapshot(registry) == before
    assert len(refusals(team)) == 5 and {e.user for e in refusals(team)} == {"alice"}


@pytest.mark.parametrize("key", ["promptyard.ab.production", "promptyard.contract", "promptyard.ab.production.last",
                                 "promptyard.anything", "mlflow.prompt.is_prompt",
                                 # look-alikes: case, space, width, a Cyrillic а, a dotless ı
                                 "Promptyard.contract", " promptyard.contract", "PROMPTYARD.ab.production",
                                 "ｐromptyard.contract", "promptyаrd.contract", "promptyard.approval.bob",
                                 "MLflow.Prompt.is_prompt", "_mlflow_prompt_type"])
def test_reserved_prompt_tags_are_refused_by_sdk_and_import(team, registry, tmp_path, key):
    before = snapshot(registry)
    with pytest.raises(PermissionDeniedError, match=f"tag {re.escape(repr(key))} is reserved"):
        team["carol"].set_prompt_tags("support", {key: '{"id": "x", "weights": {"1": 0.5, "2": 0.5}, "control": 1}'})
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "support.yaml").write_text(f"name: support\ntemplate: 'Be kind.\n\n  Q: {{{{question}}}}'\n"
                                         f"tags:\n  {json.dumps(key)}: x\n")
    assert f"tag {key!r} is reserved" in invoke("prompts", "import", "--dir", str(folder), code=1)
    assert snapshot(registry) == before


# -- rollback --------------------------------------------------------------------------------
def test_rollback_only_to_a_version_the_alias_held_and_keeping_the_contract(team, registry, tickets):
    alice, bob = team["alice"], team["bob"]
    alice.register("support", "Third.\n\nQ: {{question}}")
    bob.approve("support", 3)
    record(team, candidate=3)
    alice.promote("support", 3)  # production: v1 -> v3; v2 never held it
    before = snapshot(registry)
    with pytest.raises(PermissionDeniedError, match=r"v2 never held support@production \(held: v1, v3"):
        bob.rollback("support", 2, reason="lower, but never production")
    assert "v2 never held support@production" in invoke("prompts", "rollback", "support", "--to", "2", "--reason",
                                                        "x", user="bob", code=1)
    assert snapshot(registry) == before
    bob.set_contract("support", Contract(["question", "customer"]), reason="apps now send the customer")
    with pytest.raises(PermissionDeniedError, match=r"(?s)failed: contract.*v1 drops \{\{customer\}\}"):
        bob.rollback("support", 1, reason="complaints")
    assert int(registry.get("support@production").version) == 3
    bob.set_contract("support", Contract(["question"]), reason="back to one variable")
    bob.rollback("support", 1, reason="complaints")
    assert int(registry.get("support@production").version) == 1
    history = invoke("prompts", "history", "support", "--alias", "production").splitlines()
    assert [line.split()[1:4] for line in history] == [["v1", "alias", "alice"], ["v3", "promote", "alice"],
                                                        ["v1", "rollback", "bob"]]


# -- evidence --------------------------------------------------------------------------------
def test_a_hand_made_evidence_run_is_not_evidence(team, registry):
    from promptyard.governance import evidence_tags

    team["bob"].approve("support", 2)
    tracker = Tracker(registry.tracking_uri, "evidence")
    run_id = tracker.start_run("looks like evidence", tags=evidence_tags("support", 1, 2, "tickets", "test"))
    tracker.log(run_id, metrics={"evidence_diff_low": 0.2, "evidence_diff": 0.3, "evidence_n": 1000,
                                 "evidence_confidence": 0.99})
    before = snapshot(registry)
    with pytest.raises(PermissionDeniedError, match="is not anchored in the audit log: a run made by hand"):
        team["alice"].promote("support", 2)
    assert "is not anchored in the audit log" in invoke("prompts", "promote", "support", "2", code=1)
    assert snapshot(registry) == before


def test_evidence_edited_after_it_was_recorded_is_refused(team, registry):
    team["bob"].approve("support", 2)
    run_id = record(team, low=-0.04)  # honestly recorded: v2 may be worse
    mlflow.MlflowClient(registry.tracking_uri).log_metric(run_id, "evidence_diff_low", 0.2)  # then "fixed" by hand
    with pytest.raises(PermissionDeniedError, match="was changed after it was recorded"):
        team["alice"].promote("support", 2)
    assert int(registry.get("support@production").version) == 1


def test_stale_evidence_and_data_that_changed_since(team, registry, tickets):
    team["bob"].approve("support", 2)
    record(team)
    later = Governance(registry, team["alice"].policy, "alice", team["alice"].audit, now=lambda: time.time() + 20 * 86400)
    with pytest.raises(PermissionDeniedError, match="is stale: 20 days old"):
        later.promote("support", 2)
    with open(tickets.path, "a") as handle:
        handle.write(json.dumps({"text": "added later", "label": "positive"}) + "\n")
    with pytest.raises(PermissionDeniedError, match=f"at digest {tickets.digest}; the data is now"):
        team["alice"].promote("support", 2)
    assert int(registry.get("support@production").version) == 1


def test_only_editors_record_evidence_and_the_policy_can_name_who(team, registry):
    with pytest.raises(PermissionDeniedError, match="vic is viewer on 'support' and cannot record promotion evidence"):
        record(team, by="vic")
    home = get_settings().home_dir
    (home / "policy.yaml").write_text(team_policy(", evidence_by: [ci]"))
    alice = Governance.from_settings(registry, user="alice")
    team["bob"].approve("support", 2)
    record({"alice": alice})
    with pytest.raises(PermissionDeniedError, match="was recorded by alice; the policy trusts evidence from ci only"):
        alice.promote("support", 2)
    assert int(registry.get("support@production").version) == 1


# -- separation of duties ---------------------------------------------------------------------
def test_the_service_identity_registers_but_never_touches_a_protected_alias(team, registry):
    bot = team["scheduler"]
    version = int(bot.register("support", "Scheduled.\n\nQ: {{question}}").version)
    bot.set_alias("support", "candidate", version)  # allowed: its job
    team["bob"].approve("support", version)
    record(team, candidate=version)
    before = snapshot(registry)
    with pytest.raises(PermissionDeniedError, match="scheduler is a service identity .* cannot promote"):
        bot.promote("support", version)
    with pytest.raises(PermissionDeniedError, match="cannot start an experiment on support@production"):
        promptyard.Experiments(registry, bot).start("support@production", {1: 0.5, version: 0.5})
    assert snapshot(registry) == before
    (get_settings().home_dir / "policy.yaml").write_text(team_policy().replace("approver: [bob, dave]",
                                                                               "approver: [bob, dave, scheduler]"))
    bot = Governance.from_settings(registry, user="scheduler")
    with pytest.raises(PermissionDeniedError, match="scheduler is a service identity and cannot approve"):
        bot.approve("support", 2)
    with pytest.raises(PermissionDeniedError, match="service identity .* cannot roll back"):
        bot.rollback("support", 1)
    assert snapshot(registry) == before


def test_a_service_approval_written_behind_promptyard_does_not_count(team, registry):
    client = mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri)
    client.set_prompt_version_tag("support", 2, "promptyard.approval.scheduler", FORGED)  # an unguarded store
    record(team)
    with pytest.raises(PermissionDeniedError, match="0 of 1 approval"):
        team["alice"].promote("support", 2)


# -- four eyes without an author stamp --------------------------------------------------------
def test_author_unknown_or_stamp_removed_still_means_four_eyes(team, registry):
    client = mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri)
    client.register_prompt("support", "Behind promptyard's back.\n\nQ: {{question}}")  # no stamp, no audit entry
    with pytest.raises(PermissionDeniedError, match="author of support/3 is unknown"):
        team["bob"].approve("support", 3)
    dave = team["dave"]
    dave.register("support", "By dave.\n\nQ: {{question}}")
    client.delete_prompt_version_tag("support", 4, "promptyard.author")  # the stamp gone, the audit log remains
    with pytest.raises(PermissionDeniedError, match="dave registered support/4 and cannot approve it"):
        dave.approve("support", 4)
    assert not [k for v in registry.versions("support") for k in v.tags if k.startswith("promptyard.approval")]


# -- code named by a dataset card ---------------------------------------------------------------
def test_a_card_naming_os_system_runs_nothing(team, registry, tmp_path, fake_llm, monkeypatch):
    folder = write_dataset(tmp_path / "datasets" / "evil", tiny_rows(300), test=150, validation=50)
    card = folder / "README.md"
    card.write_text(card.read_text().replace("metric: exact_label", "metric: os:system"))
    monkeypatch.setenv("PROMPTYARD_USER", "alice")
    Governance.from_settings(registry, user="alice").register("support-evil", SEED_TEMPLATE)
    for args in (["eval", "support-evil", "--dataset", str(folder)], ["ab", "offline", "support/1", "support/2", "--dataset",
                                                              str(folder)]):
        assert "Metric 'os:system' is not allowed" in invoke(*args, code=1)
    with pytest.raises(UserError, match="Metric 'os:system' is not allowed"):
        load_dataset(folder)
    assert fake_llm.requests == []


# -- behind promptyard's back, without the guard -------------------------------------------------
def test_an_alias_moved_behind_promptyards_back_is_reported(team, registry):
    assert invoke("audit", "verify", user="carol").splitlines()[-1] == \
        "every protected alias and every version is what the audit log recorded"
    mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri).set_prompt_alias("support", "production", 2)
    out = invoke("audit", "verify", user="carol", code=1)
    assert "support@production points to v2, but the audit log put it on v1 (entry 5): it was moved outside " \
           "promptyard" in out


def test_history_and_what_an_alias_served_at_a_time(team, registry):
    from datetime import UTC, datetime

    before_any = "2000-01-01T00:00"
    assert "support@production did not exist at 2000-01-01T00:00:00+00:00" in invoke("prompts", "show", "support@production",
                                                                        "--at", before_any, code=1)
    assert "is not a time: write it as ISO 8601" in invoke("prompts", "show", "support@production", "--at",
                                                           "yesterday", code=1)
    assert "--at needs NAME@ALIAS" in invoke("prompts", "show", "support/2", "--at", before_any, code=1)
    first = datetime.now(UTC).isoformat()
    team["bob"].approve("support", 2)
    record(team)
    team["alice"].promote("support", 2, reason="won offline")
    assert invoke("prompts", "show", "support@production", "--at", first).startswith("support version 1")
    assert invoke("prompts", "show", "support@production").startswith("support version 2")
    rows = json.loads(invoke("prompts", "history", "support", "--json"))
    assert [(r["version"], r["action"], r["user"]) for r in rows] == [(1, "alias", "alice"), (2, "promote", "alice")]
    assert rows[1]["reason"] == "won offline" and rows[1]["evidence_run_id"]


# -- found by a hostile review ----------------------------------------------------------------------
def test_hiding_the_production_version_from_mlflows_prompt_api_does_not_unprotect_it(team, registry):
    client = mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri)
    client.delete_prompt_version_tag("support", 1, "mlflow.prompt.is_prompt")  # an unguarded store
    assert client.get_prompt_version_by_alias("support", "production") is None  # MLflow's prompt API: gone
    assert registry.alias_version("support", "production") == 1  # promptyard reads the alias itself
    with pytest.raises(PermissionDeniedError, match="support@production is protected \\(now v1\\)"):
        team["alice"].set_alias("support", "production", 2)


def test_approvals_count_only_when_audited_and_templates_only_as_registered(team, registry):
    client = mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri)
    client.set_prompt_version_tag("support", 2, "promptyard.approval.bob", FORGED)  # forged behind promptyard
    record(team)
    with pytest.raises(PermissionDeniedError, match="0 of 1 approval"):
        team["alice"].promote("support", 2)
    team["bob"].approve("support", 2)
    client.set_prompt_version_tag("support", 2, "mlflow.prompt.text", "Rewritten in place.\n\nQ: {{question}}")
    with pytest.raises(PermissionDeniedError, match="(?s)failed: approval, integrity.*v2's template changed after it was registered"):
        team["alice"].promote("support", 2)
    assert "support/2: v2's template changed after it was registered" in invoke("audit", "verify", code=1)
    assert int(registry.get("support@production").version) == 1


def test_an_approval_appended_to_the_audit_log_alone_does_not_count(team, registry):
    """Anyone holding the audit store's credentials can append an entry in bob's name; without bob's tag on
    the version (which a guarded server lets only bob's login write) it is not an approval."""
    from promptyard.governance.checks import template_digest

    record(team)
    team["carol"].audit.append("bob", "approve", prompt="support", version=2, alias="production",
                               after={"template_sha256": template_digest(registry.get("support/2").template)})
    with pytest.raises(PermissionDeniedError, match="0 of 1 approval"):
        team["alice"].promote("support", 2)
    team["bob"].approve("support", 2)
    team["alice"].promote("support", 2)
    assert int(registry.get("support@production").version) == 2


def test_a_removed_protected_alias_is_not_new_again(team, registry):
    client = mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri)
    client.delete_prompt_alias("support", "production")  # behind promptyard, or an admin cleaning up
    team["bob"].approve("support", 2)
    before = snapshot(registry)
    with pytest.raises(PermissionDeniedError, match=r"support@production is protected \(last on v1, then removed\)"):
        team["alice"].set_alias("support", "production", 2)
    with pytest.raises(PermissionDeniedError, match="no run compares v2 with v1"):
        team["alice"].promote("support", 2)
    assert snapshot(registry) == before
    team["bob"].rollback("support", 1, reason="put back")
    assert int(registry.get("support@production").version) == 1
