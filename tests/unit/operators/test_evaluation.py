"""EvaluateModelOperator: argument checks in execute(), and a real evaluation (sklearn, MLflow on SQLite)
that logs holdout metrics, slices, importance and, last, the holdout record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.exceptions import MLflowRequestError
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.models import MLflowModelHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.training import TrainModelOperator

UI = "http://mlflow.example"
CLASSIFICATION = {"accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "log_loss"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("evaluation")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp, ui_url=UI))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        trained = TrainModelOperator(
            task_id="train",
            model_name="evaluated",
            data_uri=str(data),
            target="target",
            estimator="sklearn.tree.DecisionTreeClassifier",
            estimator_params={"max_depth": 2},
        ).execute(context("train"))
        ctx = context("evaluate")
        result = EvaluateModelOperator(
            task_id="evaluate", run_id=trained["run_id"], slice_column="mean radius", importance_max_rows=50
        ).execute(ctx)
        yield SimpleNamespace(tmp=tmp, trained=trained, result=result, ctx=ctx)


def evaluate(run_id: str, **kwargs) -> dict:
    return EvaluateModelOperator(task_id="evaluate", run_id=run_id, **kwargs).execute(context("evaluate"))


def artifact_json(run_id: str, path: str, folder: Path) -> dict:
    with MLflowModelHook().session() as client:
        return json.loads(Path(client.download_artifacts(run_id, path, str(folder))).read_text())


def plain_run() -> str:
    hook = MLflowModelHook()
    with hook.session() as client:
        run_id = client.create_run(hook.ensure_experiment("other")).info.run_id
        client.set_terminated(run_id)
    return run_id


def test_constructing_with_nonsense_does_not_raise():
    EvaluateModelOperator(task_id="e", run_id="", task_type="clustering", primary_metric="vibes")


@pytest.mark.parametrize("run_id", ["", "  ", None])
def test_empty_run_id_fails_naming_it(store, run_id):
    with pytest.raises(AirflowFailException, match="run_id"):
        evaluate(run_id)


def test_unknown_primary_metric_fails_naming_it(store):
    with pytest.raises(AirflowFailException, match="primary_metric 'vibes'"):
        evaluate(store.trained["run_id"], primary_metric="vibes", compute_importance=False)


def test_regression_primary_metric_on_a_classifier_fails(store):
    with pytest.raises(AirflowFailException, match="primary_metric 'rmse'"):
        evaluate(store.trained["run_id"], primary_metric="rmse", compute_importance=False)


def test_task_type_other_than_trained_fails(store):
    with pytest.raises(AirflowFailException, match="task_type 'regression'"):
        evaluate(store.trained["run_id"], task_type="regression", compute_importance=False)


def test_unknown_slice_column_fails_naming_it(store):
    with pytest.raises(AirflowFailException, match="slice_column 'nope'"):
        evaluate(store.trained["run_id"], slice_column="nope", compute_importance=False)


def test_a_run_not_logged_by_training_fails_naming_it(store):
    run_id = plain_run()
    with pytest.raises(MLflowRequestError, match=run_id):
        evaluate(run_id)


def test_evaluation_returns_metrics_and_slices(store):
    result = store.result
    assert result["run_id"] == store.trained["run_id"]
    assert set(result["metrics"]) == CLASSIFICATION
    assert result["primary_metric"] == {"name": "f1_macro", "value": result["metrics"]["f1_macro"]}
    assert result["rows"] == store.trained["n_holdout"]
    assert len(result["slices"]) == 4
    assert result["non_finite"] == []


def test_evaluation_logs_metrics_on_the_run_and_the_run_link(store):
    run = MLflowModelHook().get_run(store.trained["run_id"])
    for name, value in store.result["metrics"].items():
        assert run.data.metrics[f"holdout_{name}"] == pytest.approx(value)
    expected = f"{UI}/#/experiments/{store.trained['experiment_id']}/runs/{store.trained['run_id']}"
    assert store.ctx["ti"].pushed["mlflow_run_url"] == expected


def test_evaluation_writes_the_holdout_record_artifact(store):
    run_id = store.trained["run_id"]
    record, why = MLflowModelHook().read_evaluation_record(run_id)
    assert why == ""
    assert record["model_uri"] == f"runs:/{run_id}/model"
    assert record["holdout_fingerprint"] == DataHook.fingerprint(MLflowModelHook().load_holdout(run_id))
    assert record["target"] == "target"
    assert len(record["features"]) == 30
    assert record["task_type"] == "classification"
    assert record["slice_column"] == "mean radius"
    assert record["metrics"]["f1_macro"] == pytest.approx(store.result["metrics"]["f1_macro"])


def test_evaluation_writes_slices_and_importance(store, tmp_path):
    run_id = store.trained["run_id"]
    slices = artifact_json(run_id, "evaluation/slice_metrics.json", tmp_path)
    assert slices["column"] == "mean radius"
    assert len(slices["slices"]) == 4
    importance = artifact_json(run_id, "evaluation/permutation_importance.json", tmp_path)
    assert importance["scoring_rows_max"] == 50
    assert len(importance["features"]) == 30
