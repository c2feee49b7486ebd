"""Prompt references: `name` (latest version), `name/3` (a version), `name@production` (an alias);
the `prompts:/` prefix is accepted too."""

from __future__ import annotations

import re
from dataclasses import dataclass

from promptyard.errors import UserError

__all__ = ["PromptRef"]

# MLflow's rule, with dots only between non-empty parts (namespaces: support.refund)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class PromptRef:
    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, ref: str) -> PromptRef:
        text = ref.removeprefix("prompts:/").strip()
        if "@" in text:
            name, alias = text.rsplit("@", 1)
            if not _ALIAS.match(alias):
                raise UserError(f"Alias {alias!r} in {ref!r} is not valid: use letters, digits, '-' or '_'.")
            ref_obj = cls(name, alias=alias)
        elif re.search(r"/\d+$", text):
            name, version = text.rsplit("/", 1)
            ref_obj = cls(name, version=int(version))
        else:
            ref_obj = cls(text)
        if not _NAME.match(ref_obj.name):
            raise UserError(
                f"Prompt reference {ref!r} is not valid: write NAME, NAME/VERSION or NAME@ALIAS "
                "(names use letters, digits, '-', '_' and single dots between parts; namespaces are dotted "
                "prefixes, e.g. support.refund)."
            )
        return ref_obj

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}/{self.version}" if self.version else self.name

    @property
    def uri(self) -> str:
        return f"prompts:/{self}"
