import mlflow
import pytest
from helpers import governed

from promptyard.errors import PromptNotFoundError, TemplateError, TrackingUnavailableError, UserError
from promptyard.registry import GenerationConfig
from promptyard.registry import PromptRef
from promptyard.registry import Registry
from promptyard.runtime import get_settings


@pytest.mark.parametrize(("ref", "parsed"), [
    ("support", PromptRef("support")),
    ("support/3", PromptRef("support", version=3)),
    ("support@production", PromptRef("support", alias="production")),
    ("prompts:/team.support@staging", PromptRef("team.support", alias="staging")),
])
def test_refs(ref, parsed):
    assert PromptRef.parse(ref) == parsed
    assert PromptRef.parse(str(parsed)) == parsed


def test_bad_ref():
    with pytest.raises(UserError, match="write NAME, NAME/VERSION or NAME@ALIAS"):
        PromptRef.parse("bad name!")


def test_round_trip(registry):
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    v1 = governed(registry).register("support", "Be kind.\n\nQ: {{question}}", commit_message="first", tags={"team": "cx"})
    v2 = governed(registry).register("support", "Be brief.\n\nQ: {{question}}",
                           generation=GenerationConfig(max_tokens=64, response_format=fmt))
    governed(registry).set_alias("support", "production", int(v1.version))

    assert (int(v1.version), int(v2.version)) == (1, 2)
    assert registry.get("support@production").template == "Be kind.\n\nQ: {{question}}"
    assert int(registry.get("support").version) == 2
    assert registry.get("support/1").tags["team"] == "cx"
    assert [int(v.version) for v in registry.versions("support")] == [2, 1]
    assert registry.versions("support")[1].aliases == ["production"]
    assert [p.name for p in registry.list()] == ["support"]
    generation = Registry.generation(registry.get("support/2"))
    assert generation.max_tokens == 64 and generation.response_format == fmt

    # plain MLflow reads the same prompts
    mlflow.set_tracking_uri(get_settings().tracking_uri)
    loaded = mlflow.genai.load_prompt("prompts:/support@production")
    assert loaded.format(question="Where is my order?") == "Be kind.\n\nQ: Where is my order?"


def test_unknown_prompt_alias_and_version(registry):
    governed(registry).register("support", "Be kind.\n\nQ: {{question}}")
    with pytest.raises(PromptNotFoundError, match="No prompt named 'other'.*known: support"):
        registry.get("other")
    with pytest.raises(PromptNotFoundError, match="has no alias 'production'. Versions: 1; aliases: none"):
        registry.get("support@production")
    with pytest.raises(PromptNotFoundError, match="has no version 4"):
        governed(registry).set_alias("support", "production", 4)
    with pytest.raises(PromptNotFoundError):
        registry.get("support@production")  # the failed alias move left nothing behind


def test_variables_must_match_the_dataset(registry):
    with pytest.raises(TemplateError, match=r"\{\{query\}\} are not provided"):
        governed(registry).register("support", "Help.\n\nQ: {{query}}", available_fields=["text"])
    assert registry.list() == []


def test_tracking_server_down():
    with pytest.raises(TrackingUnavailableError, match="http://127.0.0.1:9 does not answer.*promptyard up"):
        Registry("http://127.0.0.1:9").check()
