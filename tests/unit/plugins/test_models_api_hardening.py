"""What a hostile DAG author or registry writer could try against the Models API, without a server:
claiming another team's model with tags, breaking the JSON with a lone surrogate or a bad report URI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_provider.plugins import models_api
from mlops_provider.plugins.models_data import configured_models


@pytest.fixture
def dag_rows(airflow_db: Path):
    """Insert DAGs with tags straight into Airflow's metadata DB; removed afterwards."""
    from airflow.models.dag import DagModel, DagTag
    from airflow.utils.session import create_session

    made: list[str] = []

    def add(dag_id: str, *tags: str) -> None:
        from airflow.models.dagbundle import DagBundleModel

        with create_session() as session:
            if session.get(DagBundleModel, "dags-folder") is None:  # a fresh DB has no bundle yet
                session.add(DagBundleModel(name="dags-folder"))
                session.flush()
            session.add(DagModel(dag_id=dag_id, is_stale=False, bundle_name="dags-folder"))
            session.flush()
            for tag in tags:
                session.add(DagTag(dag_id=dag_id, name=tag))
        made.append(dag_id)

    yield add
    with create_session() as session:
        session.query(DagTag).filter(DagTag.dag_id.in_(made)).delete(synchronize_session=False)
        session.query(DagModel).filter(DagModel.dag_id.in_(made)).delete(synchronize_session=False)


def test_a_dag_claims_a_model_only_under_the_factory_id(dag_rows) -> None:
    dag_rows("secret_retrain", "mlops", "model:secret", "retrain")
    dag_rows("secret_rollback", "mlops", "model:secret", "rollback")
    # another team's DAGs tag themselves as the secret model: they claim nothing
    dag_rows("forecast_retrain", "mlops", "model:forecast", "model:secret", "retrain")
    dag_rows("aaa_evil", "mlops", "model:secret", "drift")
    dag_rows("secret_retrain_copy", "mlops", "model:secret", "retrain")
    models = configured_models()
    assert models["secret"].dags == {"retrain": "secret_retrain", "rollback": "secret_rollback"}
    assert models["forecast"].dags == {"retrain": "forecast_retrain"}
    assert configured_models("secret")["secret"].dags == models["secret"].dags


def test_a_lone_surrogate_is_escaped_not_an_encoding_error() -> None:
    hostile = json.loads('{"reason": "\\ud800 <b>x</b>"}')
    response = models_api.json_response({"models": [hostile]})
    assert response.status_code == 200
    assert json.loads(response.body) == {"models": [hostile]}
    assert response.body.isascii()


@pytest.mark.parametrize("uri", ["http://[x", "s3://[bad/x.html", "\x00", "file:///../../etc/passwd"])
def test_a_report_uri_no_report_can_have_gives_no_link(uri: str) -> None:
    assert models_api.report_link(uri) is None


def test_one_unreadable_model_leaves_the_list_for_everyone(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> dict:
        raise TypeError("a tag no one expected")

    monkeypatch.setattr(models_api, "model_summary", broken)
    row = models_api.safe_summary("<img src=x>", "x_retrain", True, None, {}, 0)
    assert row["name"] == "<img src=x>"
    assert row["problems"] == ["unreadable"]
    assert row["champion"] is None
    assert row["links"]["model_page"] == "/mlops/models/%3Cimg%20src%3Dx%3E"
