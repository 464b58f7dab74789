"""DriftTrigger: JSON-only serialisation and the async polling loop (no statistics in the triggerer)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from mlops_provider.core.data import data_signature
from mlops_provider.exceptions import DataUnavailableError
from mlops_provider.hooks.data import DataHook
from mlops_provider.triggers.drift import DriftTrigger


def test_serialize_round_trips_json_only_arguments(tmp_path: Path):
    trigger = DriftTrigger(
        current_uri=str(tmp_path / "batch.csv"),
        data_conn_id="aws_default",
        poke_interval=5,
        last_signature="abc",
        deadline=1_900_000_000.5,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "mlops_provider.triggers.drift.DriftTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


async def _first_event(trigger: DriftTrigger, timeout: float = 10.0):
    agen = trigger.run()
    try:
        return await asyncio.wait_for(agen.__anext__(), timeout)
    finally:
        await agen.aclose()


def test_fires_when_data_arrives(tmp_path: Path):
    target = tmp_path / "batch.csv"

    async def scenario():
        trigger = DriftTrigger(current_uri=str(target), poke_interval=0.05)
        waiting = asyncio.create_task(_first_event(trigger))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # no data yet: still polling, the loop is not blocked
        target.write_text("a\n1\n")
        return await waiting

    event = asyncio.run(scenario())
    assert event.payload["status"] == "ready"
    assert event.payload["signature"] == data_signature(str(target))


def test_waits_for_different_data_than_already_checked(tmp_path: Path):
    target = tmp_path / "batch.csv"
    target.write_text("a\n1\n")
    checked = data_signature(str(target))

    async def scenario():
        trigger = DriftTrigger(current_uri=str(target), poke_interval=0.05, last_signature=checked)
        waiting = asyncio.create_task(_first_event(trigger))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        target.write_text("a\n1\n2\n")
        return await waiting

    event = asyncio.run(scenario())
    assert event.payload["status"] == "ready"
    assert event.payload["signature"] != checked


def test_times_out_at_the_deadline(tmp_path: Path):
    trigger = DriftTrigger(
        current_uri=str(tmp_path / "never.csv"), poke_interval=0.05, deadline=time.time() + 0.1
    )
    event = asyncio.run(_first_event(trigger))
    assert event.payload == {"status": "timeout", "current_uri": str(tmp_path / "never.csv")}


def test_reports_an_unexpected_listing_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(self):
        raise PermissionError("denied")

    monkeypatch.setattr(DriftTrigger, "_signature", broken)
    event = asyncio.run(_first_event(DriftTrigger(current_uri=str(tmp_path / "x.csv"), poke_interval=0.05)))
    assert event.payload["status"] == "error"
    assert "PermissionError: denied" in event.payload["message"]


def test_listing_goes_through_the_data_hook_with_its_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    seen = []

    def unreachable(self, uri):  # fault injection: object storage times out
        seen.append((self.conn_id, uri))
        raise DataUnavailableError(f"{uri}: cannot list (TimeoutError)")

    monkeypatch.setattr(DataHook, "signature", unreachable)
    uri = str(tmp_path / "x.csv")
    event = asyncio.run(
        _first_event(DriftTrigger(current_uri=uri, data_conn_id="aws_default", poke_interval=0.05))
    )
    assert seen == [("aws_default", uri)]
    assert event.payload["status"] == "error"
    assert "DataUnavailableError" in event.payload["message"]
