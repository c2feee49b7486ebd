"""Flows act as the configured user and go through the same governance as the CLI."""

import pytest
from helpers import SEED_TEMPLATE

from flows.ab_analysis import analyze_experiment
from flows.optimize import optimize_prompt
from promptyard.errors import PermissionDeniedError
from promptyard.serving import Experiments
from promptyard.governance import Governance
from promptyard.serving import PromptClient
from promptyard.runtime import get_settings

POLICY = """\
roles:
  "": {viewer: ["*"], admin: [carol]}
  "support": {editor: [alice], approver: [bob]}
"""


@pytest.fixture
def policy(monkeypatch):
    home = get_settings().home_dir
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.yaml").write_text(POLICY)


def test_a_viewer_cannot_optimize_and_no_lm_call_is_made(policy, fake_llm, tiny_dataset, registry, monkeypatch):
    carol = Governance.from_settings(registry, user="carol")
    carol.register("sentiment", SEED_TEMPLATE)
    monkeypatch.setenv("PROMPTYARD_USER", "vic")
    with pytest.raises(PermissionDeniedError, match="vic is viewer on 'sentiment' and cannot register optimized"):
        optimize_prompt(prompt="sentiment", dataset=str(tiny_dataset), optimizer={"name": "copro", "max_candidates": 1})
    assert fake_llm.chat_requests() == [] and len(registry.versions("sentiment")) == 1


def test_an_online_winner_written_by_the_starter_needs_another_approver(policy, registry, monkeypatch):
    bob = Governance.from_settings(registry, user="bob")
    bob.register("support", "Be kind.\n\nQ: {{question}}")
    bob.set_alias("support", "production", 1)
    bob.register("support", "Be kind and give the order status.\n\nQ: {{question}}")
    monkeypatch.setenv("PROMPTYARD_USER", "bob")  # bob starts the test of his own version: no approval recorded
    experiments = Experiments(registry)
    with pytest.raises(PermissionDeniedError, match="no second person's eyes on it: bob registered it"):
        experiments.start("support@production", {1: 0.5, 2: 0.5}, min_samples=30)
    assert experiments.get("support@production") is None
    monkeypatch.setenv("PROMPTYARD_USER", "carol")  # a second approver looks at v2 first
    Governance.from_settings(registry).approve("support", 2)
    monkeypatch.setenv("PROMPTYARD_USER", "bob")
    experiments.start("support@production", {1: 0.5, 2: 0.5}, min_samples=30)
    client = PromptClient()
    for unit in range(400):
        a = client.assign("support@production", f"u{unit}")
        client.record_outcome(a, (unit % 10) < (2 if a.version == 1 else 7))
    client.close()
    result = analyze_experiment(prompt="support@production")
    assert result["decision"] == "promote" and result["applied"]["decision"] == "promote", result
    assert int(registry.get("support@production").version) == 2 and experiments.get("support@production") is None
    checks = Governance.from_settings(registry).promotion.all("support", 2, "production")
    assert next(c for c in checks if c.name == "approval").ok


def test_starting_an_experiment_on_production_needs_an_approver(policy, registry, monkeypatch):
    alice = Governance.from_settings(registry, user="alice")
    alice.register("support", "Be kind.\n\nQ: {{question}}")
    alice.set_alias("support", "production", 1)
    alice.register("support", "Be kind.\n\nQuestion: {{query}}")
    monkeypatch.setenv("PROMPTYARD_USER", "alice")
    with pytest.raises(PermissionDeniedError, match="alice is editor .* cannot start an experiment"):
        Experiments(registry).start("support@production", {1: 0.5, 2: 0.5})
    monkeypatch.setenv("PROMPTYARD_USER", "bob")
    with pytest.raises(Exception, match=r"must keep the prompt contract.*drops \{\{question\}\}"):
        Experiments(registry).start("support@production", {1: 0.5, 2: 0.5})
    assert Experiments(registry).get("support@production") is None
