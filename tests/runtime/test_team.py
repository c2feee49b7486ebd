"""Team mode for real: PostgreSQL from the system's binaries (as an unprivileged account), MLflow with
basic-auth and the guard and Prefect on it; a local SQLite state migrated in losing nothing; an
optimization end to end on the team stack; a second process reads the prompt by alias."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import mlflow
import pytest
from click.testing import CliRunner
from helpers import SEED_TEMPLATE, free_port, governed, write_dataset, tiny_rows

from promptyard.errors import UserError
from promptyard.runtime import Settings, Tracker, get_settings, postgres, team

pytestmark = pytest.mark.postgres
if postgres.binaries() is None or not postgres.binaries()[1].startswith("system"):
    pytest.skip("PostgreSQL is not installed", allow_module_level=True)

TIMINGS: dict[str, float] = {}


def _env(settings: Settings) -> dict[str, str]:
    return {"PROMPTYARD_HOME": str(settings.home_dir), "PROMPTYARD_MLFLOW_PORT": str(settings.mlflow_port),
            "PROMPTYARD_PREFECT_PORT": str(settings.prefect_port),
            "PROMPTYARD_POSTGRES_PORT": str(settings.postgres_port),
            "MLFLOW_TRACKING_URI": settings.tracking_uri, "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": postgres.admin_password(settings),
            "PREFECT_API_AUTH_STRING": postgres.prefect_auth(settings)}


@pytest.fixture(scope="module")
def local_state():
    """A state directory with a local (SQLite) history: a governed prompt with an alias and a tag, an audit
    log, and a run with params and metrics. Open to the account PostgreSQL runs as."""
    root = Path(tempfile.mkdtemp(prefix="promptyard-team-"))
    root.chmod(0o755)
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMPTYARD_HOME", str(home))
        mp.setenv("PROMPTYARD_MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
        mp.delenv("PROMPTYARD_EXPERIMENT", raising=False)
        get_settings.cache_clear()
        (home / "mlflow").mkdir(parents=True)
        from promptyard.registry import Registry

        registry = Registry(get_settings().tracking_uri)
        gov = governed(registry)
        gov.register("sentiment", SEED_TEMPLATE, commit_message="seed", tags={"team": "search"})
        gov.register("sentiment", SEED_TEMPLATE + "\nBe brief.", commit_message="second")
        gov.set_alias("sentiment", "production", 1)
        tracker = Tracker(get_settings().tracking_uri, "history")
        run_id = tracker.start_run("an old evaluation")
        tracker.log(run_id, params={"dataset": "tiny"}, metrics={"accuracy": 0.75})
        tracker.finish(run_id)
        get_settings.cache_clear()
    yield home, run_id


@pytest.fixture(scope="module")
def team_stack(local_state):
    home, _ = local_state
    settings = Settings(home=home, team=True, mlflow_port=free_port(), prefect_port=free_port(),
                        postgres_port=free_port())
    started = time.perf_counter()
    statuses = team.up(settings, ("mlflow", "prefect"), echo=lambda _: None)
    TIMINGS["up"] = time.perf_counter() - started
    try:
        yield team.mark(settings), statuses
    finally:
        team.down(settings)
        print(f"\nteam stack (PostgreSQL, MLflow, Prefect) up in {TIMINGS['up']:.1f} s")


def _use(monkeypatch, settings: Settings) -> None:
    for key, value in _env(settings).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PROMPTYARD_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PROMPTYARD_EXPERIMENT", raising=False)
    get_settings.cache_clear()


def test_status_shows_each_service_and_its_database(team_stack):
    settings, statuses = team_stack
    by_name = {s.name: s for s in statuses}
    assert all(s.healthy for s in statuses if s.name != "llm"), statuses  # the LLM was not asked for
    assert "database mlflow" in by_name["mlflow"].note and "database prefect" in by_name["prefect"].note
    assert by_name["postgres"].note.startswith("system PostgreSQL")
    assert by_name["postgres"].url == f"postgresql+psycopg://promptyard:***@127.0.0.1:{settings.postgres_port}/postgres"
    server = subprocess.run(["ps", "-o", "user=", "-C", "postgres"], capture_output=True, text=True).stdout.split()
    assert server and "root" not in server  # PostgreSQL never runs as root


def _basic(auth: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def test_the_team_prefect_api_lets_in_only_the_team(team_stack, monkeypatch):
    """Without the team's credentials the Prefect API runs nothing (no deployment, no slot of the limit), from
    a raw request or from Prefect's own CLI; with them the limits and a worker work as in local mode."""
    settings, _ = team_stack
    api, auth = settings.prefect_url, postgres.prefect_auth(settings)
    assert auth and (settings.home_dir / "team" / postgres.PREFECT_AUTH_FILE).stat().st_mode & 0o777 == 0o600
    assert httpx.get(f"{api}/health").status_code == 200  # probes stay open
    password = auth.split(":", 1)[1]
    for forged in ({}, _basic("promptyard:wrong"), _basic(f"admin:{password}"), _basic(password),
                   {"Authorization": f"Bearer {password}"}):
        assert httpx.post(f"{api}/deployments/filter", json={}, headers=forged).status_code == 401
        assert httpx.post(f"{api}/v2/concurrency_limits/", headers=forged,
                          json={"name": "lm-sneaky", "limit": 99}).status_code == 401
    assert httpx.post(f"{api}/deployments/filter", json={}, headers=_basic(auth)).status_code == 200

    prefect = [str(Path(sys.executable).parent / "prefect"), "deployment", "ls"]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_AUTH_STRING"} | {"PREFECT_API_URL": api}
    assert subprocess.run(prefect, env=env, capture_output=True, timeout=120).returncode != 0
    signed_in = subprocess.run(prefect, env={**env, "PREFECT_API_AUTH_STRING": auth}, capture_output=True,
                               text=True, timeout=120)
    assert signed_in.returncode == 0, signed_in.stderr[-2000:]

    _use(monkeypatch, settings)
    from promptyard.runtime import workers
    from promptyard.runtime.limits import ensure_limits, read_limits, slot

    lm = "http://127.0.0.1:9/v1"
    ensure_limits(api, [lm], 2)
    with slot(api, lm):
        assert next(iter(read_limits(api, [lm]).values()))["active_slots"] == 1
    try:
        assert workers.start(settings, 1, echo=lambda _: None, timeout=120) == ["worker-1"]
        assert [w["status"] for w in workers.online_workers(settings).values()] == ["ONLINE"]
    finally:
        workers.stop(settings, echo=lambda _: None)


def test_the_prefect_credentials_reach_every_client_and_no_server_else(team_stack, monkeypatch):
    """A script or a Dask worker on the state directory signs in by itself; wrong credentials stop a command with
    one line naming the fix; the string is in the Prefect server's environment only (not MLflow's, not
    PostgreSQL's, whose account is not ours)."""
    settings, statuses = team_stack
    api, auth = settings.prefect_url, postgres.prefect_auth(settings)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "PROMPTYARD_"))}
    script = ("from promptyard.runtime.limits import ensure_limits, slot\n"
              f"ensure_limits({api!r}, ['http://127.0.0.1:9/v1'], 1)\n"
              f"with slot({api!r}, 'http://127.0.0.1:9/v1'):\n    print('slot held')")
    for given in ({}, {"PREFECT_API_AUTH_STRING": ""}):  # unset, or exported empty
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              env={**clean, "PROMPTYARD_HOME": str(settings.home_dir), **given})
        assert done.stdout.strip() == "slot held", done.stderr[-2000:]

    wrong = {**clean, "PROMPTYARD_HOME": str(settings.home_dir), "PROMPTYARD_PREFECT_PORT": str(settings.prefect_port),
             "PROMPTYARD_MLFLOW_PORT": str(settings.mlflow_port), "PREFECT_API_AUTH_STRING": "promptyard:guess"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=wrong)
    assert done.returncode != 0 and "PermissionDeniedError" in done.stderr and "PREFECT_API_AUTH_STRING" in done.stderr
    promptyard = str(Path(sys.executable).parent / "promptyard")
    refused = subprocess.run([promptyard, "deploy"], capture_output=True, text=True, timeout=180, env=wrong)
    assert refused.returncode != 0 and "refuses this process's credentials" in refused.stderr + refused.stdout
    assert "Traceback" not in refused.stderr + refused.stdout

    pids = {s.name: s.pid for s in team.status(settings)}
    postmaster = int((settings.home_dir / "team" / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    environ = {name: Path(f"/proc/{pid}/environ").read_bytes() for name, pid in
               (("prefect", pids["prefect"]), ("mlflow", pids["mlflow"]), ("postgres", postmaster))}
    assert auth.encode() in environ["prefect"]
    assert auth.encode() not in environ["mlflow"] and auth.encode() not in environ["postgres"]
    assert b"PREFECT_API_AUTH_STRING" not in environ["postgres"] + environ["mlflow"]


def test_migrate_moves_everything(team_stack, local_state, monkeypatch):
    settings, _ = team_stack
    _, run_id = local_state
    _use(monkeypatch, settings)
    from promptyard.cli import cli

    result = CliRunner().invoke(cli, ["migrate"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "audit chain verified (" in result.output

    mlflow.set_tracking_uri(settings.tracking_uri)
    client = mlflow.MlflowClient(settings.tracking_uri)
    prompt = mlflow.genai.load_prompt("prompts:/sentiment@production")
    assert (prompt.version, prompt.template) == (1, SEED_TEMPLATE)
    assert client.get_prompt_version("sentiment", 1).tags["team"] == "search"
    assert mlflow.genai.load_prompt("prompts:/sentiment/2").template.endswith("Be brief.")
    run = client.get_run(run_id)
    assert run.data.params == {"dataset": "tiny"} and run.data.metrics == {"accuracy": 0.75}
    from promptyard.governance.audit import AuditLog

    actions = [e.action for e in AuditLog(settings.audit_store_url).entries()]
    assert actions.count("register") == 2 and "alias" in actions
    assert settings.audit_store_url.startswith("postgresql+psycopg://")
    again = CliRunner().invoke(cli, ["migrate"])
    assert again.exit_code == 1 and "never merges two histories" in again.output


def test_an_optimization_runs_on_the_team_stack(team_stack, fake_llm, monkeypatch, tmp_path):
    settings, _ = team_stack
    _use(monkeypatch, settings)
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from flows.optimize import optimize_prompt
    from promptyard.registry import Registry

    registry = Registry(settings.tracking_uri)
    mlflow.set_tracking_uri(settings.tracking_uri)
    if "optimized" not in [p.name for p in mlflow.genai.search_prompts()]:
        governed(registry, user="admin").register("optimized", SEED_TEMPLATE, commit_message="seed")
        governed(registry, user="admin").set_alias("optimized", "production", 1)
    dataset = write_dataset(tmp_path / "tiny", tiny_rows())
    with temporary_settings(updates={PREFECT_API_URL: settings.prefect_url,
                                     PREFECT_API_AUTH_STRING: postgres.prefect_auth(settings)}):
        result = optimize_prompt(prompt="optimized@production", dataset=str(dataset),
                                 optimizer={"name": "copro", "breadth": 2, "depth": 1, "train_size": 8,
                                            "max_candidates": 2})
    assert result.registered_version == 2, result.decision
    assert result.flow_run_id and result.parent_run_id

    reader = """
import mlflow
for ref in ("prompts:/optimized@candidate", "prompts:/optimized@production"):
    p = mlflow.genai.load_prompt(ref)
    print(p.version, "carefully" in p.template)
"""
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    done = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["2 True", "1 False"]
    nobody = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True, timeout=120,
                            env={**env, "MLFLOW_TRACKING_PASSWORD": "wrong"})
    assert nobody.returncode != 0  # basic-auth is on


def test_root_without_an_unprivileged_account_is_refused_before_anything_starts(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root needs an account to run PostgreSQL as")
    settings = Settings(home=tmp_path / "home", team=True, postgres_os_user="no-such-account")
    with pytest.raises(UserError, match="PostgreSQL refuses to run as root.*PROMPTYARD_POSTGRES_OS_USER"):
        team.up(settings, ("mlflow", "prefect"), echo=lambda _: None)
    assert not (settings.home_dir / "team").exists()
