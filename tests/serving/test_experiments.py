"""Experiments on an alias: validation, sticky assignment that every process agrees on, stop."""

import mlflow
import pytest
from helpers import governed

from promptyard.errors import PermissionDeniedError
from promptyard.errors import ExperimentError
from promptyard.serving import Experiments, bucket, tag_key
from promptyard.serving import PromptClient


@pytest.fixture
def support(registry):
    for text in ("Be kind.\n\nQ: {{question}}", "Be brief.\n\nQ: {{question}}", "Be exact.\n\nQ: {{question}}"):
        governed(registry).register("support", text)
    governed(registry).set_alias("support", "production", 1)
    return registry


@pytest.fixture
def experiments(support):
    return Experiments(support)


def client(tmp_path, name="a", ttl=30.0):
    return PromptClient(snapshot_dir=tmp_path / f"snap-{name}", ttl_seconds=ttl,
                        events_url=f"sqlite:///{tmp_path / 'events.db'}")


def test_assignment_is_sticky_weighted_and_agreed_by_every_client(experiments, tmp_path):
    experiment = experiments.start("support@production", {1: 0.8, 2: 0.2})
    first, second = client(tmp_path, "a"), client(tmp_path, "b")  # two app processes
    versions = {}
    for i in range(500):
        a = first.assign("support@production", f"user-{i}")
        versions[i] = a.version
        assert second.assign("support@production", f"user-{i}").version == a.version
        assert first.assign("support@production", f"user-{i}").version == a.version
        assert a.prompt.template.startswith("Be kind" if a.version == 1 else "Be brief")
    share = sum(v == 2 for v in versions.values()) / len(versions)
    assert 0.15 < share < 0.25
    assert first.events.exposure_counts(experiment.id) == {
        1: 3 * sum(v == 1 for v in versions.values()), 2: 3 * sum(v == 2 for v in versions.values())}
    # plain MLflow still reads the control through the alias
    mlflow.set_registry_uri(experiments.registry.tracking_uri)
    assert mlflow.genai.load_prompt("prompts:/support@production").version == 1


def test_outcomes_recorded_against_the_assignment(experiments, tmp_path):
    experiment = experiments.start("support@production", {1: 0.5, 2: 0.5})
    app = client(tmp_path)
    a = app.assign("support@production", "user-7")
    assert app.record_outcome(a, 1, latency_ms=80.0, cost=0.0) is True
    [observation] = app.events.observations(experiment.id)
    assert (observation.version, observation.value, observation.latency_ms) == (a.version, 1.0, 80.0)
    with pytest.raises(Exception, match="No exposure with assignment id 'made-up'"):
        app.record_outcome("made-up", 1)


def test_without_an_experiment_assign_serves_the_alias_and_records_nothing(support, tmp_path):
    app = client(tmp_path)
    a = app.assign("support@production", "user-1")
    assert (a.version, a.id) == (1, None)
    assert app.record_outcome(a, 1) is False


def test_reallocated_weights_keep_units_on_their_first_version(experiments, tmp_path):
    experiment = experiments.start("support@production", {1: 0.5, 2: 0.5}, thompson=True)
    app = client(tmp_path, ttl=0.0)
    before = {u: app.assign("support@production", f"u{u}").version for u in range(200)}
    app.flush()  # written, as the background writer does within its interval (the fresh client may be elsewhere)
    experiments.update(experiment.with_weights({1: 0.05, 2: 0.95}))
    fresh = client(tmp_path, "fresh")
    assert all(fresh.assign("support@production", f"u{u}").version == v for u, v in before.items())
    newcomers = [fresh.assign("support@production", f"new{u}").version for u in range(200)]
    assert sum(v == 2 for v in newcomers) > 170


def test_a_fixed_split_is_not_reallocated(experiments):
    from promptyard.errors import PermissionDeniedError

    experiment = experiments.start("support@production", {1: 0.5, 2: 0.5})
    with pytest.raises(PermissionDeniedError, match="was started with a fixed split"):
        experiments.update(experiment.with_weights({1: 0.05, 2: 0.95}))
    assert experiments.get("support@production") == experiment


def test_bucket_is_stable_and_uniform():
    assert bucket("exp#1", "user-1") == bucket("exp#1", "user-1")
    values = [bucket("exp#1", f"u{i}") for i in range(5000)]
    assert 0.48 < sum(values) / len(values) < 0.52 and min(values) >= 0 and max(values) < 1


@pytest.mark.parametrize("weights, message", [
    ({1: 0.7, 2: 0.2}, "Weights sum to 0.9, not 1"),
    ({1: 0.5, 9: 0.5}, "has no version 9"),
    ({2: 0.5, 3: 0.5}, "points to version 1, which the split leaves out"),
    ({1: 1.0}, "at least two versions"),
    ({1: 1.2, 2: -0.2}, r"Weights must lie in \(0, 1\]"),
])
def test_bad_splits_are_refused_and_change_nothing(experiments, weights, message):
    with pytest.raises(ExperimentError, match=message):
        experiments.start("support@production", weights)
    assert experiments.get("support@production") is None


def test_a_second_experiment_on_the_same_alias_is_refused_and_the_first_untouched(experiments):
    running = experiments.start("support@production", {1: 0.9, 2: 0.1})
    with pytest.raises(ExperimentError, match=f"already runs experiment {running.id}"):
        experiments.start("support@production", {1: 0.5, 3: 0.5})
    assert experiments.get("support@production") == running


def test_other_bad_input(experiments, tmp_path):
    with pytest.raises(ExperimentError, match="names no alias"):
        experiments.start("support/1", {1: 0.5, 2: 0.5})
    with pytest.raises(Exception, match="has no alias 'staging'"):
        experiments.start("support@staging", {1: 0.5, 2: 0.5})
    with pytest.raises(ExperimentError, match="min_samples"):
        experiments.start("support@production", {1: 0.5, 2: 0.5}, min_samples=3)
    with pytest.raises(ExperimentError, match="Guardrails"):
        experiments.start("support@production", {1: 0.5, 2: 0.5}, guardrails={"mood": 0.1})
    experiments.start("support@production", {1: 0.5, 2: 0.5})
    app = client(tmp_path)
    for unit in ("", "   ", None):
        with pytest.raises(ExperimentError, match="unit_id .* is empty"):
            app.assign("support@production", unit)
    assert app.events.exposure_counts(experiments.get("support@production").id) == {}


def test_stop_keeps_or_moves_the_alias_and_leaves_a_record(experiments, support):
    experiment = experiments.start("support@production", {1: 0.5, 2: 0.5})
    with pytest.raises(ExperimentError, match="Version 3 is not in experiment"):
        experiments.stop("support@production", winner=3)
    with pytest.raises(PermissionDeniedError, match="failed: evidence"):  # production is earned, even by hand
        experiments.stop("support@production", winner=2)
    assert experiments.get("support@production") == experiment
    assert int(support.get("support@production").version) == 1
    assert experiments.stop("support@production")["version"] == 1

    governed(support).set_alias("support", "staging", 1)
    experiments.start("support@staging", {1: 0.5, 2: 0.5})
    result = experiments.stop("support@staging", decision="promote", winner=2, reason="won")
    assert result["version"] == 2 and int(support.get("support@staging").version) == 2
    assert experiments.get("support@staging") is None
    assert experiments.last_result("support@staging")["decision"] == "promote"
    assert tag_key("staging") not in (support.prompt_tags("support"))
    with pytest.raises(ExperimentError, match="No experiment runs on support@staging"):
        experiments.stop("support@staging")
    actions = [(e.action, e.alias, e.reason) for e in experiments.governance.audit.entries("support")]
    assert ("experiment", "staging", "start") in actions and ("alias", "staging", "support@staging#"
                                                               + result["experiment"].split("#")[1] + ": won") in actions
