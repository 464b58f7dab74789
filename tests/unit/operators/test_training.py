"""TrainModelOperator: argument checks in execute(), and a real training run (sklearn, MLflow on
SQLite) with its lineage tags, holdout, run link and retry reuse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.core import lineage
from mlops_provider.exceptions import DataError
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.models import MLflowModelHook
from mlops_provider.operators.training import TrainModelOperator

UI = "http://mlflow.example"
TREE = "sklearn.tree.DecisionTreeClassifier"


def operator(**kwargs) -> TrainModelOperator:
    options = {
        "task_id": "train",
        "model_name": "cancer",
        "data_uri": "cancer.csv",
        "target": "target",
        "estimator": TREE,
        "estimator_params": {"max_depth": 2},
    }
    options.update(kwargs)
    return TrainModelOperator(**options)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("training")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp, ui_url=UI))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        ctx = context("train", run_id="scheduled__2026-12-01")
        op = operator(base_dir=str(tmp), validation_result={"status": "passed"}, config_hash="sha256:abc")
        result = op.execute(ctx)
        yield SimpleNamespace(tmp=tmp, data=data, ctx=ctx, result=result)


def run_tags(run_id: str) -> dict[str, str]:
    return MLflowModelHook().get_run(run_id).data.tags


def test_constructing_with_nonsense_does_not_raise():
    operator(model_name="", validation_result="sideways", test_size="lots", estimator="no.such.Thing")


@pytest.mark.parametrize("model_name", ["", "   ", None])
def test_empty_model_name_fails_naming_it(mlflow_store, tmp_path, model_name):
    with pytest.raises(AirflowFailException, match="model_name"):
        operator(model_name=model_name, base_dir=str(tmp_path)).execute(context())


@pytest.mark.parametrize("value", ["sideways", {"rows": 3}, "{'status': 'meh'}"])
def test_bad_validation_result_fails_naming_it_before_any_run(mlflow_store, tmp_path, value):
    cancer_csv(tmp_path)
    with pytest.raises(AirflowFailException, match="validation_result"):
        operator(validation_result=value, base_dir=str(tmp_path)).execute(context())
    with MLflowModelHook().session() as client:
        assert client.get_experiment_by_name("cancer") is None


def test_missing_data_fails_naming_the_path(mlflow_store, tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "missing.csv")):
        operator(data_uri="missing.csv", base_dir=str(tmp_path)).execute(context())


def test_unknown_target_fails_naming_it(mlflow_store, tmp_path):
    cancer_csv(tmp_path)
    with pytest.raises(AirflowFailException, match="no_such_column"):
        operator(target="no_such_column", base_dir=str(tmp_path)).execute(context())


def test_returns_what_downstream_tasks_need(trained):
    result = trained.result
    assert result["model_uri"] == f"runs:/{result['run_id']}/model"
    assert result["training_data_uri"] == str(trained.data)
    assert result["n_train"] + result["n_holdout"] == 569
    assert result["holdout_uri"].endswith("holdout/holdout.parquet")
    assert result["task_type"] == "classification"
    assert result["trigger"]["cause"] == "manual"


def test_training_writes_lineage_tags(trained):
    tags = run_tags(trained.result["run_id"])
    frame = pd.read_csv(trained.data)
    assert tags[lineage.TRAINING_DATA_URI] == str(trained.data)
    assert tags[lineage.TRAINING_DATA_FINGERPRINT] == DataHook.fingerprint(frame)
    assert tags[lineage.TRAINING_DATA_FINGERPRINT] == trained.result["training_data_fingerprint"]
    assert tags[lineage.TRAINING_DATA_ROWS] == "569"
    assert json.loads(tags[lineage.FEATURES]) == [c for c in frame.columns if c != "target"]
    assert tags[lineage.TARGET] == "target"
    assert tags[lineage.TASK_TYPE] == "classification"
    assert tags[lineage.VALIDATION_RESULT] == "passed"
    assert tags[lineage.CONFIG_HASH] == "sha256:abc"
    assert tags[lineage.CODE_VERSION]
    assert (tags[lineage.DAG_ID], tags[lineage.RUN_ID], tags[lineage.TASK_ID], tags[lineage.TRY_NUMBER]) == (
        "lifecycle_test",
        "scheduled__2026-12-01",
        "train",
        "1",
    )
    assert tags["mlops.complete"] == "true"
    assert tags[lineage.TRIGGER_CAUSE] == "manual"


def test_training_persists_the_run_link(trained):
    result = trained.result
    expected = f"{UI}/#/experiments/{result['experiment_id']}/runs/{result['run_id']}"
    assert trained.ctx["ti"].pushed["mlflow_run_url"] == expected


def test_training_logs_holdout_metrics_and_a_loadable_model(trained):
    hook = MLflowModelHook()
    holdout = hook.load_holdout(trained.result["run_id"])
    assert len(holdout) == trained.result["n_holdout"]
    run = hook.get_run(trained.result["run_id"])
    assert run.info.status == "FINISHED"
    assert 0.5 < run.data.metrics["train_f1_macro"] <= 1.0
    assert run.data.params["estimator"] == TREE
    model = hook.load_model(trained.result["model_uri"])
    predictions = model.predict(holdout.drop(columns=["target"]))
    assert set(predictions) <= {"malignant", "benign"}


def test_a_retry_reuses_the_finished_run(trained):
    ctx = context("train", run_id="scheduled__2026-12-01", try_number=2)
    op = operator(base_dir=str(trained.tmp), validation_result={"status": "passed"}, config_hash="sha256:abc")
    again = op.execute(ctx)
    assert again["run_id"] == trained.result["run_id"]


def test_other_params_make_a_new_run_with_chosen_features(trained):
    features = ["mean radius", "mean texture", "worst area"]
    op = operator(base_dir=str(trained.tmp), features=features, estimator_params={"max_depth": 1})
    other = op.execute(context("train", run_id="scheduled__2026-12-01"))
    assert other["run_id"] != trained.result["run_id"]
    assert json.loads(run_tags(other["run_id"])[lineage.FEATURES]) == features
    assert run_tags(other["run_id"])[lineage.VALIDATION_RESULT] == "not_run"
