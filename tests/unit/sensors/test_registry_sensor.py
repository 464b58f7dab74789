"""ModelAliasSensor on a real MLflow store (SQLite): it fires once the alias moves away from its
baseline, defers with the right trigger, and refuses a missing or failed trigger event."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred
from support import context, registered_versions

from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.sensors.registry import ModelAliasSensor
from mlops_provider.triggers.registry import ModelAliasTrigger


@pytest.fixture
def model(mlflow_store: Path, tmp_path: Path) -> str:
    """A registered model with versions 1 and 2 (plain versions: the sensor reads aliases only)."""
    return registered_versions(tmp_path)


def set_alias(name: str, version: str, alias: str = "champion") -> None:
    with MLflowRegistryHook().session() as client:
        client.set_registered_model_alias(name, alias, version)


def sensor(name: str, **kwargs) -> ModelAliasSensor:
    return ModelAliasSensor(task_id="wait", model_name=name, poke_interval=0.01, timeout=5, **kwargs)


def test_poke_is_true_once_the_alias_moves(model):
    set_alias(model, "1")
    waiting = sensor(model, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(context("wait"))  # baseline: version 1, the alias has not moved yet
    assert isinstance(deferred.value.trigger, ModelAliasTrigger)
    assert deferred.value.trigger.from_version == "1"
    assert deferred.value.method_name == "execute_complete"
    assert waiting.poke(context("wait")) is False
    set_alias(model, "2")
    assert waiting.poke(context("wait")) is True


def test_poke_waits_for_a_missing_alias_to_appear(model):
    waiting = sensor(model, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(context("wait"))
    assert deferred.value.trigger.from_version is None
    assert waiting.poke(context("wait")) is False
    set_alias(model, "1")
    assert waiting.poke(context("wait")) is True


def test_execute_returns_at_once_when_the_alias_already_moved(model):
    set_alias(model, "2")
    for deferrable in (False, True):
        result = sensor(model, from_version=1, deferrable=deferrable).execute(context("wait"))
        assert result == {"model_name": model, "alias": "champion", "version": "2", "from_version": "1"}


def test_a_non_numeric_from_version_means_the_version_at_start(model):
    set_alias(model, "2")
    with pytest.raises(TaskDeferred) as deferred:
        sensor(model, from_version="None", deferrable=True).execute(context("wait"))
    assert deferred.value.trigger.from_version == "2"


def test_execute_complete_accepts_a_success_event():
    event = {"status": "success", "model_name": "m", "alias": "champion", "version": 3, "from_version": "2"}
    result = sensor("m").execute_complete(context("wait"), event)
    assert result == {"model_name": "m", "alias": "champion", "version": "3", "from_version": "2"}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (None, "without an event"),
        ({}, "without an event"),
        ({"status": "error", "message": "ConnectionResetError: reset"}, "ConnectionResetError: reset"),
        ({"status": "timeout"}, "failed"),
    ],
)
def test_execute_complete_rejects_a_missing_or_failed_event(event, message):
    with pytest.raises(AirflowException, match=message):
        sensor("m").execute_complete(context("wait"), event)
