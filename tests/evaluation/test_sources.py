"""Datasets from where teams keep their data: real MLflow traces with assessments, and an MLflow
evaluation dataset, harvested into a dataset folder with a card and numbered snapshots."""

import json

import mlflow
import pytest
import yaml
from click.testing import CliRunner

from promptyard.cli import cli
from promptyard.evaluation import load_dataset
from promptyard.runtime import get_settings


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


@pytest.fixture
def app_traces(monkeypatch):
    """An app's traces: 30 reviews; 24 labelled by a person or code, 2 only by an LLM judge, 4 not at all."""
    from mlflow.entities import AssessmentSource

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_tracking_uri(get_settings().tracking_uri)
    mlflow.set_experiment("review-app")

    @mlflow.trace
    def classify(text: str, lang: str) -> str:
        return "positive"

    ids = []
    for i in range(30):
        classify(text=f"The film was {'good' if i % 2 else 'bad'}, take {i}.", lang="en")
        ids.append(mlflow.get_last_active_trace_id())
    for i, trace_id in enumerate(ids[:24]):
        label = "positive" if i % 2 else "negative"
        source = AssessmentSource("HUMAN" if i % 3 else "CODE", "annotator")
        if i % 4:
            mlflow.log_expectation(trace_id=trace_id, name="sentiment", value=label, source=source)
        else:
            mlflow.log_feedback(trace_id=trace_id, name="sentiment", value=label, source=source)
    for trace_id in ids[24:26]:
        mlflow.log_feedback(trace_id=trace_id, name="sentiment", value="positive",
                            source=AssessmentSource("LLM_JUDGE", "judge"))
    return ids


def test_from_traces_writes_a_card_and_a_snapshot(app_traces, tmp_path):
    out = tmp_path / "reviews"
    result = json.loads(invoke("datasets", "from-traces", "reviews", "--experiment", "review-app", "--label",
                               "sentiment", "--input", "text", "--out", str(out), "--json"))
    assert (result["rows"], result["seen"], result["version"], result["new"]) == (24, 30, 1, True)
    assert result["skipped"] == {"no assessment named 'sentiment'": 4,
                                 "'sentiment' only from an LLM judge (not a label)": 2}
    card = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert (card["input_fields"], card["label_field"], card["labels"]) == (["text"], "label", ["negative", "positive"])
    assert card["splits"] == {"seed": 13, "test": 7, "validation": 5}
    assert card["snapshot"]["file"] == f"snapshots/v1-{result['digest']}.jsonl"
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert [r["trace_id"] for r in rows] == app_traces[:24]  # oldest first: a fixed order
    assert rows[1] == {"text": "The film was good, take 1.", "label": "positive", "trace_id": app_traces[1]}

    data = load_dataset(out)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 12, "validation": 5, "test": 7}
    # the same traces again: the same rows, digest and splits; no new snapshot
    again = json.loads(invoke("datasets", "from-traces", "reviews", "--experiment", "review-app", "--label",
                              "sentiment", "--input", "text", "--out", str(out), "--json"))
    assert (again["version"], again["new"], again["digest"]) == (1, False, result["digest"])
    assert load_dataset(out).digest == data.digest and load_dataset(out).splits == data.splits
    text = invoke("datasets", "from-traces", "reviews", "--experiment", "review-app", "--label", "sentiment",
                  "--out", str(out), "--labels", "positive")
    assert text.splitlines()[0] == f"wrote 12 rows to {out} (snapshot v2); skipped 18 of 30"
    assert "   12  label not in --labels" in text
    assert sorted(p.name for p in (out / "snapshots").iterdir())[0] == f"v1-{result['digest']}.jsonl"
    assert json.loads((out / "data.jsonl").read_text().splitlines()[0])["lang"] == "en"  # every input by default


def test_an_evaluation_dataset_becomes_a_dataset_folder(tmp_path):
    mlflow.set_tracking_uri(get_settings().tracking_uri)
    experiment = mlflow.set_experiment("evals").experiment_id
    dataset = mlflow.genai.datasets.create_dataset(name="reviews_eval", experiment_id=[experiment])
    dataset.merge_records([{"inputs": {"text": f"review {i}"}, "expectations": {"sentiment": "positive" if i % 2
                                                                                  else "negative"}}
                           for i in range(10)] + [{"inputs": {"text": "no label"}, "expectations": {"other": 1}}])
    out = tmp_path / "evalset"
    result = json.loads(invoke("datasets", "from-mlflow", "evalset", "--dataset", "reviews_eval", "--label",
                               "sentiment", "--out", str(out), "--test", "3", "--validation", "2", "--json"))
    assert (result["rows"], result["seen"]) == (10, 11)
    assert result["skipped"] == {"no expectation 'sentiment' with a single text or number value": 1}
    assert {k: len(v) for k, v in load_dataset(out).splits.items()} == {"train": 5, "validation": 2, "test": 3}


@pytest.mark.parametrize("args, message", [
    (["from-traces", "bad name", "--experiment", "x", "--label", "y"], "Dataset name 'bad name' is not valid"),
    (["from-traces", "ok", "--experiment", "x", "--label", " "], "--label is empty"),
    (["from-traces", "ok", "--experiment", "x", "--label", "y", "--test", "0"], "--test 0 is not valid"),
    (["from-mlflow", "ok", "--dataset", "x", "--label", "y", "--metric", "nope"], "Unknown metric 'nope'"),
])
def test_bad_options_are_refused_before_mlflow_is_contacted(monkeypatch, args, message):
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    get_settings.cache_clear()
    out = invoke("datasets", *args, code=1)
    assert out.startswith("Error: ") and message in out and "Traceback" not in out


def test_unknown_experiment_and_unlabelled_traces_are_clear_errors(app_traces, tmp_path):
    out = invoke("datasets", "from-traces", "x", "--experiment", "nope", "--label", "sentiment", "--out",
                 str(tmp_path / "x"), code=1)
    assert out.startswith("Error: No MLflow experiment 'nope' at sqlite:") and "review-app" in out
    out = invoke("datasets", "from-traces", "x", "--experiment", "review-app", "--label", "stars", "--out",
                 str(tmp_path / "x"), code=1)
    assert out.startswith("Error: No labelled rows among 30 from MLflow traces") and "30 no assessment named" in out
