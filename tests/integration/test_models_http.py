"""The Models API over real HTTP: a real ``airflow api-server`` whose auth manager lets alice read only
``alpha_retrain``. She sees alpha (and the models registered with that retrain DAG), never beta: not in
the list, and beta's page is the same 404 as a model that does not exist. Hostile model names (HTML,
quotes, unicode, percent signs, newlines, very long) come back as JSON data; no request is a 500.

The server imports :class:`AlphaOnlyAuthManager` from this module (``PYTHONPATH`` = this folder).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

HERE = Path(__file__).resolve().parent
ALICE_DAG = "alpha_retrain"
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "\"both\" 'quotes' & <b>",
    "unicode-é-名-🙂",
    "per%2Fcent%2e%2e 100%",
    "x?y#z;a..b",
    "back\\slash\nnew line",
    "long-" + "x" * 300,
]
UNREGISTERED = ["../../etc/passwd", "..%2F..", "%2e%2e", "beta/../alpha", "x" * 5000, "<script>", "名"]


class AlphaOnlyAuthManager(SimpleAuthManager):
    """SimpleAuthManager, except that alice may read only :data:`ALICE_DAG`."""

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        if user.get_name() == "alice":
            return method == "GET" and details is not None and details.id == ALICE_DAG
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )


@dataclass
class Server:
    port: int
    passwords: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, user: str | None = "alice") -> tuple[int, bytes, dict[str, str]]:
        """``GET path`` sent byte for byte (no client-side normalisation), as ``user`` (None: no token)."""
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT to the server's process group, SIGKILL after a bounded wait."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


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


def seed(env: dict[str, str]) -> None:
    """Registered models as RegisterModelOperator leaves them (managed, with their retrain DAG)."""
    code = f"""
import json, sys
from mlflow import MlflowClient
from mlops_provider.hooks.mlflow import MLflowHook
models = json.loads(sys.argv[1])
with MLflowHook().session() as client:
    for name, retrain in models:
        tags = {{"mlops.managed": "true", **({{"mlops.retrain_dag": retrain}} if retrain else {{}})}}
        client.create_registered_model(name, tags=tags)
        client.create_model_version(name, {str(HERE)!r})
        client.set_registered_model_alias(name, "champion", "1")
"""
    models = [["alpha", ALICE_DAG], ["beta", "beta_retrain"], ["orphan", None]]
    models += [[name, ALICE_DAG] for name in HOSTILE]
    run = subprocess.run(
        [sys.executable, "-c", code, json.dumps(models)], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from conftest import mlflow_connection  # not at module level: the api-server imports this module

    tmp = tmp_path_factory.mktemp("models-http")
    passwords = {"alice": secrets.token_urlsafe(12), "admin": secrets.token_urlsafe(12)}
    (tmp / "passwords.json").write_text(json.dumps(passwords))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_TRACKING"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
            "AIRFLOW__CORE__AUTH_MANAGER": f"{Path(__file__).stem}.AlphaOnlyAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "alice:viewer,admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp / "passwords.json"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
            "AIRFLOW_CONN_MLFLOW_DEFAULT": mlflow_connection(tmp),
            "MLOPS_HOME": str(tmp),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONPATH": os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
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
    seed(env)
    port = free_port()
    log = tmp / "api.log"
    argv = [sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "ab") as out:
        api = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(port, api, log)
        yield Server(port=port, passwords=passwords)
    finally:
        stop(api)


def get_json(server: Server, path: str, user: str | None = "alice") -> tuple[int, Any, dict[str, str]]:
    status, body, headers = server.get(path, user=user)
    assert headers.get("content-type", "").startswith("application/json"), (path, status, body[:200])
    return status, json.loads(body), headers


def model_path(name: str) -> str:
    return "/mlops/api/models/" + quote(name, safe="")


@pytest.mark.slow
def test_alice_sees_only_the_models_of_the_dag_she_may_read(server: Server) -> None:
    status, listed, headers = get_json(server, "/mlops/api/models")
    assert status == 200
    assert headers["cache-control"] == "private, no-store"
    assert headers["x-content-type-options"] == "nosniff"
    names = [m["name"] for m in listed["models"]]
    assert sorted(names) == sorted(["alpha", *HOSTILE])  # no beta, no orphan (no retrain DAG)
    assert all(m["retrain_dag_id"] == ALICE_DAG for m in listed["models"])

    status, alpha, _ = get_json(server, model_path("alpha"))
    assert status == 200
    assert alpha["champion"]["version"] == "1"
    assert [v["version"] for v in alpha["versions"]] == ["1"]

    forbidden = get_json(server, model_path("beta"))
    unknown = get_json(server, model_path("gamma"))
    assert forbidden[:2] == unknown[:2] == (404, {"detail": "No such model"})
    assert get_json(server, model_path("orphan"))[:2] == unknown[:2]
    assert forbidden[2]["cache-control"] == "private, no-store"


@pytest.mark.slow
def test_the_admin_sees_every_model_and_no_token_is_401(server: Server) -> None:
    status, listed, _ = get_json(server, "/mlops/api/models", user="admin")
    assert status == 200
    assert sorted(m["name"] for m in listed["models"]) == sorted(["alpha", "beta", "orphan", *HOSTILE])
    assert get_json(server, model_path("beta"), user="admin")[0] == 200
    assert get_json(server, model_path("orphan"), user="admin")[0] == 200  # all DAGs: sees no-DAG models
    for path in ("/mlops/api/models", model_path("alpha"), model_path("beta")):
        assert server.get(path, user=None)[0] == 401


@pytest.mark.slow
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_round_trip_as_data(server: Server, name: str) -> None:
    status, listed, _ = get_json(server, "/mlops/api/models")
    (entry,) = [m for m in listed["models"] if m["name"] == name]
    assert entry["links"]["api"] == model_path(name)
    status, detail, _ = get_json(server, entry["links"]["api"])
    if "\n" in name:  # Starlette's Mount of the plugin app ("/mlops/(?P<path>.*)") stops at a newline
        assert (status, detail) == (404, {"detail": "Not Found"})
        return
    assert status == 200, detail
    assert detail["name"] == name
    assert detail["champion"]["version"] == "1"


@pytest.mark.slow
@pytest.mark.parametrize("name", UNREGISTERED)
def test_hostile_paths_are_404_never_500(server: Server, name: str) -> None:
    paths = [model_path(name)]
    if name.isascii() and name.isprintable() and " " not in name:
        paths.append("/mlops/api/models/" + name)  # sent as it is: no client-side normalisation
    for path in paths:
        status, body, _ = server.get(path)
        assert status in (400, 404), (path[:100], status, body[:200])
    assert server.get(model_path(name), user="admin")[0] == 404
