"""`promptyard prompts register | list | show | versions | alias`: prompts in the registry."""

from __future__ import annotations

from pathlib import Path

import click

from promptyard.cli.common import emit, open_governance, open_registry, parse_pairs
from promptyard.errors import UserError
from promptyard.registry import template_text
from promptyard.runtime import read_text

__all__ = ["prompts", "describe_version"]


def describe_version(version) -> dict:
    return {
        "name": version.name,
        "version": int(version.version),
        "aliases": sorted(version.aliases),
        "template": version.template,
        "variables": sorted(version.variables),
        "commit_message": version.commit_message,
        "tags": dict(version.tags),
        "model_config": version.model_config,
        "response_format": version.response_format,
        "uri": f"prompts:/{version.name}/{version.version}",
    }


@click.group()
def prompts() -> None:
    """Prompt templates in MLflow's prompt registry: register, versions, aliases, promotion, files."""


@prompts.command()
@click.argument("name")
@click.option("--template", help="Template text with {{variables}} (with --system: the user message).")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the template from a file: text, or (.json/.yaml) a list of chat messages {role, content}.")
@click.option("--system", help="Make a chat prompt: this system message, then the template as the user message.")
@click.option("--message", default="", help="Commit message of the version.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Version tag (repeatable).")
@click.option("--dataset", help="Check that the template's variables are fields of this dataset.")
@click.option("--alias", "aliases", multiple=True, help="Point this alias at the new version (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def register(name, template, path, system, message, tags, dataset, aliases, as_json) -> None:
    """Register a new version of prompt NAME (created if new): a text template, or a chat prompt
    (MLflow's chat format: a system message and a user message holding the variables).

    \b
    Example:
      promptyard prompts register support --template 'Answer politely.\\n\\nQuestion: {{question}}' --alias staging
      promptyard prompts register support --system 'Answer politely.' --template 'Question: {{question}}'
      promptyard prompts register support --file support.yaml      # [{role: system, ...}, {role: user, ...}]
    """
    text = template_from(template, path, system)
    tag_map = parse_pairs(tags, "--tag")
    from promptyard.registry import PromptRef, Template

    PromptRef.parse(name)  # a bad name, or an empty, malformed or oversized template, fails before any service
    Template.parse(text)
    fields = None
    if dataset:
        from promptyard.evaluation import load_card

        fields = load_card(dataset).input_fields
    governance = open_governance()
    for alias in aliases:  # refuse before anything is written
        if governance.policy.is_protected(alias) and governance.registry.alias_version(name, alias) is not None:
            raise UserError(f"{name}@{alias} is protected and exists: register without --alias {alias}, then "
                            f"`promptyard prompts promote {name} VERSION --to {alias}`.")
    version = governance.register(name, text, commit_message=message, tags=tag_map, available_fields=fields)
    for alias in aliases:
        governance.set_alias(name, alias, int(version.version), reason=message or None)
    version = governance.registry.get(f"{name}/{version.version}")
    emit(describe_version(version), as_json, f"registered {name} version {version.version}"
          + (f" (aliases: {', '.join(aliases)})" if aliases else ""))


def template_from(template: str | None, path: Path | None, system: str | None):
    """The template the options give: text, or chat messages (from --system, or a .json/.yaml file)."""
    if (template is None) == (path is None):
        raise UserError("Give the template with exactly one of --template TEXT or --file PATH.")
    if path is not None and path.suffix.lower() in (".json", ".yaml", ".yml"):
        import yaml

        try:
            value = yaml.safe_load(read_text(path, "template file"))
        except yaml.YAMLError as exc:
            raise UserError(f"{path} does not parse as JSON or YAML ({getattr(exc, 'problem', exc)}): give a list "
                            "of chat messages like [{role: system, content: ...}, {role: user, content: ...}].") from None
        if isinstance(value, list):
            if system is not None:
                raise UserError(f"{path} holds chat messages already: put the system message there, not in --system.")
            return value
    value = read_text(path, "template file") if path else template.replace("\\n", "\n")
    if system is None:
        return value
    if not system.strip():
        raise UserError("--system is empty: give the system message's text, or leave --system out for a text prompt.")
    return [{"role": "system", "content": system.replace("\\n", "\n")}, {"role": "user", "content": value}]


@prompts.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """List prompts.

    \b
    Example:
      promptyard prompts list --json
    """
    items = [{"name": p.name, "description": p.description, "tags": {k: v for k, v in p.tags.items() if not k.startswith("_")}}
             for p in open_registry().list()]
    emit(items, as_json, "\n".join(i["name"] for i in items) or "no prompts yet")


@prompts.command()
@click.argument("ref")
@click.option("--at", "at", help="With NAME@ALIAS: the version the alias held at this time (ISO 8601, UTC by default).")
@click.option("--json", "as_json", is_flag=True)
def show(ref: str, at: str | None, as_json: bool) -> None:
    """Show the version REF points to (NAME, NAME/VERSION or NAME@ALIAS), now or --at a past time.

    \b
    Example:
      promptyard prompts show intent@production
      promptyard prompts show intent@production --at 2026-11-25T14:00
    """
    if at is not None:
        ref = _ref_at(ref, at)
    info = describe_version(open_registry().get(ref))
    text = (f"{info['name']} version {info['version']}  aliases: {', '.join(info['aliases']) or '-'}\n"
            f"variables: {', '.join(info['variables'])}\n"
            + "".join(f"tag {k}={v}\n" for k, v in sorted(info["tags"].items()))
            + (f"response_format: {info['response_format']}\n" if info["response_format"] else "")
            + f"---\n{template_text(info['template'])}")
    emit(info, as_json, text)


def _ref_at(ref: str, at: str) -> str:
    """NAME/VERSION that NAME@ALIAS pointed to at time `at`, from the audit log."""
    from promptyard.cli.history import parse_time, version_at
    from promptyard.registry import PromptRef

    parsed, when = PromptRef.parse(ref), parse_time(at)
    if not parsed.alias:
        raise UserError(f"--at needs NAME@ALIAS (an alias moves over time; {ref} does not), e.g. {parsed.name}@production.")
    entry = version_at(parsed.name, parsed.alias, when)
    if entry is None or entry.version is None:
        raise UserError(f"{ref} did not exist at {when.isoformat()} (the audit log has no move of it before then, or "
                        f"it was deleted): see `promptyard prompts history {parsed.name} --alias {parsed.alias}`.")
    return f"{parsed.name}/{entry.version}"


@prompts.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def versions(name: str, as_json: bool) -> None:
    """List the versions of prompt NAME, newest first.

    \b
    Example:
      promptyard prompts versions intent
    """
    registry = open_registry()
    registry.get(name)  # a clear error for an unknown prompt
    items = [describe_version(v) for v in registry.versions(name)]
    lines = [f"v{i['version']:<4} {','.join(i['aliases']) or '-':<22} {(i['commit_message'] or '')[:90]}" for i in items]
    emit(items, as_json, "\n".join(lines))


@prompts.command()
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@click.option("--reason", help="Why (recorded in the audit log).")
def alias(name: str, alias: str, version: int, reason: str | None) -> None:
    """Point ALIAS of prompt NAME at VERSION (protected aliases: use `prompts promote`).

    \b
    Example:
      promptyard prompts alias intent staging 2
    """
    open_governance().set_alias(name, alias, version, reason=reason)
    click.echo(f"{name}@{alias} -> version {version}")
