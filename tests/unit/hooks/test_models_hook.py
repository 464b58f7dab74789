"""MLflowModelHook on a real MLflow store (SQLite): runs, lineage, the holdout, the evaluation record,
and the one error translation (secrets scrubbed)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.core import lineage
from mlops_provider.exceptions import MLflowConfigError, MLflowRequestError, MLflowUnavailableError
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.models import HOLDOUT_RECORD_ARTIFACT, MLflowModelHook
from mlops_provider.operators.training import TrainModelOperator

SECRET = "pw-s3cr3t-9f1c"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("models-hook")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        op = TrainModelOperator(
            task_id="train",
            model_name="trained",
            data_uri=str(data),
            target="target",
            estimator="sklearn.tree.DecisionTreeClassifier",
            estimator_params={"max_depth": 2},
        )
        trained = op.execute(context("train"))
        yield SimpleNamespace(data=data, trained=trained, tmp=tmp)


@pytest.fixture
def hook(store: SimpleNamespace) -> MLflowModelHook:
    return MLflowModelHook()


def plain_run(hook: MLflowModelHook, **tags: str) -> str:
    """A finished run that TrainModelOperator did not log (no lineage, no artifacts)."""
    with hook.session() as client:
        experiment = hook.ensure_experiment("not-trained")
        run_id = client.create_run(experiment, tags=tags).info.run_id
        client.set_terminated(run_id)
    return run_id


def mlflow_error(code: str, message: str = "failed") -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException(message, error_code=getattr(databricks_pb2, code))


# -- runs and lineage --
def test_run_lineage_of_a_training_run(hook, store):
    found = hook.run_lineage(store.trained["run_id"])
    assert found.target == "target"
    assert len(found.features) == 30
    assert found.task_type == "classification"
    assert found.complete is True
    assert found.experiment_id == store.trained["experiment_id"]


def test_run_lineage_of_a_foreign_run_fails_naming_it(hook, store):
    run_id = plain_run(hook, **{lineage.TARGET: "target"})
    with pytest.raises(MLflowRequestError, match=f"{run_id}.*TrainModelOperator"):
        hook.run_lineage(run_id)


def test_get_run_unknown_id_is_request_error(hook, store):
    missing = uuid.uuid4().hex
    with pytest.raises(MLflowRequestError, match=f"{missing}.*does not exist"):
        hook.get_run(missing)


def test_runs_of_task_finds_the_training_run(hook, store):
    identity = {"dag_id": "lifecycle_test", "dag_run_id": "manual__1", "task_id": "train"}
    runs = hook.runs_of_task(store.trained["experiment_id"], identity)
    assert [r.info.run_id for r in runs] == [store.trained["run_id"]]
    assert hook.runs_of_task(store.trained["experiment_id"], {**identity, "task_id": "x'y"}) == []


# -- holdout --
def test_load_holdout_of_a_training_run(hook, store):
    holdout = hook.load_holdout(store.trained["run_id"])
    assert len(holdout) == store.trained["n_holdout"]
    assert "target" in holdout.columns


def test_load_holdout_missing_names_the_artifact(hook, store):
    run_id = plain_run(hook)
    with pytest.raises(MLflowRequestError, match=f"{run_id}.*holdout/holdout.parquet"):
        hook.load_holdout(run_id)


@pytest.mark.parametrize(
    "fault", [lambda: mlflow_error("INTERNAL_ERROR", "database is locked"), lambda: ConnectionResetError(104)]
)
def test_load_holdout_transient_fault_is_retried(hook, store, fault):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    with (
        mock.patch.object(LocalArtifactRepository, "download_artifacts", side_effect=fault()),
        pytest.raises(MLflowUnavailableError),
    ):
        hook.load_holdout(store.trained["run_id"])


# -- the evaluation record --
def test_read_evaluation_record_missing_is_none_with_reason(hook, store):
    record, why = hook.read_evaluation_record(store.trained["run_id"])
    assert record is None
    assert HOLDOUT_RECORD_ARTIFACT in why
    assert store.trained["run_id"] in why


def test_read_evaluation_record_round_trip(hook, store):
    run_id = plain_run(hook)
    hook.write_evaluation_record(run_id, {"run_id": run_id, "metrics": {"f1_macro": 0.9}})
    assert hook.read_evaluation_record(run_id) == ({"run_id": run_id, "metrics": {"f1_macro": 0.9}}, "")


def test_read_evaluation_record_corrupt_json_is_none_with_reason(hook, store):
    run_id = plain_run(hook)
    with hook.session() as client:
        client.log_text(run_id, '{"metrics": {"f1_macro": 0.9', HOLDOUT_RECORD_ARTIFACT)
    record, why = hook.read_evaluation_record(run_id)
    assert record is None
    assert "not readable JSON" in why


def test_read_evaluation_record_internal_error_is_unavailable(hook, store):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    run_id = plain_run(hook)
    hook.write_evaluation_record(run_id, {"run_id": run_id, "metrics": {"f1_macro": 0.9}})
    error = mlflow_error("INTERNAL_ERROR", "database is locked")
    with (
        mock.patch.object(LocalArtifactRepository, "download_artifacts", side_effect=error),
        pytest.raises(MLflowUnavailableError, match="database is locked"),
    ):
        hook.read_evaluation_record(run_id)


def test_log_evaluation_logs_prefixed_metrics_and_skips_none(hook, store):
    run_id = plain_run(hook)
    hook.log_evaluation(run_id, {"f1_macro": 0.8, "roc_auc": None}, ["roc_auc"])
    run = hook.get_run(run_id)
    assert run.data.metrics == {"holdout_f1_macro": 0.8}
    assert json.loads(run.data.tags["mlops.non_finite_metrics"]) == ["roc_auc"]


# -- translation of errors --
@pytest.fixture
def secret_conn(store: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The module's store, reached through a connection that has a login and a password."""
    payload = json.loads(mlflow_connection(store.tmp))
    payload.update(login="alice", password=SECRET)
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(payload))
    return store.tmp


TABLE = [
    (lambda: mlflow_error("PERMISSION_DENIED", f"user alice:{SECRET} may not"), MLflowConfigError),
    (lambda: mlflow_error("UNAUTHENTICATED", f"bad password {SECRET}"), MLflowConfigError),
    (lambda: mlflow_error("RESOURCE_DOES_NOT_EXIST", f"no run ({SECRET})"), MLflowRequestError),
    (lambda: mlflow_error("INVALID_PARAMETER_VALUE", f"bad value {SECRET}"), MLflowRequestError),
    (lambda: mlflow_error("BAD_REQUEST", f"bad request {SECRET}"), MLflowRequestError),
    (lambda: mlflow_error("INTERNAL_ERROR", f"locked {SECRET}"), MLflowUnavailableError),
    (lambda: mlflow_error("TEMPORARILY_UNAVAILABLE", f"503 {SECRET}"), MLflowUnavailableError),
    (lambda: ConnectionResetError(104, f"reset {SECRET}"), MLflowUnavailableError),
    (lambda: OSError(f"disk {SECRET}"), MLflowUnavailableError),
]


@pytest.mark.parametrize(("make", "expected"), TABLE)
def test_translate_error_table_scrubs_the_password(secret_conn, make, expected):
    translated = MLflowHook().translate_error(make(), "reading run 42")
    assert type(translated) is expected
    text = str(translated)
    assert SECRET not in text
    assert "***" in text
    assert "reading run 42" in text


@pytest.mark.parametrize(("make", "expected"), TABLE)
def test_errors_from_a_real_call_are_translated_and_scrubbed(secret_conn, store, make, expected):
    from mlflow import MlflowClient

    hook = MLflowModelHook()
    with (
        mock.patch.object(MlflowClient, "set_terminated", side_effect=make()),
        pytest.raises(expected) as raised,
    ):
        hook.end_run(store.trained["run_id"], "FINISHED")
    assert SECRET not in str(raised.value)
    # the original (whose text may hold secrets) is not chained into the task log; its type is named
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert type(make()).__name__ in str(raised.value)


def test_translate_error_strips_credentials_from_the_uri(monkeypatch):
    uri = "http://alice:uri-pw-77@mlflow.example:5000"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": uri}))
    err = ConnectionRefusedError(111, f"cannot connect to {uri}/api/2.0/mlflow/runs/get")
    text = str(MLflowHook().translate_error(err, "reading a run"))
    assert "uri-pw-77" not in text
    assert "mlflow.example:5000" in text


def test_translate_error_never_passes_other_exceptions_through(secret_conn):
    hook = MLflowHook()
    with pytest.raises(KeyError), hook.errors("anything"):
        raise KeyError("a bug stays a bug")
