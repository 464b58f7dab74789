"""Wait until a drift check on new data reports drift.

When to defer: the wait is for data to arrive, which can take hours; deferring frees the worker slot
while the triggerer lists files every ``poke_interval`` seconds. The statistics always run in a
worker (after the trigger fires), never in the triggerer's event loop. Each data version is checked
once: after a check without drift the sensor waits for the data at ``current_uri`` to change.

Only the final outcome is recorded in the ``<model>-monitoring`` MLflow experiment (see
:mod:`mlops_provider.hooks.monitoring`): the check that fires the sensor, a skip, or at a timeout the
last check made (carried across deferrals; lost in ``reschedule`` mode, which keeps no state).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException

from mlops_provider.core.drift import (
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_DRIFT_SHARE,
    DEFAULT_MAX_ROWS,
    DEFAULT_MIN_ROWS,
    DEFAULT_NUMERIC_METHOD,
    DEFAULT_REPORT_SAMPLE_ROWS,
)
from mlops_provider.core.monitoring import CheckRecord
from mlops_provider.hooks.drift import DriftCheckHookMixin
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.reports import DriftReportLink, report_url
from mlops_provider.triggers.drift import DriftTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class DriftSensor(LeanSetattrMixin, DriftCheckHookMixin, BaseSensorOperator):
    """
    Wait for data at ``current_uri`` on which a drift check (as :class:`DriftCheckOperator`, same
    arguments) reports drift; returns the check's summary. Each version of the data (its files' paths,
    sizes and modification times) is checked once; a check without drift keeps the sensor waiting for
    different data, until ``timeout``.

    :param model_name: registered model name in MLflow (templated)
    :param current_uri: the data to wait for and check; may not exist yet (templated)
    :param reference_uri: default the champion's training data (templated)
    :param columns: default the champion's features (templated)
    :param drift_share: share of evaluated columns that must drift
    :param min_rows: fewer rows is ``insufficient_data`` (keeps waiting)
    :param numeric_method: ``wasserstein``, ``ks`` or ``jensenshannon``
    :param categorical_method: ``jensenshannon`` or ``chisquare``
    :param threshold: overrides the methods' thresholds
    :param report_sample_rows: rows of each frame the HTML report is built on
    :param max_rows: above this many rows a frame is read as a deterministic sample of this size and the
        decision is computed on the samples (``None``: every row)
    :param reports_uri: root for reports (templated)
    :param base_dir: folder relative paths resolve against (templated)
    :param data_conn_id: Airflow connection for remote data (templated)
    :param mlflow_conn_id: MLflow connection (templated)
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``)
    :param poke_interval: seconds between two looks at ``current_uri``
    """

    template_fields: Sequence[str] = (
        "model_name",
        "current_uri",
        "reference_uri",
        "columns",
        "reports_uri",
        "base_dir",
        "data_conn_id",
        "mlflow_conn_id",
    )
    operator_extra_links = (DriftReportLink(),)
    ui_color = "#f4d6b0"

    def __init__(
        self,
        *,
        model_name: str,
        current_uri: str,
        reference_uri: str | None = None,
        columns: Sequence[str] | None = None,
        drift_share: float = DEFAULT_DRIFT_SHARE,
        min_rows: int = DEFAULT_MIN_ROWS,
        numeric_method: str = DEFAULT_NUMERIC_METHOD,
        categorical_method: str = DEFAULT_CATEGORICAL_METHOD,
        threshold: float | Mapping[str, float] | None = None,
        report_sample_rows: int = DEFAULT_REPORT_SAMPLE_ROWS,
        max_rows: int | None = DEFAULT_MAX_ROWS,
        reports_uri: str | None = None,
        base_dir: str | None = None,
        data_conn_id: str | None = None,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.model_name = model_name
        self.current_uri = current_uri
        self.reference_uri = reference_uri
        self.columns = columns
        self.drift_share = drift_share
        self.min_rows = min_rows
        self.numeric_method = numeric_method
        self.categorical_method = categorical_method
        self.threshold = threshold
        self.report_sample_rows = report_sample_rows
        self.max_rows = max_rows
        self.reports_uri = reports_uri
        self.base_dir = base_dir
        self.data_conn_id = data_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.deferrable = deferrable
        self._checked_signature: str | None = None
        self._last_record: CheckRecord | None = None  # the last check without drift, not yet recorded

    @property
    def _resolved_current_uri(self) -> str:
        return self.hook.data.resolve(self.current_uri)

    def _signature(self) -> str | None:
        """The current data version's signature (through the data hook); ``None`` when there is none."""
        return self.hook.data.signature(self.current_uri)

    def _check(self, context: Context, signature: str) -> dict[str, Any] | None:
        """Run the drift check on this data version; the summary if it drifted (recorded), else ``None``."""
        self._last_record = None
        summary, result = self.checked(context)
        if summary.get("report_uri"):
            DriftReportLink.persist(context, report_url(summary["report_uri"]))
        self._checked_signature = signature
        record = self.drift_record(context, summary, result)
        if summary["status"] == "drift":
            summary["monitoring_run_id"] = self.record(record)
            return summary
        self._last_record = record
        self.log.info(
            "No drift confirmed on this data (%s); waiting for new data at %s",
            summary["status"],
            self.current_uri,
        )
        return None

    def poke(self, context: Context) -> PokeReturnValue | bool:
        signature = self._signature()
        if signature is None:
            self.log.info("No data at %s yet", self.current_uri)
            return False
        if signature == self._checked_signature:
            return False
        summary = self._check(context, signature)
        return PokeReturnValue(is_done=True, xcom_value=summary) if summary else False

    def execute(self, context: Context) -> Any:
        self.drift_check().validate()  # a bad argument fails now, not once data has arrived
        if not self.deferrable:
            try:
                return super().execute(context)
            except (AirflowSensorTimeout, AirflowSkipException):  # timed out (soft_fail: skipped)
                self._record_last(self._last_record)
                raise
        deadline = time.time() + float(self.timeout)
        signature = self._signature()
        if signature is not None:
            summary = self._check(context, signature)
            if summary:
                return summary
        self._defer(signature, deadline)
        return None

    def _record_last(self, record: CheckRecord | dict[str, Any] | None) -> None:
        """At a timeout: record the last check made, if any (a retry may record it again, same run)."""
        if record is not None:
            self.record(record if isinstance(record, CheckRecord) else CheckRecord.from_dict(record))

    def _defer(self, last_signature: str | None, deadline: float) -> None:
        kwargs: dict[str, Any] = {"deadline": deadline}
        if self._last_record is not None:
            kwargs["last_record"] = self._last_record.to_dict()
        self.defer(
            trigger=DriftTrigger(
                current_uri=self._resolved_current_uri,
                data_conn_id=self.data_conn_id,
                poke_interval=float(self.poke_interval),
                last_signature=last_signature,
                deadline=deadline,
            ),
            method_name="execute_complete",
            kwargs=kwargs,
            timeout=timedelta(seconds=max(deadline - time.time(), 1.0)),
        )

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        deadline: float | None = None,
        last_record: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        if not event or not isinstance(event, dict):
            raise AirflowException(f"{self.task_id}: the drift trigger returned no event")
        status = event.get("status")
        if status == "timeout":
            self._record_last(last_record)
            raise AirflowSensorTimeout(
                f"{self.task_id}: no drift confirmed at {self.current_uri} before the timeout"
            )
        if status != "ready" or not event.get("signature"):
            raise AirflowException(
                f"{self.task_id}: the drift trigger failed on {event.get('current_uri', self.current_uri)}: "
                f"{event.get('message', event)}"
            )
        summary = self._check(context, event["signature"])
        if summary:
            return summary
        self._defer(
            event["signature"], deadline if deadline is not None else time.time() + float(self.timeout)
        )
        return None
