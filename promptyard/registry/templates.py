"""Prompt templates with `{{variable}}` placeholders: parse, check, render, split, diff.

A template is text, or a chat template in MLflow's chat format: a list of `{role, content}`
messages (system, user, assistant) whose contents hold the variables. The syntax is MLflow's, so
a template registered here formats the same with `mlflow.genai.load_prompt(...).format(...)`
(a chat template formats to its messages). Rendering is plain substitution: no code runs.

A chat template reads as an instruction (its system message), optional demo turns (user and
assistant messages) and a body (the last user message, which holds the variables). Its text form
(`template_text`) shows each message under its role, for diffs, search and review.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Union

from promptyard.errors import TemplateError

__all__ = ["Template", "variables", "render", "check_variables", "diff", "MAX_TEMPLATE_CHARS", "PromptTemplate",
           "is_chat", "check_template", "check_chat", "template_text", "template_variables", "render_messages",
           "template_key", "ROLES"]

MAX_TEMPLATE_CHARS = 100_000  # MLflow refuses longer prompt text
ROLES = ("system", "user", "assistant")

PromptTemplate = Union[str, list[dict[str, str]]]  # text, or MLflow's chat format

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_BAD_VAR = re.compile(r"\{\{(?!\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\})")


def variables(text: str) -> list[str]:
    """The variable names of a template, in order of first appearance."""
    return list(dict.fromkeys(_VAR.findall(text)))


def render(text: str, values: Mapping[str, object]) -> str:
    """Substitute every `{{var}}`; a variable without a value is an error."""
    missing = [name for name in variables(text) if name not in values]
    if missing:
        raise TemplateError(
            f"No value for template variable(s) {', '.join(missing)}: "
            f"pass them when formatting (got: {', '.join(sorted(values)) or 'nothing'})."
        )
    return _VAR.sub(lambda m: str(values[m.group(1)]), text)


def check_variables(text: str, available: Iterable[str], *, where: str = "the dataset") -> None:
    """Raise unless every variable of the template is among `available` fields."""
    available = list(available)
    missing = [name for name in variables(text) if name not in available]
    if missing:
        raise TemplateError(
            f"Template variable(s) {', '.join('{{' + m + '}}' for m in missing)} are not provided "
            f"by {where}, which has: {', '.join(available)}. Rename them in the template to one of "
            "those fields."
        )


def diff(old: str, new: str, old_label: str = "old", new_label: str = "new") -> str:
    """A unified diff of two templates, line by line."""
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), old_label, new_label, lineterm=""
    )
    return "\n".join(lines)


def is_chat(template: Any) -> bool:
    return isinstance(template, list | tuple)


def _check_text(text: str, where: str = "The template") -> None:
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"{where} has {len(text):,} characters; MLflow's prompt registry holds at most "
            f"{MAX_TEMPLATE_CHARS:,}: shorten it (move reference material into a variable filled at run time)."
        )
    if _BAD_VAR.search(text):
        raise TemplateError(
            f"{where} has a malformed placeholder: write variables as {{{{name}}}} with a "
            "letter or underscore first, then letters, digits or underscores."
        )


def check_chat(messages: Any) -> list[dict[str, str]]:
    """A chat template checked and normalised: [system?] + (user, assistant)* + user, contents as text,
    at least one {{variable}}; else one message naming the message and the fix."""
    if not isinstance(messages, list | tuple) or not messages:
        raise TemplateError("A chat template is a non-empty list of messages like "
                            "[{role: system, content: ...}, {role: user, content: 'Question: {{question}}'}].")
    checked = []
    for n, message in enumerate(messages, 1):
        if not isinstance(message, Mapping) or set(message) - {"role", "content"} or "content" not in message:
            raise TemplateError(f"Message {n} of the chat template is not {{role, content}}: give each message "
                                "exactly a role (system, user or assistant) and a content.")
        role, content = message.get("role"), message["content"]
        if role not in ROLES:
            raise TemplateError(f"Message {n} of the chat template has role {role!r}: use one of {', '.join(ROLES)}.")
        if not isinstance(content, str) or not content.strip():
            raise TemplateError(f"Message {n} of the chat template ({role}) has no text: give it a content.")
        if role == "system" and n != 1:
            raise TemplateError(f"Message {n} of the chat template is a system message: put the one system message "
                                "first.")
        _check_text(content, f"Message {n} of the chat template ({role})")
        checked.append({"role": role, "content": content})
    if checked[-1]["role"] != "user":
        raise TemplateError("The chat template must end with the user message that holds the {{variables}} (it ends "
                            f"with a {checked[-1]['role']} message).")
    if len(json.dumps(checked)) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"The chat template has over {MAX_TEMPLATE_CHARS:,} characters (as MLflow stores it): "
                            "shorten it.")
    if not any(variables(m["content"]) for m in checked):
        raise TemplateError("The chat template has no {{variable}}: put one in the user message for each dataset "
                            "field it should see, e.g. 'Question: {{question}}'.")
    return checked


def check_template(template: Any) -> None:
    """Raise `TemplateError` unless `template` is a well-formed text or chat template."""
    if is_chat(template):
        check_chat(template)
    elif isinstance(template, str):
        Template.parse(template)
    else:
        raise TemplateError(f"A template is text or a list of chat messages, not {type(template).__name__}.")


def template_text(template: PromptTemplate) -> str:
    """Text to read, diff and search: the text itself, or each chat message under its role."""
    if not is_chat(template):
        return template
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in template)


def template_variables(template: PromptTemplate) -> list[str]:
    """The variables of a text or chat template, in order of first appearance."""
    return variables(template_text(template))


def render_messages(template: PromptTemplate, values: Mapping[str, object]) -> list[dict[str, str]]:
    """The chat request a template makes: a text template is one user message."""
    if not is_chat(template):
        return [{"role": "user", "content": render(template, values)}]
    missing = [name for name in template_variables(template) if name not in values]
    if missing:
        render("".join(f"{{{{{name}}}}}" for name in missing), values)  # the same message as for text
    return [{"role": m["role"], "content": _VAR.sub(lambda v: str(values[v.group(1)]), m["content"])}
            for m in template]


def template_key(template: PromptTemplate) -> str:
    """A hashable identity of a text or chat template."""
    return json.dumps(template, sort_keys=True)


@dataclass(frozen=True)
class Template:
    """A template seen as an instruction (what optimizers rewrite) and a body (the inputs).

    Text: the body starts at the first paragraph that contains a variable; everything before it is
    the instruction, and `Template.parse(t).text == t` for any well-formed template. Chat: the
    instruction is the system message, the body the last user message, `turns` the (role, content)
    messages between them (demos); `Template.of(messages).value == messages`.
    """

    instruction: str
    body: str
    chat: bool = False
    turns: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, template: PromptTemplate) -> Template:
        """A text or chat template, checked."""
        if not is_chat(template):
            return cls.parse(template)
        messages = check_chat(template)
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        rest = messages[1:] if messages[0]["role"] == "system" else messages
        return cls(system, rest[-1]["content"], True, tuple((m["role"], m["content"]) for m in rest[:-1]))

    @classmethod
    def parse(cls, text: str) -> Template:
        if not isinstance(text, str):
            return cls.of(text)
        if not text.strip():
            raise TemplateError("The template is empty: give it an instruction and a {{variable}}.")
        _check_text(text)
        if not variables(text):
            raise TemplateError(
                "The template has no {{variable}}: add one for each dataset field it should see, "
                "e.g. 'Review: {{text}}'."
            )
        paragraphs = text.split("\n\n")
        for i, paragraph in enumerate(paragraphs):
            if _VAR.search(paragraph):
                return cls("\n\n".join(paragraphs[:i]), "\n\n".join(paragraphs[i:]))
        raise AssertionError("unreachable: a variable was found above")  # pragma: no cover

    @property
    def value(self) -> PromptTemplate:
        """What is registered: the text, or the chat messages."""
        if not self.chat:
            return f"{self.instruction}\n\n{self.body}" if self.instruction else self.body
        system = [{"role": "system", "content": self.instruction}] if self.instruction else []
        return [*system, *({"role": r, "content": c} for r, c in self.turns), {"role": "user", "content": self.body}]

    @property
    def text(self) -> str:
        """The text form (for a chat template: each message under its role)."""
        return template_text(self.value)

    @property
    def variables(self) -> list[str]:
        return variables(self.body)

    def with_instruction(self, instruction: str) -> Template:
        return replace(self, instruction=instruction.strip())

    def with_turns(self, turns: Iterable[tuple[str, str]]) -> Template:
        """A chat template with these demo turns (user and assistant messages) before the body."""
        return replace(self, turns=tuple(turns))

    def render(self, values: Mapping[str, object]) -> str:
        return render(self.text, values)

    def check_optimizable(self) -> None:
        """Raise unless optimizers can rewrite this template's instruction and keep every variable."""
        if not self.instruction.strip():
            raise TemplateError(
                "The chat template has no system message, so there is nothing to optimize: put the instruction in "
                "a system message first." if self.chat else
                "The template has no instruction before its first {{variable}} paragraph, so there "
                "is nothing to optimize: start it with an instruction paragraph, then a blank line.")
        held = variables(self.instruction) + [v for _, c in self.turns for v in variables(c)]
        if self.chat and held:
            raise TemplateError(
                f"The system message or demo turns of the chat template hold {', '.join('{{' + v + '}}' for v in held)}: "
                "optimizers rewrite the system message, so move the variables into the last user message.")
