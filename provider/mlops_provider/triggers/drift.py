"""The trigger behind a deferred :class:`~mlops_provider.sensors.drift.DriftSensor`: waits for new data.

It only polls: every ``poke_interval`` seconds it lists the files ``current_uri`` names (in a thread, so
the triggerer's event loop never blocks on a filesystem or S3 call) and fires when data exists whose
signature (paths, sizes, modification times) differs from ``last_signature``. The statistics run in the
worker after the sensor resumes, never in the triggerer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_provider.hooks.data import DataHook


class DriftTrigger(BaseTrigger):
    """
    Fire once new data is at ``current_uri``.

    Events: ``{"status": "ready", "signature": ..., "current_uri": ...}``; ``{"status": "timeout", ...}``
    once ``deadline`` (epoch seconds) has passed; ``{"status": "error", "message": ...}`` if listing
    fails in an unexpected way.

    :param current_uri: path, glob or URI of the data (already rendered and resolved)
    :param data_conn_id: Airflow connection for remote URIs
    :param poke_interval: seconds between two listings
    :param last_signature: the signature of data already checked: fire only for different data
    :param deadline: epoch seconds after which the trigger gives up with a ``timeout`` event
    """

    def __init__(
        self,
        *,
        current_uri: str,
        data_conn_id: str | None = None,
        poke_interval: float = 60.0,
        last_signature: str | None = None,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.current_uri = current_uri
        self.data_conn_id = data_conn_id
        self.poke_interval = float(poke_interval)
        self.last_signature = last_signature
        self.deadline = None if deadline is None else float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "current_uri": self.current_uri,
                "data_conn_id": self.data_conn_id,
                "poke_interval": self.poke_interval,
                "last_signature": self.last_signature,
                "deadline": self.deadline,
            },
        )

    def _signature(self) -> str | None:
        return DataHook(conn_id=self.data_conn_id).signature(self.current_uri)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                signature = await asyncio.to_thread(self._signature)
            except Exception as err:  # report it to the worker instead of dying silently in the triggerer
                yield TriggerEvent(
                    {
                        "status": "error",
                        "current_uri": self.current_uri,
                        "message": f"{type(err).__name__}: {err}",
                    }
                )
                return
            if signature is not None and signature != self.last_signature:
                self.log.info("New data at %s (signature %s)", self.current_uri, signature)
                yield TriggerEvent(
                    {"status": "ready", "current_uri": self.current_uri, "signature": signature}
                )
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "current_uri": self.current_uri})
                return
            await asyncio.sleep(self.poke_interval)
