"""The drift check shared by :class:`~mlops_provider.operators.drift.DriftCheckOperator` and
:class:`~mlops_provider.sensors.drift.DriftSensor`.

One check: find the reference (``reference_uri``, else the champion's training data through its lineage
tags in the registry), read both frames through :class:`~mlops_provider.hooks.data.DataHook`, decide with
:func:`mlops_provider.core.drift.compute_drift`, write Evidently's report
(:class:`~mlops_provider.hooks.evidently.EvidentlyHook`) and the full result under the task's report
prefix, and return the small summary that goes to XCom. A failing report never hides the decision.

Data above ``max_rows`` rows (default 1,000,000; ``None``: no limit) is read as a deterministic sample
of ``max_rows`` rows (seed 0, :mod:`mlops_provider.core.data_sample`), in memory bounded by the sample,
and the decision is computed on the samples; the summary's ``sample`` (``{"reference": {"rows", "of"},
"current": {...}, "seed"}``, else ``None``), ``drift_summary.json``, the monitoring record (tag
``mlops.drift.sample``) and the report's banner say so. ``n_reference``/``n_current`` stay the true
row counts.

``reference_changed_since_training``: ``True`` when the champion's training data changed since it was
trained (a different fingerprint, or row count), ``False`` when it did not (or the reference is not the
champion's data), ``None`` when it cannot be told: a sample on either side (the check's or the
training's) makes fingerprints incomparable, and the row counts agree.

Outcomes: a bad argument or a schema mismatch fails the task without retry; no champion and no
``reference_uri`` skips it; unreachable MLflow or storage leaves the retry to Airflow.

Every completed check (``drift``, ``no_drift``, ``insufficient_data``, or ``skipped`` for nothing to
compare with) is recorded as the task instance's run in the ``<model>-monitoring`` experiment by
:class:`~mlops_provider.hooks.monitoring.MonitoringHook` (:meth:`DriftCheckHookMixin.record`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.core import lineage
from mlops_provider.core.data_sample import DEFAULT_SAMPLE_SEED
from mlops_provider.core.drift import (
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_DRIFT_SHARE,
    DEFAULT_MAX_ROWS,
    DEFAULT_MIN_ROWS,
    DEFAULT_NUMERIC_METHOD,
    DEFAULT_REPORT_SAMPLE_ROWS,
    DriftSample,
    check_task_arguments,
    compute_drift,
)
from mlops_provider.core.monitoring import CheckRecord, drift_record
from mlops_provider.core.paths import reports_root, run_prefix
from mlops_provider.exceptions import MLflowRequestError, airflow_errors
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.evidently import REPORT_HTML, REPORT_JSON, EvidentlyHook
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.monitoring import MonitoringHook
from mlops_provider.hooks.registry import CHAMPION_ALIAS, Champion, MLflowRegistryHook

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from mlops_provider.core.drift import DriftResult

SUMMARY_JSON = "drift_summary.json"
MAX_SUMMARY_COLUMNS = 100
SAMPLE_TAG = "mlops.drift.sample"  # monitoring run tag: the summary's sample, when the check sampled


@dataclass(frozen=True)
class DriftCheck:
    """What to compare and how: a drift task's (rendered) arguments."""

    model_name: str
    current_uri: str
    reference_uri: str | None = None
    columns: Sequence[str] | None = None
    drift_share: float = DEFAULT_DRIFT_SHARE
    min_rows: int = DEFAULT_MIN_ROWS
    numeric_method: str = DEFAULT_NUMERIC_METHOD
    categorical_method: str = DEFAULT_CATEGORICAL_METHOD
    threshold: float | Mapping[str, float] | None = None
    report_sample_rows: int = DEFAULT_REPORT_SAMPLE_ROWS
    max_rows: int | None = DEFAULT_MAX_ROWS

    def validate(self) -> None:
        """Fail the task (:class:`~mlops_provider.exceptions.InvalidInputError`, no retry) naming a bad argument."""
        with airflow_errors():
            check_task_arguments(
                model_name=self.model_name,
                current_uri=self.current_uri,
                report_sample_rows=self.report_sample_rows,
                drift_share=self.drift_share,
                min_rows=self.min_rows,
                numeric_method=self.numeric_method,
                categorical_method=self.categorical_method,
                threshold=self.threshold,
                max_rows=self.max_rows,
            )


class DriftCheckHook(BaseHook):
    """
    Runs a :class:`DriftCheck` (see the module docstring).

    :param mlflow_conn_id: MLflow connection, for the champion's lineage (only used without
        ``reference_uri`` or ``columns``)
    :param data_conn_id: Airflow connection for remote data and reports
    :param base_dir: folder relative data paths resolve against (report prefixes are used as given)
    """

    hook_name = "MLOps drift check"

    def __init__(
        self,
        *,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        data_conn_id: str | None = None,
        base_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        self.data = DataHook(conn_id=data_conn_id, base_dir=base_dir)
        self.reports = DataHook(conn_id=data_conn_id)
        self.evidently = EvidentlyHook()

    @cached_property
    def registry(self) -> MLflowRegistryHook:
        return MLflowRegistryHook(mlflow_conn_id=self.mlflow_conn_id)

    @cached_property
    def monitoring(self) -> MonitoringHook:
        return MonitoringHook(mlflow_conn_id=self.mlflow_conn_id)

    # -- the reference -------------------------------------------------------------------------
    def resolve_reference(self, check: DriftCheck) -> tuple[str, Champion | None]:
        """The reference URI (resolved) and the champion; skips the task when there is neither."""
        champion = None
        if check.reference_uri is None or check.columns is None:
            champion = self.registry.champion(check.model_name)
        if check.reference_uri:
            return self.data.resolve(check.reference_uri), champion
        if champion is None:
            raise AirflowSkipException(
                f"nothing to compare with: model {check.model_name!r} has no @{CHAMPION_ALIAS} version in "
                f"MLflow at {self.registry.describe()} and no reference_uri was given"
            )
        if not champion.training_data_uri:
            raise AirflowFailException(
                f"champion version {champion.version} of {check.model_name!r} has no "
                f"{lineage.TRAINING_DATA_URI!r} tag (on the version or its run): pass reference_uri"
            )
        return self.data.resolve(champion.training_data_uri), champion

    def reference_changed(
        self, check: DriftCheck, reference: pd.DataFrame, champion: Champion | None, total: int
    ) -> bool | None:
        """Whether the champion's training data (read back from its lineage URI, ``total`` rows) changed
        since training; ``None`` when a sample on either side leaves it untold (module docstring)."""
        if check.reference_uri or champion is None or not champion.training_data_fingerprint:
            return False
        sampled = total > len(reference)
        if not sampled and self.data.fingerprint(reference) == champion.training_data_fingerprint:
            return False
        tags = self._version_tags(check.model_name, champion)
        if not sampled and lineage.TRAINING_SAMPLE_ROWS not in tags:
            why = "fingerprint differs"
        else:  # fingerprints of a sample and of other rows cannot be compared; row counts can
            trained = str(tags.get(lineage.TRAINING_ROWS_TOTAL) or tags.get(lineage.TRAINING_DATA_ROWS) or "")
            if not trained.isdigit() or int(trained) == total:
                self.log.info(
                    "Not verified whether the champion's training data at %s changed since training: "
                    "a sample was read (here or at training) and the row count (%d) is unchanged",
                    champion.training_data_uri,
                    total,
                )
                return None
            why = f"{trained} rows at training, {total} now"
        self.log.warning(
            "The champion's training data at %s changed since version %s was trained (%s): drift is "
            "measured against that data as it is now",
            champion.training_data_uri,
            champion.version,
            why,
        )
        return True

    def _version_tags(self, model_name: str, champion: Champion) -> dict[str, str]:
        """The champion version's tags (its run's for any lineage tag the version lacks)."""
        tags = dict(self.registry.model_version(model_name, champion.version).tags or {})
        if champion.run_id and lineage.TRAINING_DATA_ROWS not in tags:
            try:
                tags = {**self.registry.get_run(champion.run_id).data.tags, **tags}
            except MLflowRequestError:  # a deleted run: the version's tags are all there is
                self.log.debug("No run %s for the champion's tags", champion.run_id, exc_info=True)
        return tags

    def read(self, uri: str, max_rows: int | None) -> tuple[pd.DataFrame, int]:
        """The frame to compare (a deterministic sample above ``max_rows``) and the data's row count."""
        if max_rows is None:
            frame = self.data.read_frame(uri)
            return frame, len(frame)
        return self.data.read_sample(uri, max_rows, seed=DEFAULT_SAMPLE_SEED)

    # -- the check -----------------------------------------------------------------------------
    def run(self, check: DriftCheck, reports_prefix: str) -> tuple[dict[str, Any], DriftResult]:
        """Validate, read both frames (sampled above ``max_rows``), decide, write the report under
        ``reports_prefix``; the XCom summary and the full result."""
        check.validate()
        reference_uri, champion = self.resolve_reference(check)
        current_uri = self.data.resolve(check.current_uri)
        reference, n_reference = self.read(reference_uri, check.max_rows)
        current, n_current = self.read(current_uri, check.max_rows)
        sample = None
        if n_reference > len(reference) or n_current > len(current):
            sample = DriftSample(len(reference), n_reference, len(current), n_current, DEFAULT_SAMPLE_SEED)
            self.log.info("Above max_rows=%s: %s", check.max_rows, sample.note())
        reference_changed = self.reference_changed(check, reference, champion, n_reference)
        result = self.decide(check, reference, current, champion, sample, (reference_uri, current_uri))
        summary = result.summary(MAX_SUMMARY_COLUMNS)
        summary.update(
            reference_uri=reference_uri,
            current_uri=current_uri,
            champion_version=champion.version if champion else None,
            reference_changed_since_training=reference_changed,
            report_uri=None,
        )
        self.log.info(
            "Drift check of %s vs %s: %s (drifted share %s, threshold %s; drifted: %s)",
            current_uri,
            reference_uri,
            result.status,
            summary["drift_share"],
            result.threshold_share,
            ", ".join(result.drifted_columns) or "none",
        )
        summary.update(self.write_report(check, reference, current, result, summary, reports_prefix))
        return summary, result

    @staticmethod
    def decide(
        check: DriftCheck,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        champion: Champion | None,
        sample: DriftSample | None,
        uris: tuple[str, str],
    ) -> DriftResult:
        """:func:`~mlops_provider.core.drift.compute_drift` with the check's arguments (errors translated)."""
        columns = (
            list(check.columns) if check.columns is not None else (champion.features if champion else None)
        )
        with airflow_errors():
            return compute_drift(
                reference,
                current,
                columns,
                drift_share=check.drift_share,
                min_rows=check.min_rows,
                numeric_method=check.numeric_method,
                categorical_method=check.categorical_method,
                threshold=check.threshold,
                target=champion.target if champion else None,
                reference_uri=uris[0],
                current_uri=uris[1],
                sample=sample,
            )

    def write_report(
        self,
        check: DriftCheck,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        result: DriftResult,
        summary: dict[str, Any],
        prefix: str,
    ) -> dict[str, Any]:
        """Write Evidently's HTML + JSON and the full result; the URIs (and any report error) to add to
        the summary. A report Evidently cannot build is logged and noted; the decision stands."""
        out: dict[str, Any] = {}
        full = {
            **result.to_dict(),
            **{k: summary[k] for k in ("reference_uri", "current_uri", "champion_version")},
        }
        try:
            rendered = self.evidently.drift_report(
                reference,
                current,
                result,
                model_name=check.model_name,
                reference_uri=summary["reference_uri"],
                current_uri=summary["current_uri"],
                sample_rows=check.report_sample_rows,
            )
        except Exception as err:  # Evidently failing on odd data must not hide the decision
            self.log.exception("The Evidently report could not be built; the decision stands")
            out["report_error"] = f"{type(err).__name__}: {str(err)[:300]}"
            rendered = None
        if rendered is not None:
            out["report_uri"] = self.reports.write_bytes(rendered.html, f"{prefix}/{REPORT_HTML}")
            out["report_json_uri"] = self.reports.write_bytes(
                rendered.snapshot_json, f"{prefix}/{REPORT_JSON}"
            )
            if rendered.sample_note:
                out["report_sample"] = rendered.sample_note
            full["report_sample"] = rendered.sample_note
        full["report_error"] = out.get("report_error")
        payload = json.dumps(full, indent=2, default=str).encode()
        out["summary_uri"] = self.reports.write_bytes(payload, f"{prefix}/{SUMMARY_JSON}")
        return out


class DriftCheckHookMixin:
    """For the drift operator and sensor: the :class:`DriftCheck` their (rendered) fields describe, the
    :class:`DriftCheckHook` built on first use, and the task's report prefix."""

    model_name: str
    current_uri: str
    reference_uri: str | None
    columns: Sequence[str] | None
    drift_share: float
    min_rows: int
    numeric_method: str
    categorical_method: str
    threshold: float | Mapping[str, float] | None
    report_sample_rows: int
    max_rows: int | None
    reports_uri: str | None
    base_dir: str | None
    data_conn_id: str | None
    mlflow_conn_id: str

    @cached_property
    def hook(self) -> DriftCheckHook:
        return DriftCheckHook(
            mlflow_conn_id=self.mlflow_conn_id, data_conn_id=self.data_conn_id, base_dir=self.base_dir
        )

    def drift_check(self) -> DriftCheck:
        return DriftCheck(
            model_name=self.model_name,
            current_uri=self.current_uri,
            reference_uri=self.reference_uri,
            columns=self.columns,
            drift_share=self.drift_share,
            min_rows=self.min_rows,
            numeric_method=self.numeric_method,
            categorical_method=self.categorical_method,
            threshold=self.threshold,
            report_sample_rows=self.report_sample_rows,
            max_rows=self.max_rows,
        )

    def reports_prefix(self, context: Context) -> str:
        """``<reports root>/<dag_id>/<run_id>/<task_id>``."""
        ti = context["ti"]
        return run_prefix(self.reports_uri or reports_root(), ti.dag_id, ti.run_id, ti.task_id)

    # -- the monitoring record -----------------------------------------------------------------
    def checked(self, context: Context) -> tuple[dict[str, Any], DriftResult]:
        """Run the check; one with nothing to compare with is recorded (``skipped``), then skips."""
        try:
            return self.hook.run(self.drift_check(), self.reports_prefix(context))
        except AirflowSkipException as skip:
            summary = {"status": "skipped", "reason": str(skip), "threshold_share": self.drift_share}
            self.record(self.drift_record(context, summary, None))
            raise

    def drift_record(
        self, context: Context, summary: Mapping[str, Any], result: DriftResult | None
    ) -> CheckRecord:
        """The monitoring record of a check that just ran: its summary and every column's result, and
        the sample the decision used (tag ``mlops.drift.sample``, ``null`` for none: a retry overwrites it)."""
        record = drift_record(
            model=self.model_name,
            summary=summary,
            columns={c.column: c.brief() for c in result.columns} if result is not None else {},
            identity=lineage.task_identity(context),
            logical_date=lineage.logical_date(context),
            checked_at=datetime.now(UTC),
        )
        if "sample" in summary:
            record.tags[SAMPLE_TAG] = json.dumps(summary["sample"], sort_keys=True)
        return record

    def record(self, record: CheckRecord) -> str:
        """Write the record (a retry updates the same run); the MLflow run id. Failures are retryable."""
        return self.hook.monitoring.record_check(record)
