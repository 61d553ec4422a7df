"""Pytest plugin: real MLflow tracking services for tests.

Fixtures:

- ``mlflow_server`` (session): a real ``mlflow server`` subprocess on a free loopback port,
  PostgreSQL backend store (a fresh database per session on 127.0.0.1:5432, dropped at the end)
  and a proxied artifact store in a tmp dir. Yields the tracking URI (``http://127.0.0.1:PORT``).
- ``mlflow_sqlite`` (function): the embedded default — a fresh ``sqlite:///`` file store in
  tmp_path (copied from a once-migrated template). Yields the tracking URI; create experiments
  with ``artifact_location=sqlite_artifact_location(uri, name)`` so artifacts stay in tmp_path.

Enable for the whole run (component tests live outside tests/): ``-p tests.support.mlflow`` in
pytest's addopts, or ``pytest_plugins = [..., "tests.support.mlflow"]`` in a root conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port as _free_port

POSTGRES_HOST = os.environ.get("KUBELOOP_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("KUBELOOP_TEST_PG_PORT", "5432"))
POSTGRES_USER = os.environ.get("KUBELOOP_TEST_PG_USER", "postgres")
# Generous: schema migrations plus imports take minutes on a loaded 2-core CI machine.
SERVER_START_TIMEOUT_S = 300.0


def _admin_connection():  # type: ignore[no-untyped-def]
    """Autocommit connection to the maintenance DB (CREATE/DROP DATABASE cannot run in a tx)."""
    import psycopg2

    try:
        conn = psycopg2.connect(
            host=POSTGRES_HOST,
            port=POSTGRES_PORT,
            user=POSTGRES_USER,
            dbname="postgres",
            connect_timeout=5,
        )
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_HOST}:{POSTGRES_PORT} as user "
            f"{POSTGRES_USER!r} (trust auth expected); the mlflow_server fixture needs it. "
            f"Start it (CI: scripts/ensure-services.sh). Cause: {exc}",
            pytrace=False,
        )
    conn.autocommit = True
    return conn


def _create_database(name: str) -> None:
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def _drop_database(name: str) -> None:
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            # The server is stopped already; terminate stragglers so DROP cannot block.
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        conn.close()


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with code {process.returncode} during startup; "
                f"log tail:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"mlflow server at {url} not healthy after {SERVER_START_TIMEOUT_S:.0f}s; "
        f"log tail:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "<no log>"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group (the CLI forks a uvicorn child)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


def start_mlflow_server(
    backend_store_uri: str, workdir: Path
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start ``mlflow server`` and wait for /health. Returns (tracking URI, process)."""
    port = _free_port()
    artifacts = workdir / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "mlflow-server.log"
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts.as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # The job runner (huey consumers) is unused by kubeloop and costs several processes.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log_file = log_path.open("wb")
    # Own process group so a stop reaches the server's worker children too.
    process = subprocess.Popen(
        command,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env=env,
        start_new_session=True,
    )
    log_file.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process, log_path)
    except BaseException:
        _stop(process)
        raise
    return url, process


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tracking URI of a real MLflow server (PostgreSQL backend store, proxied artifacts)."""
    database = f"kubeloop_test_{secrets.token_hex(6)}"
    _create_database(database)
    workdir = tmp_path_factory.mktemp("mlflow-server")
    backend_uri = f"postgresql://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"
    process: subprocess.Popen[bytes] | None = None
    try:
        url, process = start_mlflow_server(backend_uri, workdir)
        yield url
    finally:
        if process is not None:
            _stop(process)
        _drop_database(database)


@pytest.fixture(scope="session")
def _mlflow_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow SQLite database, built once (migrations take a while)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    directory = tmp_path_factory.mktemp("mlflow-sqlite-template")
    store = SqlAlchemyStore(f"sqlite:///{directory / 'mlflow.db'}", (directory / "unused").as_uri())
    store.engine.dispose()
    return directory / "mlflow.db"


@pytest.fixture
def mlflow_sqlite(tmp_path: Path, _mlflow_sqlite_template: Path) -> Iterator[str]:
    """Tracking URI of the embedded default: a fresh SQLite file store in tmp_path.

    A client over a ``sqlite:///`` URI puts artifacts of experiments created without an explicit
    ``artifact_location`` under ``./mlruns`` (CWD); tests create their experiments with
    ``artifact_location`` under tmp_path (see ``sqlite_artifact_location``).
    """
    db_path = tmp_path / "mlflow.db"
    shutil.copyfile(_mlflow_sqlite_template, db_path)
    yield f"sqlite:///{db_path}"


def sqlite_artifact_location(tracking_uri: str, experiment: str) -> str:
    """Artifact location for an experiment next to the SQLite file of ``tracking_uri``."""
    db_file = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db_file.parent / "artifacts" / experiment).as_uri()
