"""The Models JSON API on real records: the operators train, register, gate (one promoted, one refused)
and check drift against MLflow (SQLite); a retrain DAG runs under dag.test(); the API is called through
Airflow's real API app (``create_app("core")``) with JWTs, as the UI and scripts call it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException
from api_server import core_api_app, jwt_for
from conftest import mlflow_connection
from support import cancer_csv, context, import_dag_file, train

from mlops_provider.hooks.catalog import ModelCatalogHook
from mlops_provider.operators.drift import DriftCheckOperator
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator
from mlops_provider.plugins import models_api

MODEL = "cancer"
THRESHOLDS = {"f1_macro": {"min": 0.5}}
VS_CHAMPION = {"f1_macro": {"min_delta": 0.0}}
RETRAIN_DAG = f"""
import datetime

from airflow.sdk import DAG, task

with DAG(
    dag_id="{MODEL}_retrain",
    schedule=None,
    start_date=datetime.datetime(2025, 1, 1),
    tags=["mlops", "model:{MODEL}", "retrain"],
) as dag:

    @task
    def noop():
        return 1

    noop()
"""


@pytest.fixture(scope="module")
def api(airflow_db: Path):
    """Airflow's real API server app (core) with the plugin mounted through its entry point."""
    with core_api_app("models-api") as client_and_manager:
        yield client_and_manager


def headers(auth_manager: Any, role: str | None = "viewer") -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt_for(auth_manager, role)}"}


def train_register(data: Path, estimator: str, params: dict[str, Any], evaluate: bool = True) -> str:
    run = train(MODEL, data, estimator, params, run_id=f"run-{estimator}")
    if evaluate:
        EvaluateModelOperator(task_id="evaluate", run_id=run["run_id"]).execute(context("evaluate"))
    registered = RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run["run_id"])
    return str(registered.execute(context("register", run_id=f"run-{estimator}"))["version"])


def promote(version: str) -> dict[str, Any]:
    op = PromoteModelOperator(
        task_id="promote", model_name=MODEL, version=version, thresholds=THRESHOLDS, vs_champion=VS_CHAMPION
    )
    ctx = context("promote")
    try:
        return op.execute(ctx)
    except AirflowFailException:
        return ctx["ti"].pushed["return_value"]


def check_drift(tmp_path: Path, data: Path, shift: float, run_id: str) -> dict[str, Any]:
    frame = pd.read_csv(data)
    numeric = frame.columns.drop("target")
    frame[numeric] = frame[numeric] * shift
    current = tmp_path / f"current-{run_id}.csv"
    frame.to_csv(current, index=False)
    op = DriftCheckOperator(
        task_id="drift",
        model_name=MODEL,
        current_uri=str(current),
        drift_share=0.3,
        reports_uri=str(tmp_path / "reports"),
        emit_asset=False,
    )
    return op.execute(context("drift", run_id=run_id))


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path):
    """v1 promoted, v2 refused, one drift check; a retrain DAG run in Airflow (once for the module: the
    tests read it in file order, the last one adds to it)."""
    import airflow.settings

    tmp_path = tmp_path_factory.mktemp("models-api")
    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp_path))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags_folder))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags_folder))
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    models_api.reset_catalog()
    data = cancer_csv(tmp_path)
    v1 = train_register(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    assert promote(v1)["decision"] == "promoted"
    v2 = train_register(data, "sklearn.dummy.DummyClassifier", {"strategy": "most_frequent"}, evaluate=False)
    assert promote(v2)["decision"] == "refused"
    drift = check_drift(tmp_path, data, 3.0, "drift-1")
    assert drift["status"] == "drift"
    (dags_folder / "retrain_dag.py").write_text(textwrap.dedent(RETRAIN_DAG))
    dag = import_dag_file(dags_folder / "retrain_dag.py")[f"{MODEL}_retrain"]
    retrain = dag.test()
    assert retrain.state == "success"
    yield {"data": data, "v1": v1, "v2": v2, "tmp": tmp_path, "retrain_run": retrain.run_id}
    models_api.reset_catalog()
    monkeypatch.undo()


def test_list_and_model_page_show_what_the_operators_recorded(api, lifecycle) -> None:
    client, auth = api
    listed = client.get("/mlops/api/models", headers=headers(auth))
    assert listed.status_code == 200, listed.text
    assert listed.headers["cache-control"] == "private, no-store"
    assert listed.headers["x-content-type-options"] == "nosniff"
    (model,) = [m for m in listed.json()["models"] if m["name"] == MODEL]
    assert model["configured"]
    assert model["registered"]
    assert model["retrain_dag_id"] == f"{MODEL}_retrain"  # the config's DAG, not the registering one
    assert model["champion"]["version"] == lifecycle["v1"]
    assert model["champion"]["since"]
    decision = model["last_decision"]
    assert (decision["version"], decision["decision"]) == (lifecycle["v2"], "refused")
    assert decision["first_failing_gate"]["gate"] == "threshold_min"
    assert decision["first_failing_gate"]["metric"] == "f1_macro"
    assert model["last_drift"]["status"] == "drift"
    assert model["last_drift"]["report_url"].startswith("/mlops/reports/")
    retrain = model["last_retrain"]
    assert (retrain["dag_id"], retrain["state"], retrain["cause"]) == (
        f"{MODEL}_retrain",
        "success",
        "manual",
    )
    assert retrain["dag_run_id"] == lifecycle["retrain_run"]
    assert set(model["problems"]) == {"refused", "drift"}
    assert model["links"]["api"] == f"/mlops/api/models/{MODEL}"

    page = client.get(f"/mlops/api/models/{MODEL}", headers=headers(auth))
    assert page.status_code == 200, page.text
    detail = page.json()
    assert detail["champion"]["version"] == lifecycle["v1"]
    assert detail["aliases"] == {"champion": lifecycle["v1"]}
    assert detail["primary_metric"] == "f1_macro"
    assert detail["greater_is_better"] is True
    newest, oldest = detail["versions"]
    assert (newest["version"], oldest["version"]) == (lifecycle["v2"], lifecycle["v1"])
    assert newest["decision"] == "refused"
    assert "f1_macro" in newest["reason"]
    failed = [g for g in newest["gates"] if not g["passed"]]
    assert {(g["gate"], g["metric"]) for g in failed} == {
        ("threshold_min", "f1_macro"),
        ("vs_champion", "f1_macro"),
    }
    assert newest["deltas"]["f1_macro"] < 0  # challenger minus champion
    assert oldest["decision"] == "promoted"
    assert oldest["aliases"] == ["champion"]
    assert 0 < oldest["metrics"]["f1_macro"] <= 1  # the holdout metric EvaluateModelOperator logged
    assert oldest["training_data_fingerprint"]
    assert oldest["run_id"]
    assert oldest["links"]["dag_run"] == "/dags/lifecycle_test/runs/run-sklearn.tree.DecisionTreeClassifier"
    (move,) = detail["alias_history"]
    assert (move["alias"], move["action"], move["from"], move["to"]) == (
        "champion",
        "promote",
        None,
        lifecycle["v1"],
    )
    assert move["when"] == detail["champion"]["since"]
    (point,) = detail["drift"]
    assert point["status"] == "drift"
    assert point["drift_share"] >= 0.3
    assert point["threshold"] == 0.3
    assert point["drifted_columns"]
    assert set(point["drifted_columns"]) <= set(point["columns"])
    assert point["dag_run_id"] == "drift-1"
    assert detail["performance"] == []
    assert detail["retrains"][0]["dag_run_id"] == lifecycle["retrain_run"]  # newest first
    assert {r["dag_id"] for r in detail["retrains"]} == {f"{MODEL}_retrain"}
    assert detail["actions"]["trigger_retrain"] == f"/dags/{MODEL}_retrain"
    assert detail["pending_approvals"] == []


def test_unauthorized_and_unknown_models(api, lifecycle) -> None:
    client, auth = api
    assert client.get("/mlops/api/models").status_code == 401
    assert client.get(f"/mlops/api/models/{MODEL}").status_code == 401
    nobody = headers(auth, role=None)  # authenticated, may read no DAG
    assert client.get("/mlops/api/models", headers=nobody).json()["models"] == []
    forbidden = client.get(f"/mlops/api/models/{MODEL}", headers=nobody)
    unknown = client.get("/mlops/api/models/no-such-model", headers=headers(auth))
    assert forbidden.status_code == unknown.status_code == 404
    assert forbidden.json() == unknown.json()
    assert unknown.headers["cache-control"] == "private, no-store"


def test_cache_is_reused_until_an_alias_moves_or_a_check_is_recorded(api, lifecycle) -> None:
    client, auth = api
    url = f"/mlops/api/models/{MODEL}"
    models_api.reset_catalog()  # an empty cache: the first call loads
    with mock.patch.object(
        ModelCatalogHook, "_load", autospec=True, side_effect=ModelCatalogHook._load
    ) as load:
        first = client.get(url, headers=headers(auth)).json()
        again = client.get(url, headers=headers(auth)).json()
        assert load.call_count == 1
        assert again["versions"] == first["versions"]

        v3 = train_register(
            lifecycle["data"], "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 30}
        )
        assert promote(v3)["decision"] == "promoted"
        moved = client.get(url, headers=headers(auth)).json()
        assert load.call_count == 2
        assert moved["champion"]["version"] == v3
        assert moved["aliases"]["previous_champion"] == lifecycle["v1"]
        assert [h["to"] for h in moved["alias_history"]] == [lifecycle["v1"], v3]

        check_drift(lifecycle["tmp"], lifecycle["data"], 1.0, "drift-2")
        latest = client.get(url, headers=headers(auth)).json()
    assert [p["dag_run_id"] for p in latest["drift"]] == ["drift-1", "drift-2"]
    assert latest["drift"][-1]["status"] == "no_drift"
