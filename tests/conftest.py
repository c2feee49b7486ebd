"""Shared fixtures: no network beyond loopback, a temp state dir and MLflow store per test,
a fake OpenAI-compatible server, and a tiny sentiment dataset the fake answers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# -- before anything imports promptyard, MLflow, DSPy or Prefect ---------------------------------
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="promptyard-tests-"))
os.environ["PROMPTYARD_HOME"] = str(_SESSION_DIR / "home")
os.environ["DSPY_CACHEDIR"] = str(_SESSION_DIR / "dspy_cache")
os.environ["PROMPTYARD_LM_CACHE"] = "false"
os.environ["PROMPTYARD_RESUME"] = "false"  # resume (task caching) is tested where it is meant
os.environ.pop("PREFECT_API_URL", None)
(_SESSION_DIR / "home" / "prefect").mkdir(parents=True)


import netguard  # noqa: E402

netguard.install()

import pytest  # noqa: E402

from fake_llm import FakeLLM  # noqa: E402
from helpers import governed, tiny_rows, write_dataset  # noqa: E402
from promptyard.runtime import apply_offline_env, get_settings  # noqa: E402

apply_offline_env()  # what the CLI and the flows do first: offline, state under PROMPTYARD_HOME


def _empty_mlflow_store(path: Path) -> None:
    """A new MLflow SQLite store at `path`: a copy of one this process created (MLflow's schema
    migrations take about a second of CPU per store; a copy takes milliseconds)."""
    import shutil

    template = _SESSION_DIR / f"mlflow-empty-{os.getpid()}.db"
    if not template.exists():
        from mlflow import MlflowClient

        MlflowClient(f"sqlite:///{template}").search_experiments()  # creates and migrates the schema
    shutil.copyfile(template, path)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh state dir and SQLite MLflow store for every test."""
    _empty_mlflow_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("PROMPTYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PROMPTYARD_EXPERIMENT", "tests")
    for leaked in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                   "PREFECT_API_URL"):
        monkeypatch.delenv(leaked, raising=False)  # set by an earlier test (mlflow.set_tracking_uri, a CLI call)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    _forget_mlflow_uris()
    _settle_prefect_services()


def _settle_prefect_services(timeout: float = 30.0) -> None:
    """Prefect's event and log workers are process-wide and keep the API URL of their first item; a later
    test on another Prefect server (or after that server stopped) would queue behind a dead address, and
    the session's teardown would wait for every queued item (minutes each). Each test ends with them sent,
    so the next test starts new ones on its own server; what cannot be sent in `timeout` is dropped."""
    import sys

    if "prefect._internal.concurrency.services" not in sys.modules:
        return
    from prefect._internal.concurrency.services import _QueueServiceBase

    services = list(_QueueServiceBase._instances.values())
    if not services:
        return
    _, stuck = type(services[0]).drain_all(timeout=timeout)
    if stuck:
        for service in services:
            while not service._queue.empty():  # its server is gone: what is queued cannot arrive
                try:
                    service._queue.get_nowait()
                except Exception:
                    break
            service._queue.put_nowait(None)


def _forget_mlflow_uris() -> None:
    """MLflow keeps the tracking and registry URIs a test set in module globals: no test inherits them."""
    import sys

    for module, name in (("mlflow.tracking._tracking_service.utils", "_tracking_uri"),
                         ("mlflow.tracking._model_registry.utils", "_registry_uri")):
        if module in sys.modules and hasattr(sys.modules[module], name):
            setattr(sys.modules[module], name, None)


@pytest.fixture
def fake_llm(monkeypatch):
    with FakeLLM() as fake:
        monkeypatch.setenv("PROMPTYARD_LM_BASE_URL", fake.base_url)
        monkeypatch.setenv("PROMPTYARD_LM_MODEL", "fake")
        monkeypatch.setenv("PROMPTYARD_PROPOSER_STYLE", "plain")
        get_settings.cache_clear()
        yield fake


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "datasets" / "tiny", tiny_rows())


@pytest.fixture
def registry():
    from promptyard.registry import Registry

    return Registry(get_settings().tracking_uri)


@pytest.fixture
def support(registry):
    """Prompt `support` with versions 1 ("Be kind.") and 2 ("Be brief."), `production` on 1."""
    governed(registry).register("support", "Be kind.\n\nQ: {{question}}")
    governed(registry).register("support", "Be brief.\n\nQ: {{question}}")
    governed(registry).set_alias("support", "production", 1)
    return registry


def pytest_collection_modifyitems(config, items):
    """The longest files start first (the bundled model's, then PostgreSQL's): on two workers (`make test`
    runs `--dist loadfile --no-loadscope-reorder`) they run beside the short ones instead of after them."""
    def weight(item) -> int:
        return 0 if item.get_closest_marker("real_model") else 1 if item.get_closest_marker("postgres") else 2

    items.sort(key=weight)
