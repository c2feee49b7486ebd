"""The prompt contract: the variables apps send (and whether the output format must be constrained).

Declared contracts live in the prompt tag `promptyard.contract` as JSON; a version that drops or
renames a variable breaks every app that formats it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from promptyard.registry.templates import template_variables

__all__ = ["Contract", "TAG_CONTRACT"]

TAG_CONTRACT = "promptyard.contract"


@dataclass(frozen=True)
class Contract:
    variables: list[str]
    response_format: bool = False  # versions must constrain their output format
    declared: bool = True  # False: taken from the version currently on the protected alias

    def to_tag(self) -> str:
        return json.dumps({"variables": self.variables, "response_format": self.response_format})

    @classmethod
    def from_tag(cls, text: str) -> Contract:
        data = json.loads(text)
        return cls(list(data.get("variables", [])), bool(data.get("response_format")), True)

    def problems(self, template: str, response_format) -> list[str]:
        have = template_variables(template)
        found = [f"drops {{{{{v}}}}}" for v in self.variables if v not in have]
        found += [f"needs {{{{{v}}}}}, which apps do not send" for v in have if v not in self.variables]
        if self.response_format and not response_format:
            found.append("has no response_format, which the contract requires")
        return found
