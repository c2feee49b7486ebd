"""The two-line path: register a named template, render it; load it anywhere later.

    prompt = promptyard.register_prompt("greeting", "Hello {{name}}, how can I help?")
    prompt.format(name="Ada")                     # 'Hello Ada, how can I help?'
    promptyard.load_prompt("greeting@production")  # cached, survives registry outages
"""

from __future__ import annotations

from functools import lru_cache

from promptyard.serving.client import PromptClient, ServedPrompt

__all__ = ["register_prompt", "load_prompt"]


def register_prompt(name: str, template: str, *, commit_message: str = "", tags: dict[str, str] | None = None,
                    alias: str | None = None) -> ServedPrompt:
    """Register `template` as a new version of `name` (governed and audited) and return it."""
    from promptyard.governance import Governance

    governance = Governance.from_settings()
    version = governance.register(name, template, commit_message=commit_message, tags=tags)
    if alias:
        governance.set_alias(name, alias, int(version.version), reason=commit_message or None)
    return ServedPrompt(name=name, version=int(version.version), template=template,
                        model_config=dict(version.model_config or {}), response_format=version.response_format)


@lru_cache(maxsize=1)
def _client() -> PromptClient:
    return PromptClient()


def load_prompt(ref: str, *, fallback: str | None = None) -> ServedPrompt:
    """The version `ref` points to, through one process-wide cached `PromptClient`."""
    return _client().get(ref, fallback=fallback)
