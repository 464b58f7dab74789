"""Wait for a registered-model alias (e.g. ``champion``) to point at a new version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, conf
from airflow.sdk.exceptions import AirflowException

from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.triggers.registry import ModelAliasTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

_UNSET = object()


class ModelAliasSensor(LeanSetattrMixin, MLflowHookMixin, BaseSensorOperator):
    """
    Wait until ``model_name@alias`` points at a version different from ``from_version``.

    With ``from_version=None`` the baseline is the version the alias has when the task starts (or no
    version, if the alias does not exist yet): the sensor then waits for the next move. In
    ``mode="reschedule"`` pass ``from_version`` explicitly, since each reschedule starts afresh.
    Deferrable mode hands the polling to :class:`~mlops_provider.triggers.registry.ModelAliasTrigger`.

    :param model_name: registered model name. (templated)
    :param alias: alias to watch. (templated)
    :param from_version: version to move away from; a value that is not a version number (``None``,
        ``""``, a Jinja-rendered ``"None"``) means "the version at start". (templated)
    :param deferrable: poll in the triggerer; default ``[operators] default_deferrable``.
    :param poke_interval: seconds between polls.
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"model_name", "alias", "version", "from_version"}``
    """

    template_fields: Sequence[str] = ("model_name", "alias", "from_version", "mlflow_conn_id")
    ui_color = "#f0f0c0"
    hook_class = MLflowRegistryHook

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        from_version: str | int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30,
        mlflow_conn_id: str = MLflowRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.model_name = model_name
        self.alias = alias
        self.from_version = from_version
        self.deferrable = deferrable
        self.mlflow_conn_id = mlflow_conn_id
        self._baseline: Any = _UNSET
        self._found: str | None = None

    def _current(self) -> str | None:
        return self.hook.alias_version(self.model_name, self.alias)

    def _result(self, version: str) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "alias": self.alias,
            "version": version,
            "from_version": self._baseline,
        }

    def execute(self, context: Context) -> Any:
        if str(self.from_version or "").strip().isdigit():
            self._baseline = str(self.from_version).strip()
        else:
            self._baseline = self._current()
            self.log.info(
                "%s@%s is at %s now; waiting for it to move", self.model_name, self.alias, self._baseline
            )
        if not self.deferrable:
            super().execute(context)
            return self._result(self._found)  # type: ignore[arg-type]
        current = self._current()
        if current is not None and current != self._baseline:
            return self._result(current)
        self.defer(
            trigger=ModelAliasTrigger(
                model_name=self.model_name,
                alias=self.alias,
                from_version=self._baseline,
                mlflow_conn_id=self.mlflow_conn_id,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def poke(self, context: Context) -> bool:
        current = self._current()
        if current is not None and current != self._baseline:
            self._found = current
            return True
        return False

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if not event:
            raise AirflowException(
                f"ModelAliasTrigger for {self.model_name}@{self.alias} ended without an event"
            )
        if event.get("status") != "success":
            raise AirflowException(
                f"waiting for {self.model_name}@{self.alias} failed: {event.get('message', event)}"
            )
        return {
            "model_name": event["model_name"],
            "alias": event["alias"],
            "version": str(event["version"]),
            "from_version": event.get("from_version"),
        }
