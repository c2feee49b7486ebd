"""A hostile teammate against governance, continued: online evidence, look-alike datasets, evidence models,
re-created prompts, claimed identities, refused policy changes and experiment splits."""

import mlflow
import pytest
from helpers import tiny_rows, write_dataset
from test_attacks import invoke, record, team, team_policy, tickets  # noqa: F401 (fixtures)

import promptyard
from promptyard.errors import PermissionDeniedError
from promptyard.evaluation import load_dataset
from promptyard.governance import Governance
from promptyard.runtime import get_settings


def test_online_evidence_must_name_an_experiment_that_ran(team, registry):
    team["bob"].approve("support", 2)
    record(team, split="online", dataset="online:made-up", dataset_digest=None, n=100000, low=0.2)
    with pytest.raises(PermissionDeniedError, match="names experiment online:made-up, which the audit log never saw"):
        team["alice"].promote("support", 2)


def test_a_look_alike_dataset_folder_is_not_the_policys_dataset(team, registry, tmp_path):
    fake = write_dataset(tmp_path / "elsewhere" / "tickets", tiny_rows(300)[::-1], test=150, validation=50)
    team["bob"].approve("support", 2)
    data = load_dataset(fake)
    record(team, dataset_digest=data.digest, dataset_path=str(fake))  # same card name, other examples
    with pytest.raises(PermissionDeniedError, match="at digest .*; the data is now"):
        team["alice"].promote("support", 2)


def test_the_policy_can_name_the_models_evidence_must_come_from(team, registry):
    (get_settings().home_dir / "policy.yaml").write_text(team_policy(", evidence_models: [gpt-4o]"))
    alice = Governance.from_settings(registry, user="alice")
    team["bob"].approve("support", 2)
    record({"alice": alice}, lm_model="fake-that-likes-v2")
    with pytest.raises(PermissionDeniedError, match="was measured with model fake-that-likes-v2; the policy accepts "
                                                    "gpt-4o"):
        alice.promote("support", 2)


def test_a_re_created_prompt_name_starts_afresh(team, registry):
    mlflow.MlflowClient(registry.tracking_uri, registry.tracking_uri).delete_prompt("support")
    bob = team["bob"]
    bob.register("support", "Bob's.\n\nQ: {{question}}")
    bob.register("support", "Bob's too.\n\nQ: {{question}}")  # v2 again: the old v2 was alice's
    with pytest.raises(PermissionDeniedError, match="bob registered support/2 and cannot approve it"):
        bob.approve("support", 2)  # alice's old v2 entry is about other content; the new v2 is bob's


def test_mlflow_username_is_an_identity_only_where_a_server_checks_it(team, registry, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")  # nothing checks that name on a local store
    monkeypatch.setenv("PROMPTYARD_USER", "alice")
    with pytest.raises(PermissionDeniedError, match="alice is editor on 'support' and cannot approve"):
        Governance.from_settings(registry).approve("support", 2)


def test_a_refused_policy_change_is_audited(team, tmp_path):
    other = tmp_path / "mine.yaml"
    other.write_text('roles:\n  "": {admin: [mallory]}\n')
    assert "cannot change the policy" in invoke("policy", "apply", str(other), "--reason", "x", user="mallory", code=1)
    assert [(e.user, e.action) for e in team["carol"].audit.entries() if e.action == "refused"] == [
        ("mallory", "refused")]


def test_experiment_splits_on_production_need_second_eyes_and_reallocations_change_only_weights(team, registry):
    bob = team["bob"]
    bob.register("support", "Bob's own.\n\nQ: {{question}}")  # v3, never approved by anyone else
    experiments = promptyard.Experiments(registry, bob)
    with pytest.raises(PermissionDeniedError, match="v3 would get support@production traffic with no second person"):
        experiments.start("support@production", {1: 1e-9, 3: 1 - 1e-9})
    experiment = experiments.start("support@production", {1: 0.5, 2: 0.5}, thompson=True)  # alice's v2: bob approves
    alice_side = promptyard.Experiments(registry, team["alice"])
    from dataclasses import replace
    with pytest.raises(PermissionDeniedError, match="keeps the versions \\[1, 2\\], got \\[1, 3\\]"):
        alice_side.update(replace(experiment, weights={1: 0.01, 3: 0.99}, epoch=1))
    moved = replace(experiment, prompt="support.sandbox", weights={1: 0.2, 2: 0.8}, epoch=1)
    with pytest.raises(PermissionDeniedError, match="may change the weights only, not prompt"):
        team["alice"].reallocate_experiment("support", "production", moved.to_json(), before=None, after=None,
                                            reason="sneaky")
    alice_side.update(experiment.with_weights({1: 0.2, 2: 0.8}))  # a real reallocation: fine
    assert experiments.get("support@production").weights == {1: 0.2, 2: 0.8}
