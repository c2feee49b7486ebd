"""Prompts as files, imported through governance: a new version only for a file that changed.

`import_prompts` reads and checks every file before any write, then registers a new version for
each file whose template or request settings differ from the latest version (so running it twice
changes nothing), and updates prompt tags and the contract. Aliases are never moved by an import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from promptyard.errors import UserError
from promptyard.governance.actions import Governance
from promptyard.registry import (
    Contract,
    GenerationConfig,
    PromptTemplate,
    Template,
    prompt_files,
    read_prompt_file,
    user_tags,
)

__all__ = ["import_prompts", "ImportResult"]


@dataclass(frozen=True)
class ImportResult:
    name: str
    path: str
    action: str  # registered | unchanged | tags-updated
    version: int


def import_prompts(governance: Governance, folder: Path, *, dry_run: bool = False) -> list[ImportResult]:
    """Register new versions for changed files. Every file is read and checked before any write."""
    plans: dict[str, _Plan] = {}
    for path in prompt_files(folder):
        plan = _plan(governance, path)
        if plan.name in plans:
            raise UserError(f"{path} and {plans[plan.name].path} both define prompt {plan.name!r}.")
        plans[plan.name] = plan
    return [_apply(governance, plan, dry_run) for plan in plans.values()]


@dataclass(frozen=True)
class _Plan:
    path: Path
    name: str
    template: PromptTemplate  # text, or chat messages
    generation: GenerationConfig
    tags: dict[str, str]
    contract: Contract | None
    commit_message: str


def _plan(governance: Governance, path: Path) -> _Plan:
    """Read and check one file, with the roles its changes need; nothing is written."""
    data = read_prompt_file(path)
    name = data["name"]
    contract = data.get("contract")
    if contract is not None and not isinstance(contract, dict):
        raise UserError(f"{path}: contract must be a mapping like {{variables: [question]}}.")
    governance.require("editor", name, "import prompt files")
    tags = {str(k): str(v) for k, v in (data.get("tags") or {}).items()}
    governance.check_user_tags(name, tags, f"{path}")
    wanted = None
    if contract is not None:
        wanted = Contract(list(contract.get("variables") or []), bool(contract.get("response_format")))
        if governance.registry.declared_contract(name) != wanted:
            governance.require("approver", name, f"change the contract in {path}")
    Template.parse(data["template"])  # a broken template fails here, before any write
    return _Plan(path, name, data["template"],
                 GenerationConfig.checked(data.get("model_config"), data.get("response_format"), str(path)),
                 tags, wanted,
                 data.get("commit_message") or f"import {path.name}")


def _apply(governance: Governance, plan: _Plan, dry_run: bool) -> ImportResult:
    registry = governance.registry
    latest = registry.get(plan.name) if registry.prompt(plan.name) is not None else None
    changed = latest is None or registry.template(latest) != plan.template or \
        registry.generation(latest) != plan.generation
    action, version = "unchanged", int(latest.version) if latest else 0
    if changed:
        action = "registered"
        if not dry_run:
            version = int(governance.register(plan.name, plan.template, generation=plan.generation,
                                              commit_message=plan.commit_message).version)
    if dry_run:
        return ImportResult(plan.name, str(plan.path), action, version)
    current = user_tags(registry.prompt_tags(plan.name))
    updates = {k: v for k, v in plan.tags.items() if current.get(k) != v}
    if updates:
        governance.set_prompt_tags(plan.name, updates, reason=f"import {plan.path.name}")
    contract_changed = plan.contract is not None and registry.declared_contract(plan.name) != plan.contract
    if contract_changed:
        governance.set_contract(plan.name, plan.contract, reason=f"import {plan.path.name}")
    if action == "unchanged" and (updates or contract_changed):
        action = "tags-updated"
    return ImportResult(plan.name, str(plan.path), action, version)
