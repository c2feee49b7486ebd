"""What a person reads in the terminal: a known error is one line, never a traceback."""

from __future__ import annotations

import logging

from promptyard.errors import PromptyardError
from promptyard.runtime.transient import is_transient_service_error

__all__ = ["quiet_known_errors"]

_ENGINE_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.engine")


class _NoTracebackForKnownErrors(logging.Filter):
    """Drop the traceback from a log record whose exception is one of promptyard's own errors, or a
    service briefly away (which the flow turns into one): the message says what happened and what
    to do; the stack says nothing more to a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (isinstance(exc, PromptyardError) or is_transient_service_error(exc)):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_known_errors() -> None:
    """Install the filter on Prefect's run loggers (idempotent); retry chatter of HTTP pools is hidden."""
    for name in _ENGINE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoTracebackForKnownErrors) for f in logger.filters):
            logger.addFilter(_NoTracebackForKnownErrors())
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # Prefect's event queue says "still processing items" at exit, after the command's own last word
    logging.getLogger("EventsWorker").setLevel(logging.ERROR)
