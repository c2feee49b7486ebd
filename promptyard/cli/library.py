"""`promptyard prompts search|diff|export|import`: the prompt library and prompts as files."""

from __future__ import annotations

from pathlib import Path

import click

from promptyard.cli.common import emit, open_governance, open_registry

__all__ = ["search", "diff", "export", "import_"]


@click.command()
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]", help="Tag on the prompt or its latest version.")
@click.option("--text", help="Text the latest template contains (case-insensitive).")
@click.option("--namespace", help="Name prefix, e.g. support.")
@click.option("--json", "as_json", is_flag=True)
def search(tags, text, namespace, as_json) -> None:
    """Find prompts by tag, text and namespace.

    \b
    Example:
      promptyard prompts search --tag team=support --text refund
    """
    from promptyard.registry import search_prompts

    wanted = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        wanted[key] = value if sep else None
    found = search_prompts(open_registry(), tags=wanted, text=text, namespace=namespace)
    emit(found, as_json, "\n".join(f"{p['name']:<30} v{p['version']:<4} {','.join(p['aliases']) or '-':<20} "
                                   + " ".join(f"{k}={v}" for k, v in sorted(p["tags"].items())) for p in found)
         or "no prompt matches")


@click.command()
@click.argument("name")
@click.argument("old", type=int)
@click.argument("new", type=int)
def diff(name: str, old: int, new: int) -> None:
    """Show what changed between two versions (template, model config, response format).

    \b
    Example:
      promptyard prompts diff support 3 5
    """
    from promptyard.registry import diff_versions

    click.echo(diff_versions(open_registry(), name, old, new))


@click.command()
@click.option("--dir", "folder", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--namespace", help="Only prompts whose name starts with this prefix.")
def export(folder: Path, namespace: str | None) -> None:
    """Write one YAML file per prompt (template, contract, model config, tags) for git.

    \b
    Example:
      promptyard prompts export --dir prompts/
    """
    from promptyard.registry import export_prompts

    written = export_prompts(open_registry(), folder, namespace=namespace)
    click.echo(f"wrote {len(written)} prompt file(s) under {folder}")


@click.command("import")
@click.option("--dir", "folder", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True)
def import_(folder: Path, dry_run: bool, as_json: bool) -> None:
    """Register new versions for the prompt files that changed (idempotent; aliases never move).

    \b
    Example:
      promptyard prompts import --dir prompts/      # e.g. from CI after a merge
    """
    from promptyard.governance import import_prompts

    results = import_prompts(open_governance(), folder, dry_run=dry_run)
    verb = "would be " if dry_run else ""
    emit([r.__dict__ for r in results], as_json, "\n".join(
        f"{r.name:<30} {verb + r.action:<22} v{r.version}  ({r.path})" for r in results))
