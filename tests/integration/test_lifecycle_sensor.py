"""ModelAliasSensor (poke and deferrable) and ModelAliasTrigger against a real MLflow store."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.sensors.registry import ModelAliasSensor
from mlops_provider.triggers.registry import ModelAliasTrigger


def _versions(name: str, count: int) -> None:
    with MLflowHook().session() as client:
        client.create_registered_model(name)
        for _ in range(count):
            client.create_model_version(name, source="file:///nowhere/model")


def _move(name: str, version: str, alias: str = "champion") -> None:
    with MLflowHook().session() as client:
        client.set_registered_model_alias(name, alias, version)


def _context() -> dict:
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="wait", try_number=1, xcom_push=lambda **kw: None)
    return {"ti": ti, "dag_run": SimpleNamespace(run_id="r")}


def test_trigger_serialises_json_only_and_round_trips():
    trigger = ModelAliasTrigger(
        model_name="m", alias="champion", from_version=3, mlflow_conn_id="mlflow_default"
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_provider.triggers.registry.ModelAliasTrigger"
    assert kwargs["from_version"] == "3"
    rebuilt = ModelAliasTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_trigger_fires_when_the_alias_moves(mlflow_store: Path):
    _versions("watched", 2)
    _move("watched", "1")
    trigger = ModelAliasTrigger(
        model_name="watched",
        alias="champion",
        from_version="1",
        mlflow_conn_id="mlflow_default",
        poll_interval=0.2,
    )
    mover = threading.Timer(1.0, _move, args=("watched", "2"))

    async def first_event():
        return await trigger.run().__anext__()

    started = time.monotonic()
    mover.start()
    event = asyncio.run(asyncio.wait_for(first_event(), timeout=60))
    assert time.monotonic() - started >= 1.0  # it waited for the move
    assert event.payload["status"] == "success"
    assert event.payload["version"] == "2"
    assert event.payload["from_version"] == "1"


def test_trigger_reports_errors_after_retries(mlflow_store: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(*args):  # fault injection: MLflow keeps failing
        raise ConnectionError("refused")

    monkeypatch.setattr("mlops_provider.triggers.registry.read_alias", broken)
    trigger = ModelAliasTrigger(
        model_name="m", alias="a", from_version=None, mlflow_conn_id="x", poll_interval=0.01
    )
    event = asyncio.run(trigger.run().__anext__())
    assert event.payload["status"] == "error"
    assert "refused" in event.payload["message"]


def test_sensor_poke_mode_waits_for_a_move_from_the_first_seen_version(mlflow_store: Path):
    _versions("poked", 2)
    _move("poked", "1")
    sensor = ModelAliasSensor(task_id="wait", model_name="poked", deferrable=False, poke_interval=0.1)
    threading.Timer(0.5, _move, args=("poked", "2")).start()
    result = sensor.execute(_context())
    assert result == {"model_name": "poked", "alias": "champion", "version": "2", "from_version": "1"}


def test_sensor_defers_with_its_baseline_and_completes(mlflow_store: Path):
    _versions("deferred", 1)
    sensor = ModelAliasSensor(task_id="wait", model_name="deferred", deferrable=True, poke_interval=5)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ModelAliasTrigger)
    assert trigger.from_version is None  # no alias yet: any version will do
    assert deferred.value.method_name == "execute_complete"
    done = sensor.execute_complete(
        _context(),
        {
            "status": "success",
            "model_name": "deferred",
            "alias": "champion",
            "version": "1",
            "from_version": None,
        },
    )
    assert done["version"] == "1"
    with pytest.raises(AirflowException, match="without an event"):
        sensor.execute_complete(_context(), None)
    with pytest.raises(AirflowException, match="refused"):
        sensor.execute_complete(_context(), {"status": "error", "message": "refused"})
    # already moved away from an explicit from_version: no deferral at all
    _move("deferred", "1")
    quick = ModelAliasSensor(task_id="wait", model_name="deferred", from_version="7", deferrable=True)
    assert quick.execute(_context())["version"] == "1"
