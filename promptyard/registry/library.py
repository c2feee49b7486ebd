"""The prompt library: search, diff, and prompts as files that teams keep in git.

`export_prompts` writes one YAML file per prompt (namespaces become folders: `support.refund` →
`support/refund.yaml`) with the latest version's template, model config and response format,
the prompt's declared contract and tags. `read_prompt_file` reads one back; importing (a
governed write) lives in `promptyard.governance.prompt_files`. Aliases are listed for reading.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from promptyard.errors import UserError
from promptyard.registry.refs import PromptRef
from promptyard.registry.store import Registry
from promptyard.registry.templates import diff
from promptyard.runtime import read_text

__all__ = ["search_prompts", "diff_versions", "export_prompts", "read_prompt_file", "prompt_files", "user_tags"]

_FILE_KEYS = {"name", "template", "model_config", "response_format", "contract", "tags", "version", "aliases",
              "commit_message"}


def user_tags(tags: dict[str, str] | None) -> dict[str, str]:
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
        all_tags = {**user_tags(latest.tags), **user_tags(prompt.tags)}
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


def _literal(template):
    """Multi-line text (a template, or each chat message's content) as a YAML block."""
    if isinstance(template, list):
        return [{"role": m["role"], "content": _literal(m["content"])} for m in template]
    return _Literal(template) if "\n" in template else template


def _dump(data: dict) -> str:
    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Literal, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|"))
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)


def _path_for(folder: Path, name: str) -> Path:
    *dirs, leaf = name.split(".")
    return folder.joinpath(*dirs, f"{leaf}.yaml") if dirs else folder / f"{leaf}.yaml"


def _export_paths(folder: Path, names: list[str]) -> dict[str, Path]:
    """One file per prompt, or a UserError naming the prompts that would share one (nothing written)."""
    unusable = []
    for name in names:
        try:
            PromptRef.parse(name)
        except UserError:
            unusable.append(name)
    if unusable:  # made outside promptyard (e.g. 'a..b' would land on a/b.yaml)
        raise UserError(f"Prompt name(s) {', '.join(map(repr, unusable))} cannot be exported: empty parts between "
                        "dots make file names ambiguous. Nothing was written: register them under a valid name, or "
                        "export the others with --namespace.")
    paths = {name: _path_for(folder, name) for name in names}
    by_path: dict[Path, list[str]] = {}
    for name, path in paths.items():
        by_path.setdefault(path.resolve(), []).append(name)
    clashes = [names for names in by_path.values() if len(names) > 1]
    if clashes:
        raise UserError("These prompts would be exported to the same file: "
                        + "; ".join(" and ".join(repr(n) for n in names) for names in clashes)
                        + ". Nothing was written: rename one of them, or export with --namespace to split them.")
    return paths


def export_prompts(registry: Registry, folder: Path, *, namespace: str | None = None) -> list[Path]:
    written = []
    prompts = [p for p in registry.list() if not namespace or p.name.startswith(namespace)]
    paths = _export_paths(folder, [p.name for p in prompts])
    for prompt in prompts:
        latest = registry.get(prompt.name)
        template = registry.template(latest)
        contract = registry.declared_contract(prompt.name)
        aliases = {a: int(v.version) for v in registry.versions(prompt.name) for a in v.aliases}
        data: dict[str, Any] = {
            "name": prompt.name, "version": int(latest.version),
            "template": _literal(template),
            "model_config": latest.model_config or {}, "response_format": latest.response_format,
            "contract": {"variables": contract.variables, "response_format": contract.response_format}
            if contract else None,
            "tags": user_tags(prompt.tags), "aliases": dict(sorted(aliases.items())),
        }
        path = paths[prompt.name]
        path.parent.mkdir(parents=True, exist_ok=True)
        header = (f"# {prompt.name}: exported from the registry. Edit and run `promptyard prompts import`; "
                  "`version` and `aliases` are for reading only.\n")
        path.write_text(header + _dump(data))
        written.append(path)
    return written


def read_prompt_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(read_text(path, "prompt file"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"{path}{f' line {mark.line + 1}' if mark else ''} does not parse: "
                        f"{getattr(exc, 'problem', exc)}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or \
            not isinstance(data.get("template"), str | list):
        raise UserError(f"{path}: a prompt file needs at least `name:` and `template:` (text, or a list of chat "
                        "messages {role, content}; see `promptyard prompts export`).")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_FILE_KEYS))}).")
    return data


def prompt_files(folder: Path) -> list[Path]:
    """The prompt files under `folder` (`*.yaml`, `*.yml`), or a clear error when there are none."""
    files = sorted(folder.rglob("*.yaml")) + sorted(folder.rglob("*.yml"))
    if not files:
        raise UserError(f"No prompt files (*.yaml) under {folder}: write some with `promptyard prompts export`.")
    return files
