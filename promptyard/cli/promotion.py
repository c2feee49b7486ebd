"""`promptyard prompts promote | approve | reject | rollback | contract`: moving protected aliases."""

from __future__ import annotations

import click

from promptyard.cli.common import emit, open_governance

__all__ = ["promote", "approve", "reject", "rollback", "contract"]


@click.command()
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
    checks = open_governance().promote(name, version, alias=alias, evidence_run_id=evidence_run_id, reason=reason)
    emit([c.__dict__ for c in checks], as_json,
         "\n".join(f"  {c}" for c in checks) + f"\n{name}@{alias} -> version {version}")


@click.command()
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
    governance = open_governance()
    governance.approve(name, version, alias=alias, reason=reason)
    click.echo(f"{governance.user} approved {name}/{version} for {alias}")


@click.command()
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
    governance = open_governance()
    governance.approve(name, version, alias=alias, reason=reason, reject=True)
    click.echo(f"{governance.user} rejected {name}/{version} for {alias}")


@click.command()
@click.argument("name")
@click.option("--to", "version", type=int, required=True, help="The earlier version to return to.")
@click.option("--alias", default="production", show_default=True)
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def rollback(name, version, alias, reason) -> None:
    """Put ALIAS back on a version it held before (approvers only; the contract is checked; audited).

    \b
    Example:
      promptyard prompts rollback support --to 3 --reason "complaints about v4 answers"
    """
    open_governance().rollback(name, version, alias=alias, reason=reason)
    click.echo(f"{name}@{alias} rolled back to version {version}")


@click.command()
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
    from promptyard.registry import Contract

    governance = open_governance()
    governance.registry.get(name)
    if variables or response_format is not None:
        current = governance.promotion.contract(name)
        governance.set_contract(name, Contract(list(variables) or (current.variables if current else []),
                                               bool(response_format)))
    found = governance.promotion.contract(name)
    if found is None:
        emit(None, as_json, f"{name} has no contract yet (it takes the variables of its first production version)")
        return
    source = "declared" if found.declared else "from the current production version"
    emit(found.__dict__, as_json, f"{name} contract ({source}): variables {', '.join(found.variables) or '-'}"
                                  + ("; response_format required" if found.response_format else ""))
