"""A real ``airflow api-server`` for tests: free ports, a private migrated AIRFLOW_HOME, SimpleAuthManager
users with random passwords, start (own process group) until healthy, stop, and a byte-for-byte client.

    env = private_home(tmp, auth_env(tmp, "test_x.MyAuthManager", {"alice": "viewer"}, passwords),
                       import_from=Path(__file__).parent)
    with api_server(env, tmp / "api.log") as port:
        server = ApiServer(port, passwords)
        status, body, headers = server.get("/api/v2/...", user="alice")

The api-server process imports the auth manager by module path: ``import_from`` (the test's folder) and
this folder are on its ``PYTHONPATH``, so a test module that imports this one imports there too.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

HERE = Path(__file__).resolve().parent
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class AliceReadsOnlyAuthManager(SimpleAuthManager):
    """SimpleAuthManager, except that alice may only GET the DAGs in :attr:`ALICE_DAGS` (a subclass sets
    it, in a module the api-server imports by path)."""

    ALICE_DAGS: frozenset[str] = frozenset()

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        if user.get_name() == "alice":
            return method == "GET" and details is not None and details.id in self.ALICE_DAGS
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )


def free_ports(count: int) -> list[int]:
    """``count`` distinct free 127.0.0.1 ports (all held open at once while choosing)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``argv`` in its own process group, stdout and stderr appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes], first: int = signal.SIGINT, wait_s: float = 30) -> None:
    """``first`` (SIGINT) to the process group, SIGKILL after a bounded wait; the group is gone afterwards."""
    for sig, wait in ((first, wait_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # children of the group (uvicorn workers) leave too
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("api-server exited:\n" + log.read_text()[-3000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/v2/monitor/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("api-server not healthy in time:\n" + log.read_text()[-3000:])


def auth_env(
    tmp: Path, auth_manager: str, roles: dict[str, str], passwords: dict[str, str]
) -> dict[str, str]:
    """The settings of a server whose users (``roles``: user -> role) log in with ``passwords`` (written
    to ``tmp/passwords.json``), with a fresh JWT secret and one worker."""
    (tmp / "passwords.json").write_text(json.dumps(passwords))
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": auth_manager,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in roles.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp / "passwords.json"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__WORKERS": "1",
    }


def random_passwords(*users: str) -> dict[str, str]:
    return {user: secrets.token_urlsafe(12) for user in users}


def private_home(tmp: Path, settings: dict[str, str], import_from: Path) -> dict[str, str]:
    """This process's environment without Airflow, MLOps, AWS or MLflow-tracking settings, plus a private
    AIRFLOW_HOME (migrated here) and DAGs folder under ``tmp``, ``settings``, and ``import_from`` and this
    folder on ``PYTHONPATH``."""
    skip = ("AIRFLOW", "MLOPS_", "AWS_", "MLFLOW_TRACKING")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    path = [str(import_from), str(HERE), env.get("PYTHONPATH", "")]
    env.update(
        {
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
            "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
            "PYTHONPATH": os.pathsep.join(path).rstrip(os.pathsep),
            **settings,
        }
    )
    (tmp / "dags").mkdir()
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    return env


@contextmanager
def api_server(env: dict[str, str], log: Path) -> Iterator[int]:
    """``airflow api-server`` on a free 127.0.0.1 port until the block ends; yields the port."""
    port = free_port()
    argv = [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)]
    process = spawn(argv, env, log)
    try:
        wait_healthy(port, process, log)
        yield port
    finally:
        stop(process)


@dataclass
class ApiServer:
    """A client of a running api-server: each request goes out byte for byte (``http.client``: no
    client-side normalisation of ``..`` or of percent escapes), with a JWT token per user."""

    port: int
    passwords: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, user: str | None = "alice") -> tuple[int, bytes, dict[str, str]]:
        """``GET path`` sent as it is, as ``user`` (None: no token)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()

    def token(self, user: str) -> str:
        if user not in self.tokens:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            body = json.dumps({"username": user, "password": self.passwords[user]})
            conn.request("POST", "/auth/token", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            assert response.status == 201, payload
            self.tokens[user] = json.loads(payload)["access_token"]
        return self.tokens[user]


@contextmanager
def core_api_app(secret_prefix: str) -> Iterator[tuple[Any, Any]]:
    """Airflow's real API app (core) in-process, with the plugin mounted through its entry point and
    SimpleAuthManager (no one is admin by default): ``(TestClient, auth manager)``."""
    import pytest
    from fastapi.testclient import TestClient

    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", f"{secret_prefix}-test-secret-" + "x" * 48)
    mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{SimpleAuthManager.__module__}.SimpleAuthManager")
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app

    purge_cached_app()
    app = create_app("core")
    try:
        yield TestClient(app), get_auth_manager()
    finally:
        purge_cached_app()
        mp.undo()


def jwt_for(auth_manager: Any, role: str | None, username: str = "reader") -> str:
    """A JWT for a SimpleAuthManager user with ``role`` (None: authenticated, no rights)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(auth_manager.generate_jwt(SimpleAuthManagerUser(username=username, role=role)))
