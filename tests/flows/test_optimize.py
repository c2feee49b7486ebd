"""The optimize flow end to end: real Prefect, real MLflow (SQLite), fake LLM server."""

from __future__ import annotations

import json

import mlflow
import pytest
from helpers import SEED_TEMPLATE, governed, tiny_rows, write_dataset

from flows.optimize import optimize_prompt
from promptyard.evaluation import load_dataset
from promptyard.errors import (
    DatasetError,
    EndpointUnreachableError,
    PromptNotFoundError,
    TemplateError,
    TrackingUnavailableError,
)
from promptyard.runtime import get_settings

SMALL = {"breadth": 2, "depth": 1, "train_size": 8}


def run(dataset, prompt="sentiment@production", settings=SMALL, max_candidates=2, **groups):
    """The flow with copro on `settings`; `groups` are its search / selection / budget parameters."""
    return optimize_prompt(prompt=prompt, dataset=str(dataset),
                           optimizer={"name": "copro", **settings, "max_candidates": max_candidates}, **groups)


@pytest.fixture
def seeded(registry):
    version = governed(registry).register("sentiment", SEED_TEMPLATE, commit_message="seed")
    governed(registry).set_alias("sentiment", "production", int(version.version))
    return registry


def positive_share(data, split):
    rows = data.rows(split)
    return sum(r["label"] == "positive" for r in rows) / len(rows)


def child_runs(summary):
    client = mlflow.MlflowClient(get_settings().tracking_uri)
    parent = client.get_run(summary.parent_run_id)
    return parent, client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )


def test_improving_candidate_is_registered_with_provenance(fake_llm, tiny_dataset, seeded):
    summary = run(tiny_dataset, search={"seed": 3})

    # the seed always answers "positive"; the proposal holds the magic word and answers right
    data = load_dataset(tiny_dataset)
    assert summary.baseline_validation == positive_share(data, "validation")
    assert summary.registered_version == 2
    assert summary.test.baseline == positive_share(data, "test")
    assert summary.test.candidate == 1.0
    assert summary.test.low > 0

    new = seeded.get("sentiment@candidate")
    assert int(new.version) == 2
    assert new.template == "Read the review carefully. Answer positive or negative.\n\nReview: {{text}}"
    assert int(seeded.get("sentiment@production").version) == 1  # never moved automatically
    tags = new.tags
    assert tags["promptyard.parent_version"] == "1"
    assert tags["promptyard.optimizer"] == "copro"
    assert tags["promptyard.dataset"] == "tiny"
    assert tags["promptyard.seed"] == "3"
    assert tags["promptyard.parent_run_id"] == summary.parent_run_id
    assert len(tags["promptyard.dataset_digest"]) == 16

    # plain MLflow reads what we registered
    mlflow.set_tracking_uri(get_settings().tracking_uri)
    loaded = mlflow.genai.load_prompt("prompts:/sentiment@candidate")
    assert loaded.format(text="great") == "Read the review carefully. Answer positive or negative.\n\nReview: great"

    parent, children = child_runs(summary)
    assert len(children) == len(summary.candidates) >= 2
    for child in children:
        assert {"validation_accuracy", "validation_mean_latency_s", "validation_prompt_tokens",
                "validation_completion_tokens"} <= set(child.data.metrics)
        assert child.data.params["parent_version"] == "1"
        assert "Review: {{text}}" in child.data.params["template"]
        artifacts = {a.path for a in mlflow.MlflowClient(get_settings().tracking_uri).list_artifacts(child.info.run_id, "predictions")}
        assert "predictions/validation.json" in artifacts
    assert parent.data.params["dataset"] == "tiny"
    assert parent.data.params["test_size"] == "40"
    assert parent.data.metrics["registered_version"] == 2
    assert parent.data.metrics["test_broken"] == 0 and parent.data.metrics["test_fixed"] > 0
    client = mlflow.MlflowClient(get_settings().tracking_uri)
    report = open(client.download_artifacts(parent.info.run_id, "report.md")).read()
    assert "-Classify the sentiment of the review as positive or negative." in report
    assert "+Read the review carefully. Answer positive or negative." in report
    fixed, broken = report.split("## Examples fixed")[1].split("## Examples broken")
    assert "## How the winner was chosen" in report and "a rewrite must earn its words" in report
    assert "| {'text': 'The film was bad, take" in fixed and "| negative | positive | negative |" in fixed
    assert broken.strip().splitlines() == ["| input | gold | baseline | candidate |", "|---|---|---|---|"]
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} == {"tiny-train", "tiny-validation", "tiny-test"}

    # honest reference points: always answering the train split's most frequent label, and a random label
    train = data.rows("train")
    majority = max(["positive", "negative"], key=lambda label: (sum(r["label"] == label for r in train),
                                                                label == "positive"))
    ref = summary.reference_test
    assert (ref.majority_label, ref.n, ref.random) == (majority, 40, 0.5)
    assert ref.majority == sum(r["label"] == majority for r in data.rows("test")) / 40
    seed_vs, best_vs = summary.versus_majority
    assert best_vs.significant and best_vs.prompt == 1.0 and best_vs.losses == 0
    assert not seed_vs.significant and summary.notes == []
    assert parent.data.metrics["test_majority_label_accuracy"] == ref.majority
    assert parent.data.metrics["validation_random_accuracy"] == 0.5
    section = report.split("## Reference points (test, n=40)")[1].split("## Prompt diff")[0]
    assert f"| always {majority!r} (the train split's most frequent label) | {ref.majority:.3f} |" in section
    assert "| a label drawn uniformly from the 2 labels (expected) | 0.500 |" in section
    assert "- winner 1.000 is significantly above always answering" in section


def test_proposals_really_happened_and_were_scored(fake_llm, tiny_dataset, seeded):
    # a proposer that talks about its instruction: the candidate reads as the instruction alone
    fake_llm.proposal = 'The requested instruction is: Rewrite: "Read the review carefully. Answer positive or negative."'
    summary = run(tiny_dataset)
    assert summary.registered_version == 2 and summary.proposals_discarded == 0
    assert seeded.get("sentiment/2").template == ("Read the review carefully. Answer positive or negative.\n\n"
                                                  "Review: {{text}}")
    # the proposal and its label-constrained twin are tied on validation: the one without a format change wins
    assert (summary.choice.best, summary.choice.chosen, summary.choice.tied) == (1, 1, [1, 5])
    assert summary.choice.edits == {1: summary.choice.edits[5], 5: summary.choice.edits[1]}
    proposer_calls = fake_llm.chat_requests("proposer")
    assert proposer_calls, "the optimizer never asked the proposer"
    assert proposer_calls[0]["messages"][-1]["content"].startswith("Rewrite the instruction")
    # the proposed instruction was scored on train (by COPRO) and on validation (by the flow)
    scored = [r for r in fake_llm.chat_requests("task") if "carefully" in r["messages"][-1]["content"]]
    assert len(scored) >= 8 + 20
    assert summary.candidates[0].train_score == 1.0


def test_nothing_registered_when_no_candidate_beats_the_seed(fake_llm, tiny_dataset, seeded):
    fake_llm.proposal = "Say what you think of the review."  # no magic word: every candidate = the seed
    summary = run(tiny_dataset)
    assert summary.registered_version is None
    assert summary.decision.startswith("no version registered: no candidate beat the seed on validation")
    assert summary.test is None and summary.best_candidate is None
    assert [int(v.version) for v in seeded.versions("sentiment")] == [1]
    with pytest.raises(PromptNotFoundError):
        seeded.get("sentiment@candidate")
    _, children = child_runs(summary)
    assert len(children) == len(summary.candidates)


def test_a_proposal_without_a_readable_instruction_is_discarded(fake_llm, tiny_dataset, seeded):
    fake_llm.proposal = "Rewrite: positive"  # a bare label: an answer, not an instruction
    summary = run(tiny_dataset, settings={**SMALL, "constrain_labels": False})
    assert summary.proposals_discarded >= 1 and summary.candidates == []
    assert summary.decision.startswith("the optimizer returned no candidate")
    parent, _ = child_runs(summary)
    assert parent.data.metrics["proposals_discarded"] == summary.proposals_discarded


def test_label_constrained_output_is_a_candidate(fake_llm, tiny_dataset, seeded):
    fake_llm.proposal = "Say what you think of the review."
    summary = run(tiny_dataset, settings={**SMALL, "constrain_labels": True})
    requests = [r for r in fake_llm.chat_requests("task") if r.get("response_format")]
    assert requests and requests[0]["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == [
        "positive", "negative"]
    assert len(summary.candidates) == 5  # one proposal; the seed constrained with 3 field names; the proposal constrained


@pytest.mark.parametrize(
    ("prompt", "error", "message"),
    [
        ("nosuch@production", PromptNotFoundError, "No prompt named 'nosuch'"),
        ("sentiment@staging", PromptNotFoundError, "has no alias 'staging'"),
        ("sentiment/9", PromptNotFoundError, "has no version 9"),
    ],
)
def test_unknown_prompt_or_alias(fake_llm, tiny_dataset, seeded, prompt, error, message):
    with pytest.raises(error, match=message):
        run(tiny_dataset, prompt=prompt)
    assert not fake_llm.requests


def test_template_variables_must_come_from_the_dataset(fake_llm, tiny_dataset, registry):
    governed(registry).register("sentiment", "Classify.\n\nReview: {{review}}")
    with pytest.raises(TemplateError, match=r"\{\{review\}\} are not provided by dataset 'tiny'"):
        run(tiny_dataset, prompt="sentiment")
    assert not fake_llm.requests
    assert len(registry.versions("sentiment")) == 1


def test_template_must_not_show_the_label(fake_llm, tiny_dataset, registry):
    governed(registry).register("sentiment", "Classify.\n\nReview: {{text}} ({{label}})")
    with pytest.raises(TemplateError, match="shows the answer"):
        run(tiny_dataset, prompt="sentiment")


def test_missing_dataset(fake_llm, tmp_path, seeded):
    with pytest.raises(DatasetError, match="does not exist"):
        run(tmp_path / "nowhere")


def test_empty_dataset(fake_llm, tmp_path, seeded):
    folder = write_dataset(tmp_path / "empty", [])
    with pytest.raises(DatasetError, match="is empty"):
        run(folder)


def test_dataset_lacking_the_label_field(fake_llm, tmp_path, seeded):
    rows = [{"text": r["text"], "sentiment": r["label"]} for r in tiny_rows()]
    folder = write_dataset(tmp_path / "nolabel", rows)
    with pytest.raises(DatasetError, match=r"data.jsonl:1 lacks field\(s\) label"):
        run(folder)


def test_unreachable_endpoint(tiny_dataset, seeded, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_LM_BASE_URL", "http://127.0.0.1:9/v1")
    get_settings.cache_clear()
    with pytest.raises(EndpointUnreachableError, match=r"No LLM answers at http://127.0.0.1:9/v1.*promptyard up"):
        run(tiny_dataset)
    assert [int(v.version) for v in seeded.versions("sentiment")] == [1]


def test_tracking_server_not_running(fake_llm, tiny_dataset, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    get_settings.cache_clear()
    with pytest.raises(TrackingUnavailableError, match="does not answer.*promptyard up"):
        run(tiny_dataset)
    assert not fake_llm.requests


def test_result_is_typed_and_json_serialisable(fake_llm, tiny_dataset, seeded):
    summary = run(tiny_dataset)
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["registered_version"] == summary.registered_version == 2
    assert data["test"]["low"] == summary.test.low > 0 and data["budget"]["calls"] == summary.budget.calls


def test_api_key_is_never_written_to_mlflow(fake_llm, tiny_dataset, seeded, monkeypatch):
    secret = "sk-test-5ecret-never-log-me"
    monkeypatch.setenv("PROMPTYARD_LM_API_KEY", secret)
    get_settings.cache_clear()
    summary = run(tiny_dataset)
    client = mlflow.MlflowClient(get_settings().tracking_uri)
    parent, children = child_runs(summary)
    for run_ in [parent, *children]:
        written = json.dumps([run_.data.params, run_.data.tags, run_.data.metrics])
        for artifact in client.list_artifacts(run_.info.run_id, "predictions"):
            written += open(client.download_artifacts(run_.info.run_id, artifact.path)).read()
        assert secret not in written
    assert secret not in json.dumps([v.tags for v in seeded.versions("sentiment")])
    assert parent.data.params["lm_base_url"] == fake_llm.base_url


def test_rerun_makes_zero_lm_calls(fake_llm, tiny_dataset, seeded, monkeypatch):
    """DSPy's disk cache, inside the state directory, answers a repeated optimization."""
    import dspy

    monkeypatch.setenv("PROMPTYARD_LM_CACHE", "true")
    get_settings.cache_clear()
    dspy.cache.reset_memory_cache()
    first = run(tiny_dataset, search={"seed": 11})
    calls = len(fake_llm.chat_requests())
    assert calls > 0
    dspy.cache.reset_memory_cache()  # a new process would start with an empty memory cache
    second = run(tiny_dataset, search={"seed": 11})
    assert len(fake_llm.chat_requests()) == calls
    assert [c.validation for c in second.candidates] == [c.validation for c in first.candidates]
    assert second.test == first.test
    # the same winner is not registered twice
    assert first.registered_version == second.registered_version == 2
    assert "already registered as sentiment version 2" in second.decision
    assert [int(v.version) for v in seeded.versions("sentiment")] == [2, 1]


def test_pareto_plot_and_budgets(fake_llm, tiny_dataset, seeded, monkeypatch):
    monkeypatch.setenv("PROMPTYARD_PRICES", '{"fake": [1000000, 0]}')  # $1 per prompt token
    get_settings.cache_clear()
    summary = run(tiny_dataset, selection={"max_cost_per_example": 1.0})  # no prompt is that short
    assert summary.registered_version is None
    assert summary.decision == "no candidate fits the cost/latency budgets; nothing registered"
    parent, children = child_runs(summary)
    assert all(c.data.metrics["validation_cost_per_example"] > 1 for c in children)
    assert parent.data.metrics["lm_cost_usd"] == summary.cost_usd == summary.budget.prompt_tokens > 0
    assert summary.pareto_front
    client = mlflow.MlflowClient(get_settings().tracking_uri)
    assert "pareto.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_unknown_selection_policy_fails_before_any_call(fake_llm, tiny_dataset, seeded):
    from flows.optimize import check_request
    from optimizers import CoproSettings
    from promptyard.errors import UserError

    with pytest.raises(UserError, match="selection.policy='cheapest' is not valid: Input should be 'quality' or "
                                        "'weighted'"):
        check_request("sentiment@production", str(tiny_dataset), CoproSettings(), {}, {"policy": "cheapest"}, {})
    with pytest.raises(Exception, match="selection.policy: Input should be 'quality' or 'weighted'"):
        run(tiny_dataset, selection={"policy": "cheapest"})  # the flow's own parameter validation
    assert fake_llm.requests == []


def test_no_candidate_at_all(fake_llm, tiny_dataset, seeded):
    fake_llm.proposal = "Classify the sentiment of the review as positive or negative."  # the seed again
    summary = run(tiny_dataset, settings={**SMALL, "constrain_labels": False})
    assert summary.candidates == [] and summary.registered_version is None
    assert summary.decision.startswith("the optimizer returned no candidate")


def test_what_people_see_in_prefect_and_mlflow(fake_llm, tiny_dataset, seeded):
    """Task runs named for what they do, a table of the candidates on the flow run, and the
    registered version listed under the MLflow run's registered prompts."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    summary = run(tiny_dataset)
    assert summary.registered_version == 2
    flow_run = UUID(summary.flow_run_id)
    with get_client(sync_client=True) as client:
        names = {t.name for t in client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run])))}
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[flow_run])))
    assert {"score baseline · validation", "candidate 1 · validation", "candidate 2 · validation",
            "score seed and best candidate · test", "register the winner", "record the evidence"} <= names
    table = next(a for a in artifacts if a.key == "candidates")
    rows = json.loads(table.data)
    assert [r["candidate"] for r in rows] == [c.index for c in summary.candidates]
    assert rows[0]["MLflow run"] == summary.candidates[0].run_id
    linked = mlflow.MlflowClient(get_settings().tracking_uri).get_run(summary.parent_run_id).data.tags
    assert json.loads(linked["mlflow.linkedPrompts"]) == [{"name": "sentiment", "version": "2"}]
