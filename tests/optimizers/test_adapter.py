import dspy
import pytest

from optimizers.adapter import OUTPUT_FIELD, TemplateAdapter, task_signature
from optimizers.proposals import clean_proposal, task_echoes, usable_proposal
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
    parsed = adapter().parse(BasicGenerateInstruction, 'New instruction: "Be precise and brief."\n\nThis will help.')
    assert parsed == {"proposed_instruction": "Be precise and brief.", "proposed_prefix_for_output_field": ""}


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


LABELS = ["positive", "negative"]
ECHOES = task_echoes([{"text": "The film was bad, take 3, and far too long."}, {"text": "Great."}], ["text"])


@pytest.mark.parametrize("reply, instruction", [
    ('The requested instruction is: Rewrite: "Classify the review as positive or negative."',
     "Classify the review as positive or negative."),
    ('Here is the improved instruction: "Say whether the review is positive or negative."',
     "Say whether the review is positive or negative."),
    ("Sure! Rewrite: Read the review, then answer positive or negative.",
     "Read the review, then answer positive or negative."),
    ("Rewritten: 'Answer with one word: positive or negative.'", "Answer with one word: positive or negative."),
    ("Decide the sentiment of the review.\nReview: The film was bad, take 3", "Decide the sentiment of the review."),
    ("Decide the sentiment. The film was bad, take 3, and far too long. negative", "Decide the sentiment."),
    ("Answer positive or negative.\nReview: {{text}}", "Answer positive or negative."),
    ("“Name the sentiment of this review.”", "Name the sentiment of this review."),
])
def test_meta_text_quotes_and_echoes_are_cleaned(reply, instruction):
    assert usable_proposal(reply, ECHOES, LABELS) == instruction


@pytest.mark.parametrize("reply", [
    'The requested instruction is: Rewrite: "Is the film on the World any good? No',  # an example and its answer
    "The film was bad, take 3, and far too long.",  # the input, copied
    "positive",  # an answer
    "Positive or negative",  # only labels
    "Rewrite:",  # nothing left
    "",
])
def test_replies_without_a_readable_instruction_are_discarded(reply):
    assert usable_proposal(reply, ECHOES, [*LABELS, "yes", "no"]) == ""


def test_a_discarded_reply_is_kept_for_the_record():
    from optimizers.task import OptimizationTask

    task = OptimizationTask(Template.parse(TEMPLATE), [{"text": "The film was bad, take 3, and far too long.",
                                                        "label": "negative"}], ["text"], "label",
                            get_metric("exact_label", LABELS), labels=LABELS)
    assert task.usable("Rewrite: the film was bad, take 3, and far too long.") == ""
    assert task.discarded == ["Rewrite: the film was bad, take 3, and far too long."]
    assert task.usable("Judge the review: positive or negative.") == "Judge the review: positive or negative."
