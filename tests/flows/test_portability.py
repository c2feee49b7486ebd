"""`--also-on`: the seed and the winner re-scored on other models, both differences with intervals."""

import mlflow
import pytest
from fake_llm import FakeLLM
from helpers import SEED_TEMPLATE, governed

from flows.optimize import optimize_prompt
from promptyard.errors import EndpointUnreachableError, UserError
from promptyard.runtime import get_settings


@pytest.fixture
def seeded(registry):
    version = governed(registry).register("sentiment", SEED_TEMPLATE)
    governed(registry).set_alias("sentiment", "production", int(version.version))


def run(dataset, also_on):
    return optimize_prompt(prompt="sentiment@production", dataset=str(dataset), also_on=also_on,
                           optimizer={"name": "copro", "breadth": 2, "depth": 1, "train_size": 8,
                                      "max_candidates": 1, "constrain_labels": False})


def test_the_gain_is_measured_on_two_other_models(fake_llm, tiny_dataset, seeded):
    with FakeLLM() as alike, FakeLLM(magic_word="never-said") as unlike:
        summary = run(tiny_dataset, [f"{alike.base_url}/alike", f"{unlike.base_url}/unlike"])
        assert summary.registered_version == 2
        here = summary.test
        same, other = summary.portability
        assert (same.other.model, other.other.model) == ("alike", "unlike")
        assert same.here == here and other.here == here
        # the other models saw exactly the test rows, for the seed and the winner, and nothing else
        assert len(alike.chat_requests()) == len(unlike.chat_requests()) == 2 * here.n == same.calls
        assert {r["model"] for r in alike.chat_requests()} == {"alike"}
        assert same.transfers and (same.there.baseline, same.there.candidate) == (here.baseline, 1.0)
        assert not other.transfers and other.there.diff == 0.0  # this model ignores the winner's wording
        assert other.describe().endswith("no significant gain there")

        client = mlflow.MlflowClient(get_settings().tracking_uri)
        parent = client.get_run(summary.parent_run_id).data
        assert parent.params["also_on_2"] == f"unlike at {unlike.base_url}"
        assert parent.metrics["also_on_1_diff_low"] == same.there.low and parent.metrics["also_on_2_diff"] == 0.0
        report = open(client.download_artifacts(summary.parent_run_id, "report.md")).read()
        assert "## Portability" in report and f"- on unlike at {unlike.base_url}: seed" in report


@pytest.mark.parametrize("spec", ["smollm2", "http://127.0.0.1:9/v1/", "ftp://host/v1/m"])
def test_a_spec_that_is_not_endpoint_and_model_is_refused_first(fake_llm, tiny_dataset, seeded, spec):
    with pytest.raises(UserError, match=r"is not ENDPOINT/MODEL: give the OpenAI-compatible base URL"):
        run(tiny_dataset, [spec])
    assert fake_llm.requests == []


def test_an_unreachable_other_model_is_refused_before_any_call(fake_llm, tiny_dataset, seeded):
    with pytest.raises(EndpointUnreachableError, match=r"^--also-on http://127.0.0.1:9/v1/m: No LLM answers"):
        run(tiny_dataset, ["http://127.0.0.1:9/v1/m"])
    assert [r for r in fake_llm.requests if "messages" in r] == []
