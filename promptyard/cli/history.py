"""`promptyard prompts history`: which version an alias held when, who moved it, why, on what evidence."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from promptyard.cli.common import emit
from promptyard.errors import UserError
from promptyard.runtime import get_settings

__all__ = ["history", "parse_time", "version_at"]


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (`2026-11-25T14:00`, `2026-11-25 14:00:00+01:00`); UTC when it names no zone."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--at {text!r} is not a time: write it as ISO 8601, e.g. 2026-11-25T14:00 (UTC) or "
                        "2026-11-25T14:00+01:00.") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _moves(name: str, alias: str):
    from promptyard.governance import AuditLog

    return AuditLog(get_settings().audit_store_url).alias_history(name, alias)


def version_at(name: str, alias: str, when: datetime):
    """The audit entry that put `name@alias` where it was at `when` (None before the first move)."""
    earlier = [e for e in _moves(name, alias) if datetime.fromisoformat(e.at) <= when]
    return earlier[-1] if earlier else None


@click.command()
@click.argument("name")
@click.option("--alias", default="production", show_default=True, help="The alias whose history to show.")
@click.option("--json", "as_json", is_flag=True)
def history(name: str, alias: str, as_json: bool) -> None:
    """Show which version ALIAS of NAME held when: who moved it, how, why, on what evidence.

    \b
    Example:
      promptyard prompts history support --alias production
      promptyard prompts show support@production --at 2026-11-25T14:00
    """
    moves = _moves(name, alias)
    rows = [{"at": e.at, "version": e.version, "previous": e.before, "action": e.action, "user": e.user,
             "reason": e.reason, "evidence_run_id": e.evidence_run_id, "audit_seq": e.seq} for e in moves]
    lines = [f"{r['at'][:19]}  v{r['version']:<4} {r['action']:<9} {r['user']:<12}"
             + (f" from v{r['previous']}" if r["previous"] else "")
             + (f"  evidence {r['evidence_run_id']}" if r["evidence_run_id"] else "")
             + (f"  — {r['reason']}" if r["reason"] else "") for r in rows]
    emit(rows, as_json, "\n".join(lines) or f"no audited move of {name}@{alias}")
