"""What every command module shares: clean errors, output, KEY=VALUE options, service handles."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from promptyard.errors import OrchestratorUnavailableError, PromptyardError, UserError
from promptyard.runtime import get_settings, require_answer

__all__ = ["PromptyardGroup", "emit", "parse_pairs", "open_registry", "open_governance", "point_prefect",
           "use_prefect_server"]


class PromptyardGroup(click.Group):
    """Turn promptyard errors into `Error: ...` and exit 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PromptyardError as exc:
            raise click.ClickException(str(exc)) from None


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """`--json`: the data as JSON and nothing else; otherwise the text (if any)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    elif text is not None:
        click.echo(text)


def parse_pairs(pairs: tuple[str, ...], option: str, *, json_values: bool = False) -> dict[str, Any]:
    """KEY=VALUE options as a dict; values parsed as JSON when asked (and when they are JSON)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{option} takes KEY=VALUE, got {pair!r}.")
        try:
            result[key] = json.loads(value) if json_values else value
        except json.JSONDecodeError:
            result[key] = value
    return result


def open_registry():
    """The registry of the configured tracking server, checked to answer."""
    from promptyard.registry import Registry

    registry = Registry(get_settings().tracking_uri)
    registry.check()
    return registry


def open_governance():
    """Governance for the acting user on the configured registry."""
    from promptyard.governance import Governance

    return Governance.from_settings(open_registry())


def point_prefect() -> str:
    """Point Prefect at the configured server (before anything imports Prefect: it reads its
    settings once); return the API URL."""
    os.environ.setdefault("PREFECT_API_URL", get_settings().prefect_url)
    return os.environ["PREFECT_API_URL"]


def use_prefect_server() -> str:
    """Point Prefect at the configured server; raise unless it answers."""
    url = point_prefect()
    require_answer(f"{url.rstrip('/')}/health", OrchestratorUnavailableError, f"The Prefect server at {url}",
                   "Start it with `promptyard up`, or set PREFECT_API_URL to a running Prefect API.")
    import httpx

    from promptyard.runtime.limits import prefect_headers, refuse_if_unauthorized

    try:  # /health answers anyone: ask a question that needs the credentials before any work starts
        refuse_if_unauthorized(url, httpx.get(f"{url.rstrip('/')}/admin/version", headers=prefect_headers(),
                                              timeout=10))
    except httpx.HTTPError:
        pass  # it answered /health a moment ago; the run itself will say what is wrong
    return url
