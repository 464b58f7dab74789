"""The model card route, ``GET /mlops/cards/<model>/<version>/model_card.(html|md)``, through Airflow's real
API app in-process (plugin mounted through its entry point) with JWTs: only a user who may read the
model's retrain DAG gets the card (others the same 404 as a card that does not exist), served with a
sandboxing CSP; hostile paths are 404, never 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_server import AliceReadsOnlyAuthManager, jwt_for
from conftest import mlflow_connection
from support import cancer_csv, context, train

from mlops_provider.operators.registry import RegisterModelOperator
from mlops_provider.plugins import models_api

MODEL = "card-api"
OWNER_DAG = "lifecycle_test"  # the DAG the support context registers from: the model's retrain DAG


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[tuple[Any, Any, str]]:
    """A registered version with its card, and the API app whose auth manager lets alice read only the
    DAGs in ``AliceReadsOnlyAuthManager.ALICE_DAGS`` (set per test)."""
    from fastapi.testclient import TestClient

    tmp = tmp_path_factory.mktemp("card-api")
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
    mp.setenv("MLOPS_HOME", str(tmp))
    mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "card-api-test-secret-" + "x" * 48)
    mp.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER", f"{AliceReadsOnlyAuthManager.__module__}.AliceReadsOnlyAuthManager"
    )
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    run = train(MODEL, cancer_csv(tmp), "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1}, "r1")
    card = {"description": "<script>alert(1)</script>", "owners": [], "limitations": []}
    registered = RegisterModelOperator(
        task_id="register", model_name=MODEL, run_id=run["run_id"], model_card=card
    )
    version = registered.execute(context("register"))["version"]
    models_api.reset_catalog()
    from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app

    purge_cached_app()
    try:
        yield TestClient(create_app("core")), get_auth_manager(), version
    finally:
        purge_cached_app()
        models_api.reset_catalog()
        mp.undo()


def path(name: str, version: str, file: str = "model_card.html") -> str:
    return f"/mlops/cards/{quote(name, safe='')}/{quote(version, safe='')}/{file}"


def get(client: Any, auth: Any, url: str, user: str | None = "alice") -> Any:
    headers = {"Authorization": f"Bearer {jwt_for(auth, 'viewer', username=user)}"} if user else {}
    return client.get(url, headers=headers)


def test_a_reader_of_the_models_dag_gets_the_card_sandboxed(app, monkeypatch: pytest.MonkeyPatch) -> None:
    client, auth, version = app
    monkeypatch.setattr(AliceReadsOnlyAuthManager, "ALICE_DAGS", frozenset({OWNER_DAG}))
    page = get(client, auth, path(MODEL, version))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    csp = page.headers["content-security-policy"]
    assert csp.startswith("sandbox;")
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert f"Model card: {MODEL} version {version}" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>" not in page.text
    text = get(client, auth, path(MODEL, version, "model_card.md"))
    assert text.status_code == 200
    assert text.headers["content-type"] == "text/plain; charset=utf-8"  # Markdown is never rendered here
    assert "\\<script\\>" in text.text


def test_anyone_else_gets_the_404_of_a_card_that_does_not_exist(app, monkeypatch: pytest.MonkeyPatch) -> None:
    client, auth, version = app
    monkeypatch.setattr(AliceReadsOnlyAuthManager, "ALICE_DAGS", frozenset({"another_teams_retrain"}))
    forbidden = get(client, auth, path(MODEL, version))
    missing = get(client, auth, path(MODEL, "999"), user="admin-less-viewer")  # may read every DAG
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.json() == missing.json() == {"detail": "No such model"}
    assert get(client, auth, path(MODEL, version), user="viewer-bob").status_code == 200  # reads every DAG
    assert get(client, auth, path(MODEL, version), user=None).status_code == 401


@pytest.mark.parametrize(
    "url",
    [
        path(MODEL, "1", "card.json"),
        path(MODEL, "1", "..%2Fcard.json"),
        path(MODEL, "1/../1"),
        path(MODEL, "abc"),
        path(MODEL, "١"),  # a digit, but not an ASCII one
        path(MODEL, "9" * 30),
        path("<img src=x onerror=alert(1)>", "1"),
        path("x" * 5000, "1"),
        path("../../etc/passwd", "1"),
        "/mlops/cards/" + MODEL + "/1/model_card.html%00.json",
    ],
)
def test_hostile_paths_are_404_never_500(app, url: str) -> None:
    client, auth, _ = app
    response = get(client, auth, url, user="viewer-bob")
    assert response.status_code in (400, 404), (url[:100], response.status_code, response.text[:200])
