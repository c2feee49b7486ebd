"""`promptyard prompts promote|approve|reject|rollback|contract`, `promptyard audit ...`, `promptyard policy ...`."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from promptyard.cli import _Group, emit
from promptyard.cli_prompts import _governance, prompts
from promptyard.errors import UserError
from promptyard.settings import get_settings

__all__ = ["audit", "policy"]


@prompts.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--to", "alias", default="production", show_default=True, help="The alias to move.")
@click.option("--evidence", "evidence_run_id", help="MLflow run id of the evidence (default: the newest that qualifies).")
@click.option("--reason", help="Why (recorded in the audit log).")
@click.option("--json", "as_json", is_flag=True)
def promote(name, version, alias, evidence_run_id, reason, as_json) -> None:
    """Move a protected alias to VERSION after checking evidence, approval and contract.

    \b
    Example:
      promptyard ab offline support/3 support/4 --dataset support_tickets
      promptyard prompts approve support 4          # by an approver other than the author
      promptyard prompts promote support 4 --to production
    """
    checks = _governance().promote(name, version, alias=alias, evidence_run_id=evidence_run_id, reason=reason)
    emit([c.__dict__ for c in checks], as_json,
         "\n".join(f"  {c}" for c in checks) + f"\n{name}@{alias} -> version {version}")


@prompts.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True, help="The alias the approval is for.")
@click.option("--reason", help="Why (recorded in the audit log).")
def approve(name, version, alias, reason) -> None:
    """Approve VERSION for a protected alias (approvers only; not your own version).

    \b
    Example:
      promptyard prompts approve support 4 --reason "reviewed the diff and the offline A/B"
    """
    governance = _governance()
    governance.approve(name, version, alias=alias, reason=reason)
    click.echo(f"{governance.user} approved {name}/{version} for {alias}")


@prompts.command()
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True)
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def reject(name, version, alias, reason) -> None:
    """Reject VERSION for a protected alias; it cannot be promoted until you approve it.

    \b
    Example:
      promptyard prompts reject support 4 --reason "tone is off for enterprise customers"
    """
    governance = _governance()
    governance.approve(name, version, alias=alias, reason=reason, reject=True)
    click.echo(f"{governance.user} rejected {name}/{version} for {alias}")


@prompts.command()
@click.argument("name")
@click.option("--to", "version", type=int, required=True, help="The earlier version to return to.")
@click.option("--alias", default="production", show_default=True)
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def rollback(name, version, alias, reason) -> None:
    """Put ALIAS back on an earlier version (approvers only, no checks, audited).

    \b
    Example:
      promptyard prompts rollback support --to 3 --reason "complaints about v4 answers"
    """
    _governance().rollback(name, version, alias=alias, reason=reason)
    click.echo(f"{name}@{alias} rolled back to version {version}")


@prompts.command()
@click.argument("name")
@click.option("--var", "variables", multiple=True, help="A variable apps send (repeat); sets the contract.")
@click.option("--response-format/--no-response-format", default=None,
              help="Whether versions must constrain their output format.")
@click.option("--json", "as_json", is_flag=True)
def contract(name, variables, response_format, as_json) -> None:
    """Show or set the contract of NAME: the variables every production version must take.

    \b
    Example:
      promptyard prompts contract support --var question --var customer_name
    """
    from promptyard.governance import Contract

    governance = _governance()
    governance.registry.get(name)
    if variables or response_format is not None:
        current = governance.contract(name)
        governance.set_contract(name, Contract(list(variables) or (current.variables if current else []),
                                               bool(response_format)))
    found = governance.contract(name)
    if found is None:
        emit(None, as_json, f"{name} has no contract yet (it takes the variables of its first production version)")
        return
    source = "declared" if found.declared else "from the current production version"
    emit(found.__dict__, as_json, f"{name} contract ({source}): variables {', '.join(found.variables) or '-'}"
                                  + ("; response_format required" if found.response_format else ""))


# -- audit ------------------------------------------------------------------------------------
def _audit():
    from promptyard.audit import AuditLog

    return AuditLog(get_settings().audit_store_url)


@click.group(cls=_Group)
def audit() -> None:
    """The audit log: who changed which prompt, when, why, on what evidence (hash-chained)."""


@audit.command("log")
@click.option("--prompt", help="Only entries about this prompt.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one entry per line.")
def audit_log(prompt, as_json) -> None:
    """Show the audit log.

    \b
    Example:
      promptyard audit log --prompt support
    """
    log = _audit()
    if as_json:
        click.echo(log.export_jsonl(prompt), nl=False)
        return
    for e in log.entries(prompt):
        target = f"{e.prompt or ''}{'/' + str(e.version) if e.version else ''}{'@' + e.alias if e.alias else ''}"
        change = f" {e.before} -> {e.after}" if e.action in ("alias", "promote", "rollback") else ""
        extra = (f" evidence {e.evidence_run_id}" if e.evidence_run_id else "") + (f" — {e.reason}" if e.reason else "")
        click.echo(f"{e.seq:>5} {e.at[:19]} {e.user:<12} {e.action:<10} {target}{change}{extra}")


@audit.command("verify")
@click.option("--head", help="A head recorded earlier (`promptyard audit head`): also detects removed newest entries.")
def audit_verify(head) -> None:
    """Check the hash chain; exit 1 naming the first edited or deleted entry.

    \b
    Example:
      promptyard audit verify --head "$(cat audit-head.txt)"
    """
    log = _audit()
    count = log.verify(expected_head=head)
    click.echo(f"audit log intact: {count} entries, head {log.head()}")


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


# -- policy -----------------------------------------------------------------------------------
@click.group(cls=_Group)
def policy() -> None:
    """Roles per prompt namespace, protected aliases and promotion rules (a YAML file)."""


@policy.command("show")
def policy_show() -> None:
    """Show the policy in force and your role.

    \b
    Example:
      PROMPTYARD_USER=alice promptyard policy show
    """
    from promptyard.policy import current_user, load_policy

    found = load_policy(get_settings().home_dir)
    click.echo(f"policy: {found.source}\nprotected aliases: {', '.join(sorted(found.protected_aliases))}")
    for prefix, roles in found.roles.items():
        for role, users in roles.items():
            click.echo(f"  {prefix or '(every prompt)'}: {role} = {', '.join(sorted(users))}")
    for prefix, rule in found.promotion.items():
        click.echo(f"  promotion {prefix or '(every prompt)'}: {rule}")
    click.echo(f"you are {current_user()}")


@policy.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def policy_check(path: Path) -> None:
    """Validate a policy file (errors name the line).

    \b
    Example:
      promptyard policy check promptyard-policy.yaml
    """
    from promptyard.policy import parse_policy

    parsed = parse_policy(path.read_text(), str(path))
    click.echo(f"{path}: valid ({sum(len(r) for r in parsed.roles.values())} role grants, "
               f"protected: {', '.join(sorted(parsed.protected_aliases))})")


@policy.command("apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def policy_apply(path: Path, reason: str) -> None:
    """Install a policy file into the state directory (admins under the current policy; audited).

    \b
    Example:
      promptyard policy apply promptyard-policy.yaml --reason "bob joins as approver"
    """
    import os

    from promptyard.policy import current_user, load_policy, parse_policy

    settings = get_settings()
    if os.environ.get("PROMPTYARD_POLICY_FILE"):
        raise UserError("PROMPTYARD_POLICY_FILE is set, so an installed policy would be ignored: edit that file "
                        "(in git) instead, or unset the variable.")
    before = load_policy(settings.home_dir)
    new = parse_policy(path.read_text(), str(path))  # refuse a broken file before anything changes
    before.require(current_user(), "admin", "", "change the policy")
    target = settings.home_dir / "policy.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    _audit().append(current_user(), "policy", before={"source": before.source, "sha256": before.digest},
                    after={"source": str(path), "sha256": new.digest}, reason=reason)
    click.echo(f"installed {path} as {target}")
