"""The Airflow path: train -> evaluate -> register -> promote -> score in a real DAG run (dag.test()).

dag.test() in Airflow 3.3 syncs the "dags-folder" bundle (``airflow.settings.DAGS_FOLDER``, read once
at import) to the metadata DB and finds the DAG there: a DAG defined only inside a test module is not
found. The fixture writes the DAG file into a private folder under tmp_path and points both
``AIRFLOW__CORE__DAGS_FOLDER`` and ``airflow.settings.DAGS_FOLDER`` at it; the test imports that file
and calls ``dag.test()`` on its DAG.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from palmerpenguins import load_penguins

DAG_FILE = """
from __future__ import annotations

import datetime

from airflow.sdk import DAG

from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator
from mlops_provider.operators.scoring import BatchScoreOperator
from mlops_provider.operators.training import TrainModelOperator

with DAG(dag_id="lifecycle_penguins", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    train = TrainModelOperator(
        task_id="train",
        model_name="penguins",
        data_uri="penguins.csv",
        base_dir={base_dir!r},
        target="species",
        estimator="sklearn.ensemble.RandomForestClassifier",
        estimator_params={{"n_estimators": 25}},
        config_hash="sha256:test",
        validation_result="passed",
    )
    evaluate = EvaluateModelOperator(
        task_id="evaluate",
        run_id="{{{{ ti.xcom_pull(task_ids='train')['run_id'] }}}}",
        slice_column="island",
    )
    register = RegisterModelOperator(
        task_id="register",
        model_name="penguins",
        run_id="{{{{ ti.xcom_pull(task_ids='train')['run_id'] }}}}",
    )
    promote = PromoteModelOperator(
        task_id="promote",
        model_name="penguins",
        version="{{{{ ti.xcom_pull(task_ids='register')['version'] }}}}",
        task_type="classification",
        thresholds={{"f1_macro": {{"min": 0.8}}}},
        vs_champion={{"f1_macro": {{"min_delta": 0.0}}}},
        slices={{"column": "island", "max_gap": {{"accuracy": 0.5}}}},
    )
    score = BatchScoreOperator(
        task_id="score",
        model_name="penguins",
        data_uri="penguins.csv",
        output_uri="out/scores.csv",
        base_dir={base_dir!r},
        id_columns=["island"],
        chunk_size=100,
    )
    train >> evaluate >> register >> promote >> score
"""


@pytest.fixture
def dags_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Path:
    import airflow.settings

    folder = tmp_path / "dags"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(folder))
    return folder


def test_train_evaluate_register_promote_score_in_a_dag_run(
    dags_folder: Path, mlflow_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MLOPS_MLFLOW_UI_URL", "http://mlflow.test")  # links need an MLflow UI
    base = tmp_path / "data"
    base.mkdir()
    load_penguins().to_csv(
        base / "penguins.csv", index=False
    )  # NaNs and strings: a ColumnTransformer is built
    dag_file = dags_folder / "lifecycle_penguins.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE).format(base_dir=str(base)))
    spec = importlib.util.spec_from_file_location("lifecycle_penguins", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    run = module.dag.test()

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == dict.fromkeys(["train", "evaluate", "register", "promote", "score"], "success")

    def xcom(task_id: str):
        return run.get_task_instance(task_id).xcom_pull(task_ids=task_id)

    trained = xcom("train")
    assert trained["n_train"] + trained["n_holdout"] == 344
    assert trained["training_data_uri"] == str(base / "penguins.csv")
    evaluation = xcom("evaluate")
    assert set(evaluation["slices"]) == {"Biscoe", "Dream", "Torgersen"}
    assert evaluation["metrics"]["f1_macro"] > 0.8
    registered = xcom("register")
    assert registered == {
        "model_name": "penguins",
        "version": "1",
        "run_id": trained["run_id"],
        "created": True,
    }
    promoted = xcom("promote")
    assert promoted["decision"] == "promoted"
    assert promoted["challenger_metrics_source"] == "evaluation"
    assert {g["gate"] for g in promoted["gates"]} == {"threshold_min", "slice_gap"}
    links = run.get_task_instance("promote").xcom_pull(task_ids="promote", key="mlflow_model_version_url")
    assert links == "http://mlflow.test/#/models/penguins/versions/1"
    assert xcom("score")["version"] == "1"
    scores = pd.read_csv(base / "out" / "scores.csv")
    assert len(scores) == 344
    assert set(scores.columns) == {
        "island",
        "row",
        "prediction",
        "model_version",
        "alias",
        "scored_at",
        "scoring_date",
    }

    from mlops_provider.core import lineage
    from mlops_provider.hooks.mlflow import MLflowHook

    with MLflowHook().session() as client:
        tags = client.get_model_version("penguins", "1").tags
    assert tags[lineage.DAG_ID] == "lifecycle_penguins"
    assert tags[lineage.RUN_ID] == run.run_id
    assert tags[lineage.TASK_ID] == "train"
    assert tags[lineage.TRY_NUMBER] == "1"
    assert tags[lineage.CONFIG_HASH] == "sha256:test"
    assert tags[lineage.VALIDATION_RESULT] == "passed"
    assert tags["mlops.gate.decision"] == "promoted"
