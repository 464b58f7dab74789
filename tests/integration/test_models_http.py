"""The Models API over real HTTP: a real ``airflow api-server`` whose auth manager lets alice read only
``alpha_retrain``. She sees alpha (and the models registered with that retrain DAG), never beta: not in
the list, and beta's page is the same 404 as a model that does not exist. Hostile model names (HTML,
quotes, unicode, percent signs, newlines, very long) come back as JSON data; no request is a 500.

The server imports :class:`AlphaOnlyAuthManager` from this module (``PYTHONPATH``: this folder and tests/,
see :mod:`api_server`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_server import (
    AliceReadsOnlyAuthManager,
    ApiServer,
    api_server,
    auth_env,
    private_home,
    random_passwords,
)

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


class AlphaOnlyAuthManager(AliceReadsOnlyAuthManager):
    """SimpleAuthManager, except that alice may read only :data:`ALICE_DAG`."""

    ALICE_DAGS = frozenset({ALICE_DAG})


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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    from conftest import mlflow_connection  # not at module level: the api-server imports this module

    tmp = tmp_path_factory.mktemp("models-http")
    passwords = random_passwords("alice", "admin")
    auth_manager = f"{Path(__file__).stem}.AlphaOnlyAuthManager"
    settings = auth_env(tmp, auth_manager, {"alice": "viewer", "admin": "admin"}, passwords)
    settings.update(
        {
            "AIRFLOW_CONN_MLFLOW_DEFAULT": mlflow_connection(tmp),
            "MLOPS_HOME": str(tmp),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    env = private_home(tmp, settings, import_from=HERE)
    seed(env)
    with api_server(env, tmp / "api.log") as port:
        yield ApiServer(port=port, passwords=passwords)


def get_json(server: ApiServer, path: str, user: str | None = "alice") -> tuple[int, Any, dict[str, str]]:
    status, body, headers = server.get(path, user=user)
    assert headers.get("content-type", "").startswith("application/json"), (path, status, body[:200])
    return status, json.loads(body), headers


def model_path(name: str) -> str:
    return "/mlops/api/models/" + quote(name, safe="")


@pytest.mark.slow
def test_alice_sees_only_the_models_of_the_dag_she_may_read(server: ApiServer) -> None:
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
def test_the_admin_sees_every_model_and_no_token_is_401(server: ApiServer) -> None:
    status, listed, _ = get_json(server, "/mlops/api/models", user="admin")
    assert status == 200
    assert sorted(m["name"] for m in listed["models"]) == sorted(["alpha", "beta", "orphan", *HOSTILE])
    assert get_json(server, model_path("beta"), user="admin")[0] == 200
    assert get_json(server, model_path("orphan"), user="admin")[0] == 200  # all DAGs: sees no-DAG models
    for path in ("/mlops/api/models", model_path("alpha"), model_path("beta")):
        assert server.get(path, user=None)[0] == 401


@pytest.mark.slow
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_round_trip_as_data(server: ApiServer, name: str) -> None:
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
def test_hostile_paths_are_404_never_500(server: ApiServer, name: str) -> None:
    paths = [model_path(name)]
    if name.isascii() and name.isprintable() and " " not in name:
        paths.append("/mlops/api/models/" + name)  # sent as it is: no client-side normalisation
    for path in paths:
        status, body, _ = server.get(path)
        assert status in (400, 404), (path[:100], status, body[:200])
    assert server.get(model_path(name), user="admin")[0] == 404
