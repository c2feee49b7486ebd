"""Find credentials in text before it is stored (templates, tags, logged parameters)."""

from __future__ import annotations

import json
import re

from promptyard.errors import TemplateError

__all__ = ["find_secrets", "refuse_secrets", "redact"]

_PATTERNS = {
    "OpenAI-style API key": re.compile(r"\bsk-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
    "bearer token": re.compile(r"\bBearer\s+[A-Za-z0-9_\-.=]{20,}"),
}


def find_secrets(text) -> list[str]:
    """The kinds of credentials found in `text` (a chat template's messages too; empty when clean)."""
    text = text if isinstance(text, str) or text is None else json.dumps(text)
    return [kind for kind, pattern in _PATTERNS.items() if pattern.search(text or "")]


def refuse_secrets(text: str, where: str) -> None:
    found = find_secrets(text)
    if found:
        raise TemplateError(f"{where} contains what looks like a credential ({', '.join(found)}): remove it and "
                            "pass secrets to your app through its environment, never inside a prompt.")


def redact(text: str) -> str:
    for pattern in _PATTERNS.values():
        text = pattern.sub("[REDACTED]", text)
    return text
