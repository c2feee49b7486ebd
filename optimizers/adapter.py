"""A DSPy adapter that renders the task exactly as the registered template does.

The task predictor's request is what an app sends with `load_prompt(...).format(...)`: one user
message (the text template with the candidate instruction and the example's values), or a chat
template's messages (the candidate instruction as the system message, demos as user and assistant
turns, the body as the last user message). So a score measured inside DSPy is the score of the
template that gets registered.

Other signatures (an optimizer's own proposer calls) go to `proposer`: DSPy's standard adapters
for capable endpoints, or, for small models that cannot follow DSPy's field markers
(SmolLM2-135M fails ChatAdapter on every call), a plain-text prompt: a short instruction, the
inputs as text, and the whole reply as the single output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dspy

from optimizers.proposals import usable_proposal
from promptyard.evaluation import Metric
from promptyard.registry import Template, render_messages

__all__ = [
    "TemplateAdapter",
    "OUTPUT_FIELD",
    "GOLD_FIELD",
    "task_signature",
    "SHORT_PROPOSER_INSTRUCTIONS",
]

OUTPUT_FIELD = "prompt_output"
GOLD_FIELD = "_gold"  # the label, carried by training examples (and so by labelled demos)
DEMO_HEADER = "Examples:"
ANSWER_LABEL = "Answer:"

# Instructions a 135M-parameter model can follow, keyed by the proposer signature's input field.
SHORT_PROPOSER_INSTRUCTIONS: Mapping[str, str] = {
    "basic_instruction": (
        "Rewrite the instruction below so that an assistant follows it better. Keep the list of "
        "allowed answers. Reply with the new instruction only."
    ),
    "attempted_instructions": (
        "Below are instructions and their scores; higher is better. Write one new instruction "
        "that will score higher. Keep the list of allowed answers. Reply with the new instruction only."
    ),
    # SIMBA's OfferFeedback: one rule from a worse and a better answer to the same input
    "worse_program_outputs": (
        "Improve the instruction of an assistant. For the input below it gave the worse answer; the "
        "better answer is shown too. Write one short rule that makes it give the better answer. Reply "
        "with the rule only."
    ),
}
# the inputs a plain proposer prompt shows, when a signature has many (SIMBA's feedback has 13)
_PLAIN_INPUTS = {"worse_program_outputs": ("program_inputs", "worse_program_outputs", "better_program_outputs")}

def task_signature(task_inputs: list[str], instruction: str) -> type[dspy.Signature]:
    """The DSPy signature of a template: its variables in, one text out."""
    fields = {name: (str, dspy.InputField()) for name in task_inputs}
    fields[OUTPUT_FIELD] = (str, dspy.OutputField())
    return dspy.Signature(fields, instruction)


class TemplateAdapter(dspy.Adapter):
    """Renders task calls through the seed template (its body, or a text template's body alone);
    hands other calls to `proposer`."""

    def __init__(self, seed: Template | str, task_inputs: list[str], metric: Metric,
                 proposer: dspy.Adapter | None = None, proposals: list[str] | None = None,
                 read_proposal: Callable[[str], str] | None = None):
        super().__init__()
        self.seed = seed if isinstance(seed, Template) else Template("", seed)
        self.body = self.seed.body
        self.task_inputs = list(task_inputs)
        self.metric = metric
        self.proposer = proposer
        self.proposals = proposals if proposals is not None else []  # every proposal seen, in order
        # a proposer's reply -> its readable instruction, or "" to discard it (see optimizers.proposals)
        self.usable = read_proposal or usable_proposal

    def _is_task(self, signature) -> bool:
        return list(signature.output_fields) == [OUTPUT_FIELD]

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        if self.proposer is not None and not self._is_task(signature):
            outputs = self.proposer(lm, lm_kwargs, signature, demos, inputs)
            first = next(iter(signature.output_fields))
            for output in outputs:  # a capable proposer talks about its instruction too
                if isinstance(output.get(first), str):
                    output[first] = self.usable(output[first])
                    if output[first]:
                        self.proposals.append(output[first])
            return outputs
        return super().__call__(lm, lm_kwargs, signature, demos, inputs)

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        if self.proposer is not None and not self._is_task(signature):
            return await self.proposer.acall(lm, lm_kwargs, signature, demos, inputs)
        return await super().acall(lm, lm_kwargs, signature, demos, inputs)

    # -- formatting ----------------------------------------------------------------------------
    def format(self, signature, demos: list[dict[str, Any]], inputs: dict[str, Any]) -> list[dict[str, Any]]:
        if self._is_task(signature):
            return render_messages(self.template_with_demos(signature.instructions, demos).value, inputs)
        return [{"role": "user", "content": self._format_plain(signature, inputs)}]

    def template_with_demos(self, instruction: str, demos: list) -> Template:
        """The template a program with this instruction and these demos stands for, as registered: demos
        written into a text template's instruction, or added as turns of a chat template."""
        if self.seed.chat:
            return self.seed.with_instruction(instruction).with_turns([*self.seed.turns, *self.demo_turns(demos)])
        return self.seed.with_instruction(self.instruction_with_demos(instruction, demos))

    def demo_turns(self, demos: list) -> list[tuple[str, str]]:
        """Each demo as a user message (the body with the demo's values) and the assistant's answer."""
        turns = []
        for demo in demos:
            values = {name: _literal(demo[name]) for name in self.task_inputs}
            turns += [("user", Template("", self.body).render(values)), ("assistant", self._answer(demo))]
        return turns

    def instruction_with_demos(self, instruction: str, demos: list) -> str:
        """The instruction followed by few-shot examples written in the body's own format.

        The same text goes into the registered template, so the version alone reproduces the
        behaviour measured with these demos.
        """
        instruction = instruction.strip()
        if not demos:
            return instruction
        blocks = []
        for demo in demos:
            values = {name: _literal(demo[name]) for name in self.task_inputs}
            blocks.append(f"{Template('', self.body).render(values)}\n{ANSWER_LABEL} {self._answer(demo)}")
        return "\n\n".join([instruction, DEMO_HEADER, *blocks])

    def _answer(self, demo) -> str:
        gold = demo.get(GOLD_FIELD)
        if gold is not None:
            return _literal(gold)
        reply = str(demo.get(OUTPUT_FIELD) or "")
        return _literal(self.metric.parse(reply) or reply.strip())

    def _format_plain(self, signature, inputs: dict[str, Any]) -> str:
        names = list(signature.input_fields)
        key = next((n for n in names if n in SHORT_PROPOSER_INSTRUCTIONS), None)
        instruction = SHORT_PROPOSER_INSTRUCTIONS[key] if key else signature.instructions
        names = list(_PLAIN_INPUTS.get(key, names))
        parts = [instruction]
        for name in names:
            value = inputs.get(name, "")
            if isinstance(value, list | tuple):
                # COPRO lists "Prefix #k" lines too: output prefixes mean nothing to a plain template
                value = "\n".join(str(v) for v in value if not str(v).startswith("Prefix #"))
            parts.append(f"{_title(name)}: {value}")
        output = next(iter(signature.output_fields))
        parts.append(f"{_title(output)}:")
        return "\n\n".join(parts)

    # -- parsing -------------------------------------------------------------------------------
    def parse(self, signature, completion: str) -> dict[str, Any]:
        if self._is_task(signature):
            return {OUTPUT_FIELD: completion}
        outputs = list(signature.output_fields)
        parsed = {name: "" for name in outputs}
        parsed[outputs[0]] = self.usable(completion)
        for name, field_info in signature.output_fields.items():  # SIMBA's advice: one text per module
            if getattr(field_info, "annotation", None) in (dict, dict[str, str]):
                parsed[name] = _SameForEveryKey(parsed[outputs[0]])
        if parsed[outputs[0]]:
            self.proposals.append(parsed[outputs[0]])
        return parsed


class _SameForEveryKey(dict):
    """A mapping that answers the same text for any key: a plain reply addresses every module."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def __contains__(self, key: object) -> bool:
        return bool(self.text)

    def __getitem__(self, key: object) -> str:
        return self.text

    def get(self, key: object, default=None):
        return self.text if self.text else default


def _literal(value: object) -> str:
    """A value to paste into a template: no accidental {{variable}}, no paragraph break."""
    return str(value).replace("{{", "{ {").replace("}}", "} }").replace("\n\n", "\n")


def _title(name: str) -> str:
    return name.replace("_", " ").capitalize()
