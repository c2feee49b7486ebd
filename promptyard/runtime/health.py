"""One way to ask a service whether it answers, and to say so clearly when it does not."""

from __future__ import annotations

import httpx

from promptyard.errors import ServiceError

__all__ = ["require_answer"]


def require_answer(url: str, error: type[ServiceError], what: str, fix: str, timeout: float = 5.0) -> None:
    """GET `url`; unless it answers 2xx, raise `error` naming the service, the reason and the fix."""
    try:
        httpx.get(url, timeout=timeout).raise_for_status()
    except httpx.HTTPError as exc:
        raise error(f"{what} does not answer ({exc}). {fix}") from None
