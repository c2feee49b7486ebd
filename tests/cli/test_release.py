"""`promptyard release`, end to end as a user runs it: a real MLflow store, a real Prefect API, the
offline A/B on the fake model, app traffic from a real PromptClient, the audit log."""

import json
import random
import threading

import pytest
from click.testing import CliRunner
from helpers import SEED_TEMPLATE, governed, tiny_rows, write_dataset

from promptyard.cli import cli
from promptyard.governance import Governance
from promptyard.serving import Experiments, PromptClient


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        from prefect.settings import PREFECT_API_URL

        yield PREFECT_API_URL.value()


@pytest.fixture
def sentiment(registry, tmp_path, fake_llm, prefect_api, monkeypatch):
    """sentiment v1 (the fake answers 'positive' to all: right on half) on production; v2 says 'carefully'
    (the fake answers it right every time); a dataset with 120 test examples."""
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).register("sentiment", SEED_TEMPLATE.replace("Classify", "Read carefully and classify"))
    governed(registry).set_alias("sentiment", "production", 1)
    return write_dataset(tmp_path / "datasets" / "reviews", tiny_rows(300), test=120)


def release(*args, code=0, name="sentiment"):
    result = CliRunner().invoke(cli, ["release", name, *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


class Traffic(threading.Thread):
    """An app serving sentiment@production while the release runs: success rates and latency per version."""

    def __init__(self, rates, latency=None):
        super().__init__(daemon=True)
        self.rates, self.latency, self.stop = rates, latency or {}, threading.Event()
        self.served = {}

    def run(self):
        rng, client, unit = random.Random(1), PromptClient(ttl_seconds=0.2), 0
        while not self.stop.is_set() and unit < 3000:
            if client.assign("sentiment@production", "probe").id is None:  # no canary (yet, or any more)
                self.stop.wait(0.05)
                continue
            for repeat in range(3):  # each user comes back: three outcomes per unit
                a = client.assign("sentiment@production", f"user-{unit}")
                self.served[a.version] = self.served.get(a.version, 0) + 1
                client.record_outcome(a, rng.random() < self.rates.get(a.version, 0.0),
                                      latency_ms=self.latency.get(a.version, 100.0) * (0.9 + 0.2 * rng.random()))
            unit += 1
            if unit % 50 == 0:
                self.stop.wait(0.02)
        client.close()


def audited(registry, name="sentiment"):
    entries = Governance.from_settings(registry).audit.entries(name)
    return [(e.action, e.reason or "") for e in entries]


def test_release_promotes_a_better_version_through_the_governance_checks(sentiment, registry):
    started = release("2", "--dataset", str(sentiment), "--canary", "50%", "--min-samples", "30", "--rounds", "0")
    assert started.startswith("offline: sentiment/2 is better than sentiment/1; run ")
    assert "canary: started sentiment@production#" in started and "v1 50%, v2 50%" in started
    assert "design: family-wise alpha 0.05 over 1 treatment × (quality + latency_ms + cost)" in started
    assert "plan: needs ≈" in started and "(assumed: no outcomes of v1 yet, declare --base-rate)" in started
    experiment = Experiments(registry).get("sentiment@production")
    assert experiment.note == "release of sentiment/2" and experiment.weights == {1: 0.5, 2: 0.5}

    traffic = Traffic({1: 0.2, 2: 0.6})
    traffic.start()
    try:
        out = json.loads(release("2", "--every", "0.5", "--rounds", "60", "--json"))
    finally:
        traffic.stop.set()
        traffic.join(60)
    assert out["final"] == "promoted", out["steps"]
    assert [s["step"] for s in out["steps"]][0] == "resume"
    assert int(registry.get("sentiment@production").version) == 2
    assert Experiments(registry).get("sentiment@production") is None
    log = audited(registry)
    reasons = [reason for action, reason in log if action == "experiment" and reason.startswith("release v2")]
    assert [r.split(":")[1].strip() for r in reasons[:3]] == ["offline", "canary", "resume"]
    assert reasons[-1].startswith("release v2: promoted: v2 better than v1")
    assert [a for a, _ in log].count("evidence") == 2  # the offline A/B and the online analysis, anchored
    assert [a for a, _ in log].count("promote") == 1
    assert "sentiment@production already serves v2: nothing to release" in release("2", code=1)


def test_release_rolls_back_on_a_guardrail_breach(sentiment, registry):
    traffic = Traffic({1: 0.3, 2: 0.3}, latency={1: 100.0, 2: 400.0})
    traffic.start()
    try:
        out = release("2", "--dataset", str(sentiment), "--canary", "0.5", "--min-samples", "30", "--every", "0.5",
                      "--rounds", "60")
    finally:
        traffic.stop.set()
        traffic.join(60)
    assert "rolled back: guardrail regression: v2 latency_ms +" in out
    assert "; sentiment@production on v1 (run " in out.rstrip().splitlines()[-1]
    assert int(registry.get("sentiment@production").version) == 1
    last = Experiments(registry).last_result("sentiment@production")
    assert last["decision"] == "rollback" and "latency_ms" in last["reason"]
    assert any(r.startswith("release v2: rolled back: guardrail regression") for _, r in audited(registry))


def test_release_refuses_without_offline_evidence_or_when_it_shows_the_version_worse(sentiment, registry):
    refused = release("2", code=1)
    assert "v2 has no offline evidence that it is not worse than v1: no run compares v2 with v1" in refused
    assert "Pass --dataset to run the offline A/B first. Nothing was started." in refused
    assert Experiments(registry).get("sentiment@production") is None
    assert "--canary takes a share" in release("2", "--canary", "lots", code=1)

    governed(registry).register("critic", SEED_TEMPLATE.replace("Classify", "Read carefully and classify"))
    governed(registry).set_alias("critic", "production", 1)
    governed(registry).register("critic", SEED_TEMPLATE)  # v2: right on half the reviews only
    worse = release("2", "--dataset", str(sentiment), code=1, name="critic")
    assert "v2 has no offline evidence that it is not worse than v1: run " in worse
    assert "shows v2 may be worse: lower bound -0." in worse and "Traceback" not in worse
    assert Experiments(registry).get("critic@production") is None
    reasons = [r for _, r in audited(registry, "critic")]
    assert any(r.startswith("release v2: offline: refused") for r in reasons)
    assert not any("canary" in r for r in reasons)
