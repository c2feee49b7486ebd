"""Progress bars for long work: one shared rich display, one bar per scoring job."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["scoring_progress"]

_lock = threading.Lock()
_display: Progress | None = None
_users = 0


@contextmanager
def scoring_progress(label: str, total: int) -> Iterator[Callable[[Any], None]]:
    """Show a bar for `total` steps; yields a callback that advances it by one."""
    global _display, _users
    with _lock:
        if _display is None:
            _display = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=Console(stderr=True))
            _display.start()
        _users += 1
        display = _display
        bar = display.add_task(label, total=total)
    try:
        yield lambda *_: display.advance(bar)
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                display.stop()
                _display = None
