"""ModelAliasTrigger: JSON-only serialisation that rebuilds the same trigger, and its async polling loop
against a real MLflow store (SQLite)."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from pathlib import Path
from unittest import mock

import pytest
from support import registered_versions

from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.triggers import registry as trigger_module
from mlops_provider.triggers.registry import MAX_CONSECUTIVE_ERRORS, ModelAliasTrigger


@pytest.fixture
def model(mlflow_store: Path, tmp_path: Path) -> str:
    """A registered model with versions 1 and 2, champion -> 1."""
    return registered_versions(tmp_path, champion="1")


def trigger(name: str, from_version: str | None, poll_interval: float = 0.02) -> ModelAliasTrigger:
    return ModelAliasTrigger(
        model_name=name,
        alias="champion",
        from_version=from_version,
        mlflow_conn_id="mlflow_default",
        poll_interval=poll_interval,
    )


async def first_event(watcher: ModelAliasTrigger, timeout: float = 30.0):
    events = watcher.run()
    try:
        return await asyncio.wait_for(events.__anext__(), timeout)
    finally:
        await events.aclose()


@pytest.mark.parametrize("from_version", ["3", 3, None])
def test_serialize_round_trips(from_version):
    original = ModelAliasTrigger(
        model_name="cancer",
        alias="champion",
        from_version=from_version,
        mlflow_conn_id="mlflow_prod",
        poll_interval=15,
    )
    classpath, kwargs = original.serialize()
    assert classpath == "mlops_provider.triggers.registry.ModelAliasTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["from_version"] == (None if from_version is None else str(from_version))
    assert kwargs["poll_interval"] == 15.0


def test_fires_when_the_alias_points_at_a_new_version(model):
    polled = threading.Event()
    real_read = trigger_module.read_alias

    def read_and_signal(*args):
        version = real_read(*args)
        polled.set()
        return version

    async def scenario():
        waiting = asyncio.create_task(first_event(trigger(model, "1")))
        assert await asyncio.to_thread(polled.wait, 30)
        assert not waiting.done()  # the alias is still at 1: the trigger keeps polling
        with MLflowRegistryHook().session() as client:
            await asyncio.to_thread(client.set_registered_model_alias, model, "champion", "2")
        return await waiting

    with mock.patch.object(trigger_module, "read_alias", side_effect=read_and_signal):
        event = asyncio.run(scenario())
    assert event.payload["status"] == "success"
    assert (event.payload["version"], event.payload["from_version"]) == ("2", "1")


def test_waits_for_a_missing_alias_to_exist(model):
    with MLflowRegistryHook().session() as client:
        client.delete_registered_model_alias(model, "champion")
    calls = []
    real_read = trigger_module.read_alias

    def read_then_create(*args):
        version = real_read(*args)
        calls.append(version)
        if len(calls) == 2:  # the alias appears after two polls found none
            with MLflowRegistryHook().session() as client:
                client.set_registered_model_alias(model, "champion", "1")
        return version

    with mock.patch.object(trigger_module, "read_alias", side_effect=read_then_create):
        event = asyncio.run(first_event(trigger(model, None)))
    assert calls[:2] == [None, None]
    assert (event.payload["status"], event.payload["version"]) == ("success", "1")


def test_transient_errors_are_retried(model):
    faults = [ConnectionResetError(104, "reset"), ConnectionResetError(104, "reset"), "2"]
    with mock.patch.object(trigger_module, "read_alias", side_effect=faults) as read:
        event = asyncio.run(first_event(trigger(model, "1", poll_interval=0.001)))
    assert (event.payload["status"], event.payload["version"]) == ("success", "2")
    assert read.call_count == 3


def test_gives_up_with_an_error_event_after_repeated_failures(model):
    with mock.patch.object(
        trigger_module, "read_alias", side_effect=ConnectionResetError(104, "reset")
    ) as read:
        event = asyncio.run(first_event(trigger(model, "1", poll_interval=0.001)))
    assert event.payload["status"] == "error"
    assert "ConnectionResetError" in event.payload["message"]
    assert read.call_count == MAX_CONSECUTIVE_ERRORS


def test_already_moved_fires_at_once(model):
    with MLflowRegistryHook().session() as client:
        client.set_registered_model_alias(model, "champion", "2")
    event = asyncio.run(first_event(trigger(model, "1")))
    assert event.payload == {
        "status": "success",
        "model_name": model,
        "alias": "champion",
        "version": "2",
        "from_version": "1",
    }
