"""Chat prompts (MLflow's chat format) in the registry: checked, rendered, registered, served, diffed,
exported and imported, and readable with plain MLflow."""

import mlflow
import pytest
import yaml
from helpers import governed

from promptyard.errors import TemplateError
from promptyard.registry import (
    Template,
    check_template,
    diff_versions,
    export_prompts,
    render_messages,
    template_text,
    template_variables,
)
from promptyard.runtime import get_settings

CHAT = [{"role": "system", "content": "Classify the sentiment of the review as positive or negative."},
        {"role": "user", "content": "Review: {{text}}"}]


@pytest.mark.parametrize("messages, message", [
    ([], "A chat template is a non-empty list of messages"),
    ([{"role": "bot", "content": "x {{a}}"}], "Message 1 of the chat template has role 'bot': use one of system"),
    ([{"role": "user", "content": ""}], "Message 1 of the chat template (user) has no text"),
    ([{"role": "user", "content": "{{a}}", "name": "x"}], "Message 1 of the chat template is not {role, content}"),
    ([{"role": "user", "content": "Q {{a}}"}, {"role": "system", "content": "Be kind."}],
     "Message 2 of the chat template is a system message: put the one system message first"),
    ([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Q {{a}}"},
      {"role": "assistant", "content": "A"}], "must end with the user message that holds the {{variables}}"),
    ([{"role": "user", "content": "Q {{ 1a}}"}], "Message 1 of the chat template (user) has a malformed placeholder"),
    ([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}], "has no {{variable}}"),
])
def test_malformed_chat_templates_are_refused_with_the_fix(messages, message):
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("(", r"\(").replace(")", r"\)")):
        check_template(messages)


def test_a_chat_template_reads_as_instruction_turns_and_body():
    demo = [("user", "Review: fine"), ("assistant", "positive")]
    t = Template.of([CHAT[0], *({"role": r, "content": c} for r, c in demo), CHAT[1]])
    assert (t.chat, t.instruction, t.body, t.turns) == (True, CHAT[0]["content"], "Review: {{text}}", tuple(demo))
    assert Template.of(CHAT).with_instruction(" Be brief. ").with_turns(demo).value == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Review: fine"},
        {"role": "assistant", "content": "positive"}, {"role": "user", "content": "Review: {{text}}"}]
    assert template_text(CHAT) == f"[system]\n{CHAT[0]['content']}\n\n[user]\nReview: {{{{text}}}}"
    assert template_variables(CHAT) == ["text"]
    assert render_messages(CHAT, {"text": "{{x}} great"})[1] == {"role": "user", "content": "Review: {{x}} great"}
    assert render_messages("Say {{a}}", {"a": "hi"}) == [{"role": "user", "content": "Say hi"}]
    with pytest.raises(TemplateError, match="No value for template variable"):
        render_messages(CHAT, {})


def test_what_optimizers_cannot_rewrite_is_refused():
    with pytest.raises(TemplateError, match="has no system message, so there is nothing to optimize"):
        Template.of([CHAT[1]]).check_optimizable()
    with pytest.raises(TemplateError, match=r"hold \{\{tone\}\}: optimizers rewrite the system message"):
        Template.of([{"role": "system", "content": "Be {{tone}}."}, CHAT[1]]).check_optimizable()
    Template.of(CHAT).check_optimizable()


def test_registered_chat_prompt_is_plain_mlflow_and_served(registry):
    version = governed(registry).register("review", CHAT, commit_message="chat seed")
    governed(registry).set_alias("review", "production", int(version.version))
    assert registry.template(registry.get("review@production")) == CHAT
    mlflow.set_tracking_uri(get_settings().tracking_uri)
    loaded = mlflow.genai.load_prompt("prompts:/review@production")
    assert not loaded.is_text_prompt and loaded.format(text="good") == [
        CHAT[0], {"role": "user", "content": "Review: good"}]

    from promptyard import PromptClient

    served = PromptClient().get("review@production")
    assert served.variables == ["text"] and served.format(text="good") == loaded.format(text="good")


def test_chat_versions_diff_export_and_import(registry, tmp_path):
    from promptyard.governance import import_prompts

    governed(registry).register("review", CHAT)
    governed(registry).register("review", [{"role": "system", "content": "Answer positive or negative."}, CHAT[1]])
    assert diff_versions(registry, "review", 1, 2).splitlines()[3:6] == [
        " [system]", "-Classify the sentiment of the review as positive or negative.",
        "+Answer positive or negative."]
    path, = export_prompts(registry, tmp_path)
    data = yaml.safe_load(path.read_text())
    assert data["template"] == [{"role": "system", "content": "Answer positive or negative."}, CHAT[1]]
    assert [r.action for r in import_prompts(governed(registry), tmp_path)] == ["unchanged"]
    data["template"][0]["content"] = "Say positive or negative."
    path.write_text(yaml.safe_dump(data))
    assert [(r.action, r.version) for r in import_prompts(governed(registry), tmp_path)] == [("registered", 3)]
    assert registry.template(registry.get("review/3"))[0] == {"role": "system", "content": "Say positive or negative."}


def test_a_credential_in_a_chat_message_is_refused(registry):
    with pytest.raises(TemplateError, match="looks like a credential"):
        governed(registry).register("review", [{"role": "system", "content": "key sk-abcdefghijklmnopqrstuvwx"},
                                               CHAT[1]])


def test_an_ab_split_of_chat_prompts_serves_messages(registry, tmp_path):
    from promptyard.serving import Experiments, PromptClient

    governed(registry).register("review", CHAT)
    governed(registry).register("review", [{"role": "system", "content": "Answer positive or negative."}, CHAT[1]])
    governed(registry).set_alias("review", "production", 1)
    Experiments(registry).start("review@production", {1: 0.5, 2: 0.5})
    app = PromptClient(snapshot_dir=tmp_path / "snap", events_url=f"sqlite:///{tmp_path / 'events.db'}")
    served = [app.assign("review@production", f"user-{i}") for i in range(40)]
    systems = {a.prompt.format(text="fine")[0]["content"] for a in served}
    assert systems == {CHAT[0]["content"], "Answer positive or negative."}
    assert all(a.prompt.format(text="fine")[1] == {"role": "user", "content": "Review: fine"} for a in served)
    assert app.record_outcome(served[0], 1) is True
