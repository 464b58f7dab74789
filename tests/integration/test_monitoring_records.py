"""What the Models page reads, written by the real operators into a real MLflow store (SQLite).

* one run per drift check in ``<model>-monitoring``: a retry of the task instance updates it, a later
  DAG run adds one, concurrent first tries leave one;
* the registered model's summary tags: ``mlops.last_check.drift``, ``mlops.last_decision`` (promoted,
  refused, rolled back), ``mlops.retrain_dag`` and a ``mlops.revision`` that changes on every write;
* the sensor records only its final outcome; a failed record is retried and emits no Asset event.
"""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout
from support import cancer_csv, context, import_dag_file, train
from support import shifted_frame as frame

from mlops_provider.assets import drift_asset
from mlops_provider.core import lineage
from mlops_provider.core import monitoring as m
from mlops_provider.exceptions import MLflowUnavailableError
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.monitoring import MonitoringHook
from mlops_provider.operators.drift import DriftCheckOperator
from mlops_provider.operators.registry import (
    PromoteModelOperator,
    RegisterModelOperator,
    RollbackModelOperator,
)
from mlops_provider.sensors.drift import DriftSensor

MODEL = "cancer"


@pytest.fixture
def data(tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    folder = tmp_path / "data"
    folder.mkdir()
    frame(0.0, 1).to_csv(folder / "ref.csv", index=False)
    frame(2.0, 2).to_csv(folder / "drifted.csv", index=False)
    frame(0.0, 3).to_csv(folder / "same.csv", index=False)
    return folder


def drift_context(task_id: str = "check", run_id: str = "manual__1") -> dict[str, Any]:
    ctx = context(task_id=task_id, run_id=run_id)
    ctx["outlet_events"] = defaultdict(SimpleNamespace)
    return ctx


def check(folder: Path, model: str = "weather", **kwargs: Any) -> DriftCheckOperator:
    arguments = {
        "task_id": "check",
        "model_name": model,
        "current_uri": "drifted.csv",
        "reference_uri": "ref.csv",
        "columns": ["x", "y", "c"],
        "base_dir": str(folder),
        **kwargs,
    }
    return DriftCheckOperator(**arguments)


def monitoring_runs(model: str) -> list[Any]:
    with MLflowHook().session() as client:
        experiment = client.get_experiment_by_name(m.monitoring_experiment(model))
        if experiment is None:
            return []
        return list(client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"]))


def model_tags(model: str) -> dict[str, str]:
    with MLflowHook().session() as client:
        return dict(client.get_registered_model(model).tags)


def registered(model: str) -> bool:
    with MLflowHook().session() as client:
        return bool(client.search_registered_models(f"name = '{model}'"))


def test_a_retried_check_updates_its_run_and_a_later_dag_run_adds_one(data: Path):
    first = check(data).execute(drift_context())
    again = check(data, current_uri="same.csv").execute(drift_context())  # a retry: the data was fixed
    assert first["monitoring_run_id"] == again["monitoring_run_id"]
    (run,) = monitoring_runs("weather")
    assert run.info.run_id == first["monitoring_run_id"]
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags[m.STATUS_TAG] == "no_drift"  # the retry's outcome
    assert tags[m.CHECK_KEY_TAG] == m.check_key("lifecycle_test", "manual__1", "check")
    assert (tags[m.MODEL_TAG], tags[m.CHECK_TAG]) == ("weather", "drift")
    assert (tags[lineage.DAG_ID], tags[lineage.RUN_ID], tags[lineage.TASK_ID]) == (
        "lifecycle_test",
        "manual__1",
        "check",
    )
    assert tags[m.REPORT_URI_TAG] == again["report_uri"]
    assert m.CHAMPION_VERSION_TAG not in tags  # no champion: an explicit reference
    assert set(json.loads(tags[m.DRIFT_COLUMNS_TAG])) == {"x", "y", "c"}
    metrics = run.data.metrics
    assert metrics["drift_share"] == again["drift_share"]
    assert metrics["drift_threshold"] == again["threshold_share"]
    assert (metrics["columns"], metrics["rows_current"], metrics["rows_reference"]) == (3, 400, 400)
    with MLflowHook().session() as client:
        experiment = client.get_experiment_by_name("weather-monitoring")
        assert experiment.tags[m.MODEL_TAG] == "weather"
        assert experiment.tags[m.KIND_TAG] == "monitoring"
    later = check(data).execute(drift_context(run_id="scheduled__2"))
    runs = monitoring_runs("weather")
    assert [r.info.run_id for r in runs] == [first["monitoring_run_id"], later["monitoring_run_id"]]
    assert runs[1].data.tags[m.STATUS_TAG] == "drift"
    assert not registered("weather")  # a check before any registration only records its run


def test_concurrent_first_tries_leave_the_oldest_run(data: Path):
    """Two tries that both created a run (their searches ran before either create) keep the oldest."""
    hook = MonitoringHook()
    key = m.check_key("lifecycle_test", "manual__1", "check")
    experiment_id = hook.monitoring_experiment_id("weather")
    with hook.session() as client:
        older = client.create_run(experiment_id, start_time=1_000, tags={m.CHECK_KEY_TAG: key}).info.run_id
        newer = client.create_run(experiment_id, start_time=2_000, tags={m.CHECK_KEY_TAG: key}).info.run_id
    summary = check(data).execute(drift_context())
    assert summary["monitoring_run_id"] == older
    (run,) = monitoring_runs("weather")
    assert run.info.run_id == older
    assert run.data.tags[m.STATUS_TAG] == "drift"
    with hook.session() as client:
        assert client.get_run(newer).info.lifecycle_stage == "deleted"

    # and a try whose search missed the other's run creates one, then finds both and deletes its own
    real, calls = MonitoringHook._runs, []

    def stale_first_search(client: Any, experiment_id: str, key: str) -> list[Any]:
        calls.append(1)
        return [] if len(calls) == 1 else real(client, experiment_id, key)

    with mock.patch.object(MonitoringHook, "_runs", staticmethod(stale_first_search)):
        raced = check(data).execute(drift_context())
    assert raced["monitoring_run_id"] == older
    assert [r.info.run_id for r in monitoring_runs("weather")] == [older]


def test_a_failed_record_is_retried_and_emits_no_second_event(data: Path):
    from mlflow import MlflowClient

    task = check(data)
    asset = drift_asset("weather")
    ctx = drift_context()
    with (
        mock.patch.object(MlflowClient, "log_batch", side_effect=ConnectionResetError(104, "reset")),
        pytest.raises(MLflowUnavailableError, match="recording the drift check") as raised,
    ):
        task.execute(ctx)
    assert not isinstance(raised.value, AirflowFailException)  # Airflow retries it
    assert asset not in task.outlets  # a failed try holds no outlet: no event
    assert not ctx["outlet_events"]
    retry_ctx = drift_context()
    summary = check(data).execute(retry_ctx)
    assert summary["status"] == "drift"
    assert len(retry_ctx["outlet_events"]) == 1
    assert [r.info.run_id for r in monitoring_runs("weather")] == [summary["monitoring_run_id"]]


def test_a_skipped_check_is_recorded(data: Path):
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="nothing to compare with"):
        check(data, reference_uri=None, columns=None).execute(drift_context())
    (run,) = monitoring_runs("weather")
    assert run.data.tags[m.STATUS_TAG] == "skipped"
    assert "nothing to compare with" in run.data.tags[m.REASON_TAG]
    assert run.data.metrics == {"drift_threshold": 0.5}


def test_the_sensor_records_only_its_final_outcome(data: Path):
    def sensor(**kwargs: Any) -> DriftSensor:
        arguments = {"task_id": "wait", "model_name": "weather", "current_uri": "batch.csv"}
        arguments |= {"reference_uri": "ref.csv", "columns": ["x", "y", "c"], "base_dir": str(data)}
        return DriftSensor(**arguments, poke_interval=5, timeout=60, **kwargs)

    task, ctx = sensor(), context(task_id="wait")
    frame(0.0, 4).to_csv(data / "batch.csv", index=False)
    assert task.poke(ctx) is False  # checked, no drift: not recorded yet
    assert monitoring_runs("weather") == []
    frame(2.0, 5).to_csv(data / "batch.csv", index=False)
    fired = task.poke(ctx)
    (run,) = monitoring_runs("weather")
    assert fired.xcom_value["monitoring_run_id"] == run.info.run_id
    assert run.data.tags[m.STATUS_TAG] == "drift"

    # deferrable: a check without drift travels with the deferral and is recorded at the timeout
    frame(0.0, 6).to_csv(data / "batch.csv", index=False)
    waiting = sensor(deferrable=True)
    timeout_ctx = context(task_id="wait_deferred")
    from airflow.sdk.exceptions import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(timeout_ctx)
    carried = json.loads(json.dumps(deferred.value.kwargs))  # what the metadata DB keeps
    assert len(monitoring_runs("weather")) == 1
    with pytest.raises(AirflowSensorTimeout):
        sensor(deferrable=True).execute_complete(timeout_ctx, {"status": "timeout"}, **carried)
    runs = monitoring_runs("weather")
    assert len(runs) == 2
    assert runs[1].data.tags[m.STATUS_TAG] == "no_drift"
    assert runs[1].data.tags[lineage.TASK_ID] == "wait_deferred"


# -- the registered model's summary tags ------------------------------------------------------------


def train_run(data: Path, estimator: str, params: dict, run_id: str) -> str:
    return str(train(MODEL, data, estimator, params, run_id)["run_id"])


def register(run_id: str) -> str:
    op = RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run_id)
    return op.execute(context("register"))["version"]


def promote(version: str) -> None:
    op = PromoteModelOperator(
        task_id="promote",
        model_name=MODEL,
        version=version,
        thresholds={"f1_macro": {"min": 0.5}},
        vs_champion={"f1_macro": {"min_delta": 0.0}},
    )
    op.execute(context("promote", run_id="manual__promote"))


def last_decision() -> dict[str, Any]:
    return json.loads(model_tags(MODEL)[m.LAST_DECISION_TAG])


def test_registry_writes_keep_the_model_summary_tags(tmp_path: Path, mlflow_store: Path):
    cancer = cancer_csv(tmp_path)
    weak = train_run(cancer, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1}, "run-weak")
    v1 = register(weak)
    tags = model_tags(MODEL)
    assert tags[m.RETRAIN_DAG_TAG] == "lifecycle_test"  # the registering (training) DAG
    revisions = [tags[m.REVISION_TAG]]
    assert m.LAST_DECISION_TAG not in tags

    promote(v1)
    decision = last_decision()
    assert (decision["version"], decision["decision"], decision["first_failing_gate"]) == (
        v1,
        "promoted",
        None,
    )
    assert (decision["dag_id"], decision["dag_run"]) == ("lifecycle_test", "manual__promote")
    assert decision["decided_by"] == "gate (automatic)"
    revisions.append(model_tags(MODEL)[m.REVISION_TAG])

    dummy = train_run(cancer, "sklearn.dummy.DummyClassifier", {"strategy": "most_frequent"}, "run-dummy")
    v2 = register(dummy)
    revisions.append(model_tags(MODEL)[m.REVISION_TAG])
    with pytest.raises(AirflowFailException, match="refused"):
        promote(v2)
    decision = last_decision()
    assert (decision["version"], decision["decision"]) == (v2, "refused")
    assert decision["first_failing_gate"]["gate"] == "threshold_min"
    assert decision["first_failing_gate"]["metric"] == "f1_macro"
    assert decision["first_failing_gate"]["threshold"] == 0.5
    assert decision["reason"].startswith("gate(s) failed")
    assert len(decision["reason"]) <= m.DECISION_REASON_MAX
    revisions.append(model_tags(MODEL)[m.REVISION_TAG])

    # the champion re-promoted is "skipped": it keeps the refused decision as the last one
    promote(v1)
    assert last_decision()["decision"] == "refused"

    # a drift check of the champion's own data: recorded, summarised on the model
    summary = DriftCheckOperator(
        task_id="drift", model_name=MODEL, current_uri=str(cancer), emit_asset=False
    ).execute(context("drift", run_id="scheduled__drift"))
    assert summary["status"] == "no_drift"
    assert summary["champion_version"] == v1
    last_check = json.loads(model_tags(MODEL)[m.LAST_CHECK_TAG.format(check="drift")])
    assert last_check["status"] == "no_drift"
    assert last_check["mlflow_run_id"] == summary["monitoring_run_id"]
    assert last_check["dag_run_id"] == "scheduled__drift"
    assert last_check["champion_version"] == v1
    assert last_check["threshold"] == summary["threshold_share"]
    (run,) = monitoring_runs(MODEL)
    assert run.data.tags[m.CHAMPION_VERSION_TAG] == v1
    revisions.append(model_tags(MODEL)[m.REVISION_TAG])

    # a manual move to v2 then a rollback: the rollback is the last decision
    from mlops_provider.hooks.registry import MLflowRegistryHook

    MLflowRegistryHook().move_alias(
        model_name=MODEL,
        alias="champion",
        expected_old=v1,
        new_version=v2,
        why="test",
        who="tester",
        action="promote",
        lock_owner="tester",
    )
    revisions.append(model_tags(MODEL)[m.REVISION_TAG])
    RollbackModelOperator(task_id="rollback", model_name=MODEL, reason="bad <outputs>").execute(
        context("rollback", run_id="manual__rollback")
    )
    decision = last_decision()
    assert (decision["version"], decision["decision"], decision["reason"]) == (
        v1,
        "rolled_back",
        "bad <outputs>",
    )
    assert (decision["dag_id"], decision["dag_run"]) == ("lifecycle_test", "manual__rollback")
    revisions.append(model_tags(MODEL)[m.REVISION_TAG])
    assert len(set(revisions)) == len(revisions)  # every write the page shows changed the revision
    assert [int(r) for r in revisions] == sorted(int(r) for r in revisions)
    assert model_tags(MODEL)[m.RETRAIN_DAG_TAG] == "lifecycle_test"


def test_retrain_dag_is_set_only_when_missing(tmp_path: Path, mlflow_store: Path):
    with MLflowHook().session() as client:
        client.create_registered_model(MODEL, tags={m.RETRAIN_DAG_TAG: "cancer_retrain"})
    cancer = cancer_csv(tmp_path)
    register(train_run(cancer, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1}, "run-a"))
    assert model_tags(MODEL)[m.RETRAIN_DAG_TAG] == "cancer_retrain"


DAG_FILE = """
from __future__ import annotations

import datetime

from airflow.sdk import DAG

from mlops_provider.operators.drift import DriftCheckOperator

with DAG(dag_id="monitoring_records", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    DriftCheckOperator(
        task_id="check",
        model_name="weather",
        reference_uri="ref.csv",
        current_uri="drifted.csv",
        columns=["x", "y", "c"],
        base_dir={base_dir!r},
    )
"""


@pytest.mark.slow
def test_under_airflow_the_run_records_the_dag_run_and_its_logical_date(data: Path, dags_folder: Path):
    import pendulum

    dag_file = dags_folder / "monitoring_records.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE).format(base_dir=str(data)))
    dag = import_dag_file(dag_file)["monitoring_records"]
    logical_date = pendulum.datetime(2026, 3, 4, 5, 6, 7, tz="UTC")
    dag_run = dag.test(logical_date=logical_date)
    ti = dag_run.get_task_instance("check")
    assert ti.state == "success"
    summary = ti.xcom_pull(task_ids="check")
    (run,) = monitoring_runs("weather")
    assert summary["monitoring_run_id"] == run.info.run_id
    tags = run.data.tags
    assert (tags[lineage.DAG_ID], tags[lineage.RUN_ID], tags[lineage.TASK_ID]) == (
        "monitoring_records",
        dag_run.run_id,
        "check",
    )
    assert tags[m.LOGICAL_DATE_TAG] == "2026-03-04T05:06:07Z"
    assert tags[m.STATUS_TAG] == "drift"
