"""The prompt library: search, diff, and prompts as files that teams keep in git.

`export_prompts` writes one YAML file per prompt (namespaces become folders: `support.refund` →
`support/refund.yaml`) with the latest version's template, model config and response format,
the prompt's contract and tags. `import_prompts` registers a new version only for a file whose
template or request settings differ from the latest version, so running it twice changes
nothing. Aliases are listed for reading and never moved by an import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from promptyard.errors import UserError
from promptyard.governance import TAG_CONTRACT, Contract, Governance
from promptyard.lm import GenerationConfig
from promptyard.registry import Registry
from promptyard.templates import diff

__all__ = ["search_prompts", "diff_versions", "export_prompts", "import_prompts", "ImportResult"]

_FILE_KEYS = {"name", "template", "model_config", "response_format", "contract", "tags", "version", "aliases",
              "commit_message"}


def _user_tags(tags: dict[str, str] | None) -> dict[str, str]:
    """Prompt tags people set (not MLflow's or promptyard's bookkeeping)."""
    return {k: v for k, v in (tags or {}).items() if not k.startswith(("mlflow.", "promptyard.", "_"))}


def search_prompts(registry: Registry, *, tags: dict[str, str | None] | None = None, text: str | None = None,
                   namespace: str | None = None) -> list[dict[str, Any]]:
    """Prompts whose tags match (key, or key=value, on the prompt or its latest version) and whose
    latest template contains `text` (case-insensitive)."""
    found = []
    for prompt in registry.list():
        if namespace and not prompt.name.startswith(namespace):
            continue
        latest = registry.get(prompt.name)
        all_tags = {**_user_tags(latest.tags), **_user_tags(prompt.tags)}
        if any(key not in all_tags or (value is not None and all_tags[key] != value)
               for key, value in (tags or {}).items()):
            continue
        template = registry.template_text(latest)
        if text and text.lower() not in template.lower():
            continue
        found.append({"name": prompt.name, "version": int(latest.version), "tags": all_tags,
                      "aliases": sorted(latest.aliases), "template": template})
    return found


def diff_versions(registry: Registry, name: str, old: int, new: int) -> str:
    a, b = registry.get(f"{name}/{old}"), registry.get(f"{name}/{new}")
    text = diff(registry.template_text(a), registry.template_text(b), f"{name}/{old}", f"{name}/{new}")
    lines = [text] if text else [f"templates of {name}/{old} and {name}/{new} are identical"]
    for label, x, y in (("model_config", a.model_config, b.model_config),
                        ("response_format", a.response_format, b.response_format)):
        if (x or None) != (y or None):
            lines.append(f"{label}: {json.dumps(x, sort_keys=True)} -> {json.dumps(y, sort_keys=True)}")
    return "\n".join(lines)


class _Literal(str):
    pass


def _dump(data: dict) -> str:
    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Literal, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|"))
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


def _path_for(folder: Path, name: str) -> Path:
    *dirs, leaf = name.split(".")
    return folder.joinpath(*dirs, f"{leaf}.yaml") if dirs else folder / f"{leaf}.yaml"


def export_prompts(governance: Governance, folder: Path, *, namespace: str | None = None) -> list[Path]:
    registry = governance.registry
    written = []
    for prompt in registry.list():
        if namespace and not prompt.name.startswith(namespace):
            continue
        latest = registry.get(prompt.name)
        template = registry.template_text(latest)
        contract = governance.contract(prompt.name)
        aliases = {a: int(v.version) for v in registry.versions(prompt.name) for a in v.aliases}
        data: dict[str, Any] = {
            "name": prompt.name, "version": int(latest.version),
            "template": _Literal(template) if "\n" in template else template,
            "model_config": latest.model_config or {}, "response_format": latest.response_format,
            "contract": {"variables": contract.variables, "response_format": contract.response_format}
            if contract and contract.declared else None,
            "tags": _user_tags(prompt.tags), "aliases": dict(sorted(aliases.items())),
        }
        path = _path_for(folder, prompt.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = (f"# {prompt.name}: exported from the registry. Edit and run `promptyard prompts import`; "
                  "`version` and `aliases` are for reading only.\n")
        path.write_text(header + _dump(data))
        written.append(path)
    return written


@dataclass(frozen=True)
class ImportResult:
    name: str
    path: str
    action: str  # registered | unchanged | tags-updated
    version: int


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"{path}{f' line {mark.line + 1}' if mark else ''} does not parse: "
                        f"{getattr(exc, 'problem', exc)}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("template"), str):
        raise UserError(f"{path}: a prompt file needs at least `name:` and `template:` (see `promptyard prompts export`).")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_FILE_KEYS))}).")
    return data


def import_prompts(governance: Governance, folder: Path, *, dry_run: bool = False) -> list[ImportResult]:
    """Register new versions for changed files. Every file is read and checked before any write."""
    files = sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml"))
    if not files:
        raise UserError(f"No prompt files (*.yaml) under {folder}: write some with `promptyard prompts export`.")
    plans = []
    names: dict[str, Path] = {}
    for path in files:
        data = _read(path)
        if data["name"] in names:
            raise UserError(f"{path} and {names[data['name']]} both define prompt {data['name']!r}.")
        names[data["name"]] = path
        generation = GenerationConfig.from_model_config(data.get("model_config") or {}, data.get("response_format"))
        tags = {str(k): str(v) for k, v in (data.get("tags") or {}).items()}
        contract = data.get("contract")
        if contract is not None and not isinstance(contract, dict):
            raise UserError(f"{path}: contract must be a mapping like {{variables: [question]}}.")
        governance.require("editor", data["name"], "import prompt files")
        if contract is not None:
            prompt = governance.registry.client.get_prompt(data["name"])
            existing = (prompt.tags or {}).get(TAG_CONTRACT) if prompt else None
            wanted = {"variables": list(contract.get("variables") or []),
                      "response_format": bool(contract.get("response_format"))}
            if existing is None or json.loads(existing) != wanted:
                governance.require("approver", data["name"], f"change the contract in {path}")
        from promptyard.templates import Template

        Template.parse(data["template"])  # a broken template fails here, before any write
        plans.append((path, data, generation, tags, contract))
    results = []
    for path, data, generation, tags, contract in plans:
        name = data["name"]
        prompt = governance.registry.client.get_prompt(name)
        latest = governance.registry.get(name) if prompt is not None else None
        changed = latest is None or governance.registry.template_text(latest) != data["template"] or \
            governance.registry.generation(latest) != generation
        action, version = "unchanged", int(latest.version) if latest else 0
        if changed:
            action = "registered"
            if not dry_run:
                version = int(governance.register(name, data["template"], generation=generation,
                                                  commit_message=data.get("commit_message") or f"import {path.name}"
                                                  ).version)
        if not dry_run:
            prompt = governance.registry.client.get_prompt(name)
            current = _user_tags(prompt.tags)
            for key, value in tags.items():
                if current.get(key) != value:
                    governance.registry.client.set_prompt_tag(name, key, value)
                    action = "registered" if action == "registered" else "tags-updated"
            if contract is not None:
                wanted = Contract(list(contract.get("variables") or []), bool(contract.get("response_format")))
                existing = (prompt.tags or {}).get(TAG_CONTRACT)
                if existing is None or json.loads(existing) != {"variables": wanted.variables,
                                                                 "response_format": wanted.response_format}:
                    governance.set_contract(name, wanted, reason=f"import {path.name}")
                    action = "registered" if action == "registered" else "tags-updated"
        results.append(ImportResult(name, str(path), action, version))
    return results
