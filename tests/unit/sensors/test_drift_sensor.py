"""DriftSensor: argument checks, data versions through DataHook, poke and deferrable paths, DriftTrigger."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, TaskDeferred
from support import context
from support import shifted_frame as frame

from mlops_provider import exceptions
from mlops_provider.core import drift as core_drift
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.drift import DriftCheckHook
from mlops_provider.links.reports import DriftReportLink
from mlops_provider.sensors.drift import DriftSensor
from mlops_provider.triggers.drift import DriftTrigger


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: Path) -> Path:
    # mlflow_store: every completed check is recorded in MLflow (a temporary store here)
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    folder = tmp_path / "data"
    folder.mkdir()
    frame(0.0, 1).to_csv(folder / "ref.csv", index=False)
    return folder


def sensor(folder: Path, **kwargs) -> DriftSensor:
    arguments = {
        "task_id": "wait",
        "model_name": "m",
        "current_uri": "batch.csv",
        "reference_uri": "ref.csv",
        "columns": ["x", "y", "c"],
        "base_dir": str(folder),
        "data_conn_id": "aws_default",
        "poke_interval": 5,
        "timeout": 60,
        **kwargs,
    }
    return DriftSensor(**arguments)


def arrive(folder: Path, shift: float, seed: int) -> None:
    frame(shift, seed).to_csv(folder / "batch.csv", index=False)


def test_defaults_are_the_ones_declared_in_core():
    params = inspect.signature(DriftSensor.__init__).parameters
    assert params["drift_share"].default == core_drift.DEFAULT_DRIFT_SHARE
    assert params["min_rows"].default == core_drift.DEFAULT_MIN_ROWS
    assert params["numeric_method"].default == core_drift.DEFAULT_NUMERIC_METHOD
    assert params["categorical_method"].default == core_drift.DEFAULT_CATEGORICAL_METHOD
    assert params["report_sample_rows"].default == core_drift.DEFAULT_REPORT_SAMPLE_ROWS


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"model_name": ""}, "model_name"),
        ({"drift_share": 2}, "drift_share"),
        ({"min_rows": -1}, "min_rows"),
        ({"numeric_method": "psi"}, "numeric_method"),
        ({"categorical_method": "ks"}, "categorical_method"),
        (
            {
                "threshold": {"both": 0.1},
                "numeric_method": "wasserstein",
                "categorical_method": "jensenshannon",
            },
            "threshold keys",
        ),
        ({"threshold": 0.1}, "threshold needs pinned methods"),
        ({"report_sample_rows": "many"}, "report_sample_rows"),
    ],
)
def test_bad_arguments_fail_before_any_wait(data: Path, deferrable: bool, kwargs, argument):
    task = sensor(data, deferrable=deferrable, **kwargs)
    with pytest.raises(AirflowFailException, match=argument):
        task.execute(context(task_id="wait"))


def test_the_data_version_comes_from_the_data_hook(data: Path):
    task = sensor(data)
    assert task._signature() is None  # nothing at batch.csv yet
    arrive(data, 0.0, 1)
    assert task._signature() == DataHook(base_dir=str(data)).signature("batch.csv")
    assert task._signature() == DataHook().signature(str(data / "batch.csv"))
    assert task._signature() is not None


def test_an_unreachable_store_is_retried_not_failed(data: Path, monkeypatch: pytest.MonkeyPatch):
    def unreachable(self, uri):  # fault injection: object storage times out
        raise exceptions.DataUnavailableError(f"{uri}: cannot list (TimeoutError)")

    monkeypatch.setattr(DataHook, "signature", unreachable)
    with pytest.raises(exceptions.DataUnavailableError, match="cannot list") as raised:
        sensor(data).poke(context(task_id="wait"))
    assert not isinstance(raised.value, AirflowFailException)


def test_poke_checks_each_data_version_once(data: Path, monkeypatch: pytest.MonkeyPatch):
    task = sensor(data)
    ctx = context(task_id="wait")
    assert task.poke(ctx) is False  # no data yet
    arrive(data, 0.0, 1)  # the reference again: no drift
    assert task.poke(ctx) is False
    assert task._checked_signature == task._signature()
    assert DriftReportLink.key in ctx["ti"].pushed

    def checked_again(self, *args, **kwargs):  # fault injection: a second check of the same data fails
        raise AssertionError("the same data was checked twice")

    with monkeypatch.context() as patch:
        patch.setattr(DriftCheckHook, "run", checked_again)
        assert task.poke(ctx) is False
    arrive(data, 2.0, 2)  # new data, drifted
    done = task.poke(ctx)
    assert isinstance(done, PokeReturnValue)
    assert done.is_done
    assert done.xcom_value["status"] == "drift"
    assert done.xcom_value["current_uri"] == str(data / "batch.csv")


def test_deferrable_waits_in_a_trigger_that_round_trips(data: Path):
    task = sensor(data, deferrable=True)
    started = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context(task_id="wait"))
    trigger = deferred.value.trigger
    assert isinstance(trigger, DriftTrigger)
    assert trigger.current_uri == str(data / "batch.csv")  # resolved against base_dir
    assert trigger.data_conn_id == "aws_default"
    assert trigger.poke_interval == 5.0
    assert trigger.last_signature is None
    assert started + 60 <= trigger.deadline <= time.time() + 60
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.kwargs == {"deadline": trigger.deadline}
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_provider.triggers.drift.DriftTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_deferrable_checks_data_already_there_then_waits_for_different_data(data: Path):
    arrive(data, 0.0, 1)
    task = sensor(data, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context(task_id="wait"))
    assert deferred.value.trigger.last_signature == task._signature()


def test_execute_complete_outcomes(data: Path):
    task = sensor(data, deferrable=True)
    ctx = context(task_id="wait")
    deadline = time.time() + 60
    with pytest.raises(AirflowSensorTimeout, match="no drift confirmed"):
        task.execute_complete(ctx, {"status": "timeout"}, deadline)
    with pytest.raises(AirflowException, match="PermissionError: denied"):
        task.execute_complete(ctx, {"status": "error", "message": "PermissionError: denied"}, deadline)
    with pytest.raises(AirflowException, match="returned no event"):
        task.execute_complete(ctx, None, deadline)
    arrive(data, 0.0, 1)  # no drift: back to waiting, for different data
    with pytest.raises(TaskDeferred) as deferred:
        task.execute_complete(ctx, {"status": "ready", "signature": task._signature()}, deadline)
    assert deferred.value.trigger.last_signature == task._signature()
    assert deferred.value.trigger.deadline == deadline
    arrive(data, 2.0, 2)
    summary = task.execute_complete(ctx, {"status": "ready", "signature": task._signature()}, deadline)
    assert summary["status"] == "drift"
