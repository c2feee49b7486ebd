"""Prompt templates with `{{variable}}` placeholders: parse, check, render, split, diff.

The syntax is MLflow's, so a template registered here formats the same with
`mlflow.genai.load_prompt(...).format(...)`. Rendering is plain substitution: no code runs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from promptyard.errors import TemplateError

__all__ = ["Template", "variables", "render", "check_variables", "diff", "MAX_TEMPLATE_CHARS"]

MAX_TEMPLATE_CHARS = 100_000  # MLflow refuses longer prompt text

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


@dataclass(frozen=True)
class Template:
    """A template seen as an instruction (what optimizers rewrite) and a body (the inputs).

    The body starts at the first paragraph that contains a variable; everything before it is the
    instruction. `Template.parse(t).text == t` for any well-formed template.
    """

    instruction: str
    body: str

    @classmethod
    def parse(cls, text: str) -> Template:
        if not text.strip():
            raise TemplateError("The template is empty: give it an instruction and a {{variable}}.")
        if len(text) > MAX_TEMPLATE_CHARS:
            raise TemplateError(
                f"The template has {len(text):,} characters; MLflow's prompt registry holds at most "
                f"{MAX_TEMPLATE_CHARS:,}: shorten it (move reference material into a variable filled at run time)."
            )
        if _BAD_VAR.search(text):
            raise TemplateError(
                "The template has a malformed placeholder: write variables as {{name}} with a "
                "letter or underscore first, then letters, digits or underscores."
            )
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
    def text(self) -> str:
        return f"{self.instruction}\n\n{self.body}" if self.instruction else self.body

    @property
    def variables(self) -> list[str]:
        return variables(self.body)

    def with_instruction(self, instruction: str) -> Template:
        return Template(instruction.strip(), self.body)

    def render(self, values: Mapping[str, object]) -> str:
        return render(self.text, values)
