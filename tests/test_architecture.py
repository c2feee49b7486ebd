"""The house rules of ARCHITECTURE.md, checked on the source: arrows one way, no import circle,
the public surface complete, modules and flow functions small."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = ("promptyard", "optimizers", "flows")

# package -> the packages it may import (besides itself); "errors" is promptyard/errors.py
ALLOWED = {
    "errors": set(),
    "runtime": {"errors"},
    "registry": {"runtime", "errors"},
    "evaluation": {"registry", "runtime", "errors"},
    "governance": {"evaluation", "registry", "runtime", "errors"},
    "optimization": {"governance", "evaluation", "registry", "runtime", "errors"},
    "serving": {"governance", "evaluation", "registry", "runtime", "errors"},
    "api": {"serving", "governance", "evaluation", "registry", "runtime", "errors"},  # promptyard/__init__.py
    "optimizers": {"evaluation", "registry", "runtime", "errors"},
    "flows": {"optimizers", "optimization", "serving", "governance", "evaluation", "registry", "runtime", "errors"},
    "cli": {"flows", "optimizers", "optimization", "serving", "governance", "evaluation", "registry", "runtime",
            "errors"},
}
CORE = {"runtime", "registry", "evaluation", "governance", "optimization", "serving"}


def modules() -> dict[str, Path]:
    found = {}
    for top in CODE:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "promptyard":
        return parts[0]
    if len(parts) == 1:
        return "api"
    return parts[1]


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (lazy imports are arrows too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
    return found


GRAPH = {name: {m for m in imports(path) if m in MODULES} for name, path in MODULES.items()}
EXTERNAL = {name: {m.split(".")[0] for m in imports(path)} for name, path in MODULES.items()}


def test_arrows_point_one_way():
    wrong = sorted(f"{source} imports {target}" for source, targets in GRAPH.items() for target in targets
                   if package_of(target) != package_of(source)
                   and package_of(target) not in ALLOWED[package_of(source)])
    assert wrong == []


def test_no_import_circle():
    """No module reaches itself through imports (top-level or lazy), so no cycle hides behind a lazy import."""
    cycles = []
    for start in GRAPH:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in GRAPH[node]:
                if nxt == start and not package_init_edge(start, path):
                    cycles.append(" -> ".join([*path, nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert cycles[:5] == []


def package_init_edge(start: str, path: list[str]) -> bool:
    """A package's __init__ re-exporting its own modules is not a circle."""
    return any(MODULES[m].name == "__init__.py" and all(p.startswith(m) for p in path) for m in path)


def test_only_the_cli_imports_flows():
    assert sorted(m for m, targets in GRAPH.items() if package_of(m) not in ("cli", "flows")
                  and any(package_of(t) == "flows" for t in targets)) == []


@pytest.mark.parametrize("package, forbidden", [
    ("optimizers", {"prefect", "mlflow", "flask"}),
    ("optimization", {"prefect", "mlflow", "dspy", "httpx", "openai", "litellm", "sqlalchemy"}),
    ("runtime", {"prefect"}), ("registry", {"prefect", "dspy"}), ("evaluation", {"prefect"}),
    ("governance", {"prefect", "dspy"}), ("serving", {"prefect", "dspy"}),
])
def test_packages_do_not_reach_for_what_they_must_not(package, forbidden):
    offenders = {m: sorted(EXTERNAL[m] & forbidden) for m in MODULES if package_of(m) == package}
    assert {m: libs for m, libs in offenders.items() if libs} == {}


def test_only_the_registry_and_the_tracker_open_mlflow_clients():
    """One door to MLflow's prompt API (`Registry`) and one to its runs (`Tracker`)."""
    doors = {"promptyard.registry.store", "promptyard.runtime.tracking"}
    opened = sorted(m for m, path in MODULES.items() if "MlflowClient(" in path.read_text() and m not in doors)
    assert opened == []


def test_every_package_says_what_it_owns_and_what_it_may_import():
    for package in CORE:
        doc = importlib.import_module(f"promptyard.{package}").__doc__ or ""
        assert "Owns" in doc and "May import" in doc, package


def test_public_surfaces_resolve():
    for name in MODULES:
        module = importlib.import_module(name)
        declared = getattr(module, "__all__", None)
        assert declared is not None, f"{name} has no __all__"
        assert [n for n in declared if not hasattr(module, n)] == [], name
        assert len(declared) == len(set(declared)), name


def test_modules_stay_small():
    assert {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) >= 400} == {}


def test_flow_functions_stay_short():
    long = {}
    for name, path in MODULES.items():
        if package_of(name) != "flows":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long[f"{name}.{node.name}"] = node.end_lineno - node.lineno + 1
    assert long == {}


def test_importing_promptyard_changes_nothing():
    import os
    import subprocess
    import sys

    script = ("import json, os; before = dict(os.environ); import promptyard, promptyard.cli, flows.optimize; "
              "print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTYARD_", "DSPY_", "PREFECT_", "MLFLOW_"))}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_datasets_is_data_only():
    assert not (ROOT / "datasets" / "__init__.py").exists()
    assert list((ROOT / "datasets").rglob("*.py")) == []


def test_the_error_tree_is_whole_and_says_who_acts():
    import promptyard.errors as errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.PromptyardError)]
    assert sorted(c.__name__ for c in classes) == sorted(errors.__all__)
    for cls in classes:
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} is missing from the drawn tree"
        assert cls.acts in ("user", "service"), cls
    declared_elsewhere = sorted(f"{m}.{n}" for m, path in MODULES.items() if m != "promptyard.errors"
                                for n in [node.name for node in ast.walk(ast.parse(path.read_text()))
                                          if isinstance(node, ast.ClassDef)
                                          and any(getattr(b, "id", "").endswith(("Error", "Exhausted"))
                                                  for b in node.bases)])
    assert declared_elsewhere == []


def test_registry_writes_only_through_governance():
    """The public API has no ungoverned write: Registry's public methods read, and only the
    governance package calls its writes."""
    from promptyard.registry import Registry

    public = sorted(m for m in vars(Registry) if not m.startswith("_") and callable(getattr(Registry, m)))
    assert public == ["alias_version", "aliases", "check", "created_at", "declared_contract", "find_version",
                      "generation", "get", "get_with_prompt", "has_version", "list", "prompt", "prompt_tags", "template",
                      "template_text", "versions"]
    writes = ("._register(", "._set_alias(", "._set_version_tags(", "._delete_version_tag(", "._set_prompt_tag(",
              "._delete_prompt_tag(")
    callers = sorted(m for m, path in MODULES.items() if package_of(m) != "governance" and m != "promptyard.registry.store"
                     and any(w in path.read_text() for w in writes))
    assert callers == []


def test_test_modules_have_unique_names():
    """tests/ has no __init__.py files, so pytest imports test modules by base name: two with one
    name in different folders stop the whole collection."""
    from collections import Counter

    names = Counter(path.name for path in (ROOT / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
