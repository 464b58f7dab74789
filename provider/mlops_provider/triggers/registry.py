"""Trigger that waits, in the triggerer, for a registered-model alias to point at a new version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

MAX_CONSECUTIVE_ERRORS = 5


def read_alias(mlflow_conn_id: str, model_name: str, alias: str) -> str | None:
    """Blocking: the version ``model_name@alias`` points at, ``None`` when the alias does not exist."""
    from mlops_provider.hooks.registry import MLflowRegistryHook

    return MLflowRegistryHook(mlflow_conn_id=mlflow_conn_id).alias_version(model_name, alias)


class ModelAliasTrigger(BaseTrigger):
    """
    Poll MLflow until ``model_name@alias`` points at a version other than ``from_version``.

    The blocking MLflow client runs in a worker thread (``asyncio.to_thread``) so the triggerer's event
    loop is never blocked. Transient errors are retried; after ``MAX_CONSECUTIVE_ERRORS`` in a row the
    trigger yields an error event.

    :param model_name: registered model name.
    :param alias: alias to watch.
    :param from_version: the version to move away from; ``None`` waits for the alias to exist.
    :param mlflow_conn_id: MLflow connection.
    :param poll_interval: seconds between polls.
    """

    def __init__(
        self,
        *,
        model_name: str,
        alias: str,
        from_version: str | None,
        mlflow_conn_id: str,
        poll_interval: float = 30.0,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.alias = alias
        self.from_version = None if from_version is None else str(from_version)
        self.mlflow_conn_id = mlflow_conn_id
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "model_name": self.model_name,
                "alias": self.alias,
                "from_version": self.from_version,
                "mlflow_conn_id": self.mlflow_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        errors = 0
        while True:
            try:
                version = await asyncio.to_thread(
                    read_alias, self.mlflow_conn_id, self.model_name, self.alias
                )
                errors = 0
            except Exception as err:  # report, retry a few times, then give up with an event
                errors += 1
                self.log.warning(
                    "Polling %s@%s failed (%d in a row): %s", self.model_name, self.alias, errors, err
                )
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    yield TriggerEvent({"status": "error", "message": f"{type(err).__name__}: {err}"})
                    return
                await asyncio.sleep(self.poll_interval)
                continue
            if version is not None and version != self.from_version:
                yield TriggerEvent(
                    {
                        "status": "success",
                        "model_name": self.model_name,
                        "alias": self.alias,
                        "version": version,
                        "from_version": self.from_version,
                    }
                )
                return
            await asyncio.sleep(self.poll_interval)
