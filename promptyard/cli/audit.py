"""`promptyard audit log | verify | head | export`: the hash-chained audit log."""

from __future__ import annotations

from pathlib import Path

import click

from promptyard.runtime import get_settings

__all__ = ["audit"]


def _audit():
    from promptyard.governance import AuditLog

    return AuditLog(get_settings().audit_store_url)


@click.group()
def audit() -> None:
    """The audit log: who changed which prompt, when, why, on what evidence (hash-chained)."""


@audit.command("log")
@click.option("--prompt", help="Only entries about this prompt.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one entry per line.")
@click.option("--intents", is_flag=True, help="Also the write-ahead intents each governed write records first.")
def audit_log(prompt, as_json, intents) -> None:
    """Show the audit log (the write-ahead intents too with --intents; --json shows everything).

    \b
    Example:
      promptyard audit log --prompt support
    """
    log = _audit()
    if as_json:
        click.echo(log.export_jsonl(prompt), nl=False)
        return
    for e in log.entries(prompt):
        if e.action == "intent" and not intents:
            continue
        target = f"{e.prompt or ''}{'/' + str(e.version) if e.version else ''}{'@' + e.alias if e.alias else ''}"
        change = f" {e.before} -> {e.after}" if e.action in ("alias", "promote", "rollback") else ""
        reason = " / ".join(line.strip() for line in (e.reason or "").splitlines() if line.strip())
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        extra = (f" evidence {e.evidence_run_id}" if e.evidence_run_id else "") + (f" — {reason}" if reason else "")
        click.echo(f"{e.seq:>5} {e.at[:19]} {e.user:<12} {e.action:<10} {target}{change}{extra}")


@audit.command("verify")
@click.option("--head", help="A head recorded earlier (`promptyard audit head`): also detects removed newest entries.")
def audit_verify(head) -> None:
    """Check the hash chain, and that every protected alias is where the audit log last put it;
    exit 1 naming the first edited or deleted entry, or each alias moved outside promptyard.

    \b
    Example:
      promptyard audit verify --head "$(cat audit-head.txt)"
    """
    from promptyard.errors import AuditTamperedError, ServiceError
    from promptyard.governance import alias_drift, load_policy
    from promptyard.registry import Registry

    log = _audit()
    count = log.verify(expected_head=head)
    click.echo(f"audit log intact: {count} entries, head {log.head()}")
    registry = Registry(get_settings().tracking_uri)
    try:
        registry.check(timeout=3)
    except ServiceError as exc:
        click.echo(f"aliases not checked: {exc}")
        return
    from promptyard.governance import Journal

    for entry in Journal(log, registry).settle_all():
        click.echo(f"settled an interrupted write: {entry.action} {entry.prompt} v{entry.version} ({entry.reason})")
    drift = alias_drift(registry, log, load_policy(get_settings().home_dir))
    if drift:
        raise AuditTamperedError("The registry changed outside promptyard:\n  " + "\n  ".join(drift))
    click.echo("every protected alias and every version is what the audit log recorded")


@audit.command("head")
def audit_head() -> None:
    """Print the current head (SEQ:HASH) to keep elsewhere, e.g. in git or CI logs.

    \b
    Example:
      promptyard audit head > audit-head.txt
    """
    click.echo(_audit().head())


@audit.command("export")
@click.option("--prompt", help="Only entries about this prompt.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="JSON lines file.")
def audit_export(prompt, output) -> None:
    """Export the audit log as JSON lines.

    \b
    Example:
      promptyard audit export --output audit.jsonl
    """
    text = _audit().export_jsonl(prompt)
    output.write_text(text)
    click.echo(f"wrote {text.count(chr(10))} entries to {output}")
