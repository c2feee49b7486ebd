"""The public surface: everything in `__all__` exists, and the packages re-export their API."""

import importlib

import pytest


@pytest.mark.parametrize("package", ["promptyard", "optimizers"])
def test_all_names_resolve(package):
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert sorted(module.__all__) == sorted(set(module.__all__))


def test_core_modules_declare_all():
    for name in ["data", "errors", "lm", "metrics", "registry", "scoring", "serving", "settings", "stats",
                 "templates", "tracking", "report", "evaluation", "stack", "progress", "events",
                 "experiments", "sequential", "analysis", "audit", "policy", "governance",
                 "library", "quick", "secret_scan", "sqlstore"]:
        module = importlib.import_module(f"promptyard.{name}")
        assert module.__all__, name
        assert all(hasattr(module, n) for n in module.__all__), name


def test_core_does_not_import_flows():
    import pathlib

    core = pathlib.Path(importlib.import_module("promptyard").__file__).parent
    offenders = [p.name for p in core.glob("*.py")
                 if not p.name.startswith("cli") and ("from flows" in p.read_text() or "import flows" in p.read_text())]
    assert offenders == []


def test_optimizers_never_import_prefect_or_mlflow():
    import pathlib

    folder = pathlib.Path(importlib.import_module("optimizers").__file__).parent
    for path in folder.glob("*.py"):
        text = path.read_text()
        assert "import prefect" not in text and "from prefect" not in text, path.name
        assert "import mlflow" not in text and "from mlflow" not in text, path.name
