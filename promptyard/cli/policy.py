"""`promptyard policy show | check | apply`: roles, protected aliases and promotion rules."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from promptyard.errors import UserError
from promptyard.runtime import get_settings, read_text

__all__ = ["policy"]


@click.group()
def policy() -> None:
    """Roles per prompt namespace, protected aliases and promotion rules (a YAML file)."""


@policy.command("show")
def policy_show() -> None:
    """Show the policy in force and your role.

    \b
    Example:
      PROMPTYARD_USER=alice promptyard policy show
    """
    from promptyard.governance import current_user, load_policy

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
    from promptyard.governance import parse_policy

    parsed = parse_policy(read_text(path, "policy file"), str(path))
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
    from promptyard.governance import AuditLog, current_user, load_policy, parse_policy

    settings = get_settings()
    if os.environ.get("PROMPTYARD_POLICY_FILE"):
        raise UserError("PROMPTYARD_POLICY_FILE is set, so an installed policy would be ignored: edit that file "
                        "(in git) instead, or unset the variable.")
    before = load_policy(settings.home_dir)
    new = parse_policy(path.read_text(), str(path))  # refuse a broken file before anything changes
    from promptyard.errors import PermissionDeniedError

    try:
        before.require(current_user(), "admin", "", "change the policy")
    except PermissionDeniedError as exc:
        AuditLog(settings.audit_store_url).append(current_user(), "refused", after={"action": "change the policy"},
                                                  reason=str(exc))
        raise
    target = settings.home_dir / "policy.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    AuditLog(settings.audit_store_url).append(current_user(), "policy", before={"source": before.source, "sha256": before.digest},
                    after={"source": str(path), "sha256": new.digest}, reason=reason)
    click.echo(f"installed {path} as {target}")
