"""BatchScoreOperator: argument checks in execute(), skip without a champion, and real scoring with the
champion version (sklearn, MLflow on SQLite) written atomically with the model version."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.scoring import BatchScoreOperator, score_in_chunks
from mlops_provider.operators.training import TrainModelOperator

UI = "http://mlflow.example"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("scoring")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp, ui_url=UI))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        frame = pd.read_csv(data)
        frame.insert(0, "patient_id", [f"p{i}" for i in range(len(frame))])
        frame.drop(columns=["target"]).to_csv(tmp / "batch.csv", index=False)
        run_id = TrainModelOperator(
            task_id="train",
            model_name="scored",
            data_uri=str(data),
            target="target",
            estimator="sklearn.tree.DecisionTreeClassifier",
            estimator_params={"max_depth": 2},
        ).execute(context("train"))["run_id"]
        hook = MLflowRegistryHook()
        hook.register_run("scored", run_id, {})
        hook.move_alias(
            model_name="scored",
            alias="champion",
            expected_old=None,
            new_version="1",
            why="first",
            who="test",
            action="promote",
            lock_owner="test",
        )
        yield SimpleNamespace(tmp=tmp, run_id=run_id, rows=len(frame))


def operator(store: SimpleNamespace, **kwargs) -> BatchScoreOperator:
    options = {
        "task_id": "score",
        "model_name": "scored",
        "data_uri": "batch.csv",
        "output_uri": f"out/{uuid.uuid4().hex[:6]}/predictions.parquet",
        "base_dir": str(store.tmp),
    }
    options.update(kwargs)
    return BatchScoreOperator(**options)


def test_constructing_with_nonsense_does_not_raise():
    BatchScoreOperator(task_id="s", model_name="", data_uri="", output_uri="", chunk_size=-3, id_columns=7)


@pytest.mark.parametrize("chunk_size", [0, -1, "100", 2.5, None])
def test_bad_chunk_size_fails_naming_it(store, chunk_size):
    with pytest.raises(AirflowFailException, match="chunk_size"):
        operator(store, chunk_size=chunk_size).execute(context("score"))


def test_no_champion_skips(store):
    output = "skipped/predictions.parquet"
    with pytest.raises(AirflowSkipException, match="no champion"):
        operator(store, model_name="never-registered", output_uri=output).execute(context("score"))
    with pytest.raises(AirflowSkipException, match="scored@staging"):
        operator(store, alias="staging", output_uri=output).execute(context("score"))
    assert not (store.tmp / "skipped").exists()


def test_scoring_writes_predictions_with_the_model_version(store):
    ctx = context("score")
    op = operator(store, id_columns=["patient_id"], chunk_size=100)
    result = op.execute(ctx)
    assert result["model_name"] == "scored"
    assert result["version"] == "1"
    assert result["rows"] == store.rows
    out = pd.read_parquet(result["output_uri"])
    assert list(out.columns) == ["patient_id", "row", "prediction", "model_version"]
    assert list(out["row"]) == list(range(store.rows))
    assert list(out["patient_id"]) == [f"p{i}" for i in range(store.rows)]
    assert set(out["model_version"]) == {"1"}
    assert set(out["prediction"]) <= {"malignant", "benign"}
    assert os.listdir(os.path.dirname(result["output_uri"])) == ["predictions.parquet"]
    assert ctx["ti"].pushed["mlflow_model_version_url"] == f"{UI}/#/models/scored/versions/1"


def test_chunking_does_not_change_predictions(store):
    small = pd.read_parquet(operator(store, chunk_size=7).execute(context("score"))["output_uri"])
    whole = pd.read_parquet(operator(store, chunk_size=10_000).execute(context("score"))["output_uri"])
    pd.testing.assert_frame_equal(small, whole)


def test_missing_column_fails_naming_it(store):
    with pytest.raises(AirflowFailException, match="'customer_id'"):
        operator(store, id_columns=["customer_id"]).execute(context("score"))


def test_score_in_chunks_of_an_empty_frame():
    empty = score_in_chunks(object(), pd.DataFrame({"x": []}), ["x"], 10, ["id"])
    assert list(empty.columns) == ["id", "row", "prediction"]
    assert empty.empty
