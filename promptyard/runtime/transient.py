"""Which failures are worth another try: a service that is briefly away, not a mistake.

Retried: our own service errors (an endpoint or MLflow that does not answer), connection and
timeout errors of the HTTP clients MLflow and Prefect use, MLflow answers of 429 or 5xx, a busy
SQLite database, and transient LM errors (`endpoint.is_transient`). Everything else — a bad
input, a spent budget, a bug — fails at once.
"""

from __future__ import annotations

from promptyard.errors import BudgetExhausted, ServiceError, TooManyErrorsError, UserError
from promptyard.runtime.endpoint import is_transient

__all__ = ["is_transient_service_error"]


def is_transient_service_error(exc: BaseException) -> bool:
    if isinstance(exc, UserError | BudgetExhausted | TooManyErrorsError):
        return False
    if isinstance(exc, ServiceError) or is_transient(exc):
        return True
    names = {cls.__module__.split(".")[0] + "." + cls.__name__ for cls in type(exc).__mro__}
    if names & {"requests.ConnectionError", "requests.Timeout", "httpx.TransportError", "urllib3.HTTPError",
                "sqlalchemy.OperationalError"}:
        return True
    if "mlflow.MlflowException" in names:
        status = getattr(exc, "get_http_status_code", lambda: 500)()
        return status == 429 or status >= 500
    return False
