"""Data drift: compare current data with the data the champion model was trained on (Evidently 0.7).

The decision comes from :func:`mlops_provider.core.drift.compute_drift` on all rows, or on a
deterministic sample of each frame above ``max_rows`` (a numpy/scipy port of Evidently's methods,
method pinned); Evidently renders the HTML report for humans, on a deterministic
sample when the data is large (the report says so). The check itself (reference, reads, decision,
report) is :class:`~mlops_provider.hooks.drift.DriftCheckHook`, shared with the drift sensor.

Asset events: with ``emit_asset=True`` the task declares ``drift_asset(model_name)`` as its outlet (so
the UI and the scheduler know the dependency), and removes it from the running task's outlets unless
drift is confirmed. Airflow 3 registers events for the outlets the task holds when it succeeds, so a
check that finds no drift (or too little data) succeeds without an event, and a failed check emits
nothing. A retraining DAG scheduled on the asset with ``max_active_runs=1`` starts at most one retrain
at a time however many drift events arrive.

Every check (also ``insufficient_data`` and a skip for nothing to compare with) is recorded as the task
instance's run in the MLflow experiment ``<model_name>-monitoring``; a retry updates that run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.assets import drift_asset
from mlops_provider.core.drift import (
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_DRIFT_SHARE,
    DEFAULT_MAX_ROWS,
    DEFAULT_MIN_ROWS,
    DEFAULT_NUMERIC_METHOD,
    DEFAULT_REPORT_SAMPLE_ROWS,
)
from mlops_provider.hooks.drift import DriftCheckHookMixin
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.openlineage import DriftLineageMixin
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.reports import DriftReportLink, report_url

if TYPE_CHECKING:
    from airflow.sdk import Context


class DriftCheckOperator(LeanSetattrMixin, DriftCheckHookMixin, DriftLineageMixin, BaseOperator):
    """
    Compare current data with the data the champion model was trained on and decide whether it drifted.

    Per-column scores use Evidently 0.7's methods, pinned (``wasserstein`` for numeric and
    ``jensenshannon`` for categorical columns by default), computed on all rows (on a deterministic sample
    of each frame above ``max_rows``); the dataset drifts when the share of drifted columns among the
    evaluated ones reaches ``drift_share``. Below ``min_rows`` rows the status is ``insufficient_data``, never ``drift``. An Evidently HTML report (and its JSON) is
    written under ``<reports root>/<dag_id>/<run_id>/<task_id>/`` and linked from the task ("Drift
    report"). When drift is confirmed the task emits an event on ``drift_asset(model_name)``.

    Returns (XCom) a small summary::

        {"status": "drift" | "no_drift" | "insufficient_data", "drift_share": 0.75, "threshold_share": 0.3,
         "drifted_columns": [...], "columns": {"temp_max": {"score", "method", "drifted", "status"}, ...},
         "n_reference": 1461, "n_current": 200, "sample": None, "reference_uri": ..., "current_uri": ...,
         "report_uri": ..., "champion_version": "3", "monitoring_run_id": "<MLflow run id>", ...}

    Above ``max_rows``: ``"sample": {"reference": {"rows": 1000000, "of": 20000000}, "current": {...},
    "seed": 0}`` (``n_reference``/``n_current`` stay the true row counts).

    :param model_name: registered model name in MLflow; names the Asset (templated, but keep it literal
        when ``emit_asset`` is on: the outlet is fixed when the DAG is parsed)
    :param current_uri: the data to check: path, glob or URI (templated)
    :param reference_uri: the reference data; default the champion's training data, found through the
        ``mlops.training_data_uri`` tag of ``models:/<model_name>@champion`` (templated)
    :param columns: the columns to compare; default the champion's ``mlops.features`` tag, else every
        column but the champion's target (templated)
    :param drift_share: share of evaluated columns that must drift for the dataset to drift (0, 1]
    :param min_rows: fewer rows in either frame (or non-null values in a column) is ``insufficient_data``
    :param numeric_method: ``wasserstein`` (normed, drift >= 0.1), ``ks`` (p <= 0.05) or ``jensenshannon``
    :param categorical_method: ``jensenshannon`` (drift >= 0.1) or ``chisquare`` (p < 0.05)
    :param threshold: overrides the methods' thresholds: one number, or ``{"numeric": .., "categorical": ..}``
    :param report_sample_rows: the report is built on at most this many rows of each frame (deterministic
        sample, stated on the report)
    :param max_rows: a frame above this many rows is read as a deterministic sample of this size (seed 0;
        memory bounded by the sample) and the decision is computed on the samples: the summary's
        ``sample`` and the report say so; ``min_rows`` is checked against the true row counts. ``None``:
        every row (the whole data in memory). At least ``min_rows``.
    :param reports_uri: root for reports (local path or s3://...); default ``MLOPS_REPORTS_URI`` or
        ``<MLOPS_HOME>/.mlops/reports`` (templated)
    :param base_dir: folder relative paths resolve against (templated)
    :param data_conn_id: Airflow connection for remote data and reports (e.g. ``aws_default``) (templated)
    :param mlflow_conn_id: MLflow connection (templated)
    :param emit_asset: emit an event on ``drift_asset(model_name)`` when drift is confirmed
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
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        if emit_asset:
            outlets = kwargs.pop("outlets", None)
            if outlets is None:
                outlets = []
            elif not isinstance(outlets, list | tuple):
                outlets = [outlets]
            kwargs["outlets"] = [*outlets, drift_asset(model_name)]
        super().__init__(**kwargs)
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
        self.emit_asset = emit_asset
        self._parsed_model_name = model_name

    def execute(self, context: Context) -> dict[str, Any]:
        asset = drift_asset(self._parsed_model_name) if self.emit_asset else None
        if asset is not None:
            # No event unless drift is confirmed: drop the outlet from this running copy of the task
            # (a new list: the parsed task object is shared), and put it back only on drift.
            self.outlets = [o for o in self.outlets if o != asset]
            if self.model_name != self._parsed_model_name:
                raise AirflowFailException(
                    f"model_name rendered to {self.model_name!r} but the drift Asset was fixed at parse time "
                    f"for {self._parsed_model_name!r}: use a literal model_name or emit_asset=False"
                )
        summary, result = self.checked(context)
        if summary.get("report_uri"):
            DriftReportLink.persist(context, report_url(summary["report_uri"]))
        # Recorded before the outlet is put back: a failed record fails the try, and Airflow registers
        # Asset events only when a try succeeds, so a retry emits the drift event once.
        summary["monitoring_run_id"] = self.record(self.drift_record(context, summary, result))
        if asset is not None and summary["status"] == "drift":
            self.outlets = [*self.outlets, asset]
            ti = context["ti"]
            context["outlet_events"][asset].extra = {
                "status": summary["status"],
                "drift_share": summary["drift_share"],
                "drifted_columns": summary["drifted_columns"][:20],
                "current_uri": summary["current_uri"],
                "champion_version": summary["champion_version"],
                "dag_id": ti.dag_id,
                "run_id": ti.run_id,
            }
            self.log.info("Drift confirmed: emitting an event on %s", asset.uri)
        return self.keep_for_lineage(summary)
