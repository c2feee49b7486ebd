"""Registry: prompts in MLflow's own prompt registry.

Owns prompt references (`name`, `name/3`, `name@alias`), `{{variable}}` templates (text, or chat
messages in MLflow's chat format), the request settings stored with a version, the prompt contract, `Registry` (the one door to MLflow's prompt
API: versions, aliases, prompt-level tags) and the prompt library (search, diff, prompt files).
Writes are made by `promptyard.governance`, which checks roles and audits them.
May import: `promptyard.runtime`, `promptyard.errors`.
"""

from promptyard.registry.contract import TAG_CONTRACT, Contract
from promptyard.registry.generation import GenerationConfig
from promptyard.registry.library import (
    diff_versions,
    export_prompts,
    prompt_files,
    read_prompt_file,
    search_prompts,
    user_tags,
)
from promptyard.registry.refs import PromptRef
from promptyard.registry.store import Registry
from promptyard.registry.templates import (
    PromptTemplate,
    Template,
    check_template,
    check_variables,
    diff,
    is_chat,
    render,
    render_messages,
    template_key,
    template_text,
    template_variables,
    variables,
)

__all__ = [
    "TAG_CONTRACT",
    "Contract",
    "GenerationConfig",
    "PromptRef",
    "PromptTemplate",
    "Registry",
    "Template",
    "check_template",
    "check_variables",
    "diff",
    "diff_versions",
    "export_prompts",
    "is_chat",
    "prompt_files",
    "read_prompt_file",
    "render",
    "render_messages",
    "search_prompts",
    "template_key",
    "template_text",
    "template_variables",
    "user_tags",
    "variables",
]
