import dspy

from optimizers.adapter import OUTPUT_FIELD, TemplateAdapter, task_signature
from optimizers.proposals import clean_proposal
from promptyard.evaluation import get_metric
from promptyard.registry import Template

TEMPLATE = "Classify the sentiment.\n\nReview: {{text}}"


def adapter():
    t = Template.parse(TEMPLATE)
    return TemplateAdapter(t.body, ["text"], get_metric("exact_label", ["positive", "negative"]))


def test_task_call_is_exactly_the_rendered_template():
    sig = task_signature(["text"], "Read carefully.")
    messages = adapter().format(sig, [], {"text": "great film"})
    assert messages == [{"role": "user", "content": "Read carefully.\n\nReview: great film"}]
    assert adapter().parse(sig, "Positive!") == {OUTPUT_FIELD: "Positive!"}


def test_proposer_call_is_short_plain_text():
    from dspy.teleprompt.copro_optimizer import BasicGenerateInstruction, GenerateInstructionGivenAttempts

    text = adapter().format(BasicGenerateInstruction, [], {"basic_instruction": "Classify."})[0]["content"]
    assert text == ("Rewrite the instruction below so that an assistant follows it better. Keep the list of allowed "
                    "answers. Reply with the new instruction only.\n\nBasic instruction: Classify.\n\nProposed instruction:")
    attempts = ["Instruction #1: A", "Prefix #1: x", "Resulting Score #1: 0.5"]
    text = adapter().format(GenerateInstructionGivenAttempts, [], {"attempted_instructions": attempts})[0]["content"]
    assert "Instruction #1: A\nResulting Score #1: 0.5" in text and "Prefix" not in text
    parsed = adapter().parse(BasicGenerateInstruction, 'New instruction: "Be precise."\n\nThis will help.')
    assert parsed == {"proposed_instruction": "Be precise.", "proposed_prefix_for_output_field": ""}


def test_clean_proposal():
    assert clean_proposal("**Improved instruction:** Say it.") == "Say it."
    assert clean_proposal("Instruction #3: Say it.\n\nExplanation...") == "Say it."
    assert clean_proposal("  'Quoted'  ") == "Quoted"


def test_capable_endpoints_keep_dspy_adapters_for_proposals():
    chat = dspy.ChatAdapter()
    t = Template.parse(TEMPLATE)
    a = TemplateAdapter(t.body, ["text"], get_metric("exact_label"), proposer=chat)
    from dspy.teleprompt.copro_optimizer import BasicGenerateInstruction

    assert not a._is_task(BasicGenerateInstruction)
    assert a._is_task(task_signature(["text"], "x"))
