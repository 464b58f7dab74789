"""Validate a dataset with a Great Expectations 1.x expectation suite."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.exceptions import DataError, InvalidInputError, airflow_errors
from mlops_provider.hooks.openlineage import ValidationLineageMixin
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.reports import ValidationReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.data import DataHook

ON_FAILURE_CHOICES = ("fail", "warn")
RESULT_NAME = "validation_result.json"
REPORT_NAME = "validation_report.html"


class ValidateDataOperator(LeanSetattrMixin, ValidationLineageMixin, BaseOperator):
    """
    Run a Great Expectations 1.x expectation suite on a dataset (CSV or Parquet) with an ephemeral
    GX context; no GX project folder is needed.

    The task returns (XCom ``return_value``) a small summary::

        {"success": bool, "status": "passed" | "warned" | "failed", "data_uri": str, "suite": str,
         "rows": int, "evaluated": int, "failed": int,
         "failed_expectations": [{"type", "column", "unexpected_count", "unexpected_values",
                                  "error", "observed_value"}, ...],   # at most 50, 5 values each
         "error": str | None,          # e.g. "dataset ... has 0 rows"
         "report_uri": str, "result_uri": str}

    The full GX result (JSON) and a self-contained HTML report (readable offline) are written to
    ``<reports_uri>/<dag_id>/<run_id>/<task_id>/``; the task's "Validation report" link opens the page.

    A suite expectation GX cannot build (unknown type, bad argument) fails the task naming it: GX
    itself would only log and drop it. A dataset with 0 rows never passes.

    :param data_uri: the dataset: a path, a glob (``batches/*.csv``), ``file://`` or ``s3://`` URI;
        relative paths resolve against ``base_dir``. (templated)
    :param suite: a GX 1.x expectation suite as a dict, or the path/URI of its JSON file; relative
        paths resolve against ``base_dir``. (templated)
    :param on_failure: ``"fail"`` (default): the summary is pushed, then the task fails without
        retrying; ``"warn"``: the task succeeds and the summary says what failed. (templated)
    :param base_dir: folder that relative ``data_uri`` and ``suite`` paths resolve against; default
        the working directory. (templated)
    :param data_conn_id: Airflow connection for remote data and suite URIs (e.g. ``aws_default``).
        (templated)
    :param reports_uri: root for reports (local path or ``s3://``); default ``MLOPS_REPORTS_URI`` or
        ``<MLOPS_HOME>/.mlops/reports``. (templated)
    :param reports_conn_id: Airflow connection for a remote ``reports_uri``; default
        ``data_conn_id``. (templated)
    :param max_unexpected_values: how many unexpected values each failed expectation lists.
    :param optional_columns: columns the data may lack (e.g. the target of a batch whose labels come
        later): when absent, the suite's expectations on them are left out and the summary lists them
        (``skipped_expectations``); when present, they are checked. (templated)
    """

    template_fields: Sequence[str] = (
        "data_uri",
        "suite",
        "on_failure",
        "base_dir",
        "data_conn_id",
        "reports_uri",
        "reports_conn_id",
        "optional_columns",
    )
    template_fields_renderers = {"suite": "json"}
    operator_extra_links = (ValidationReportLink(),)
    ui_color = "#e8f4e4"

    def __init__(
        self,
        *,
        data_uri: str,
        suite: str | Mapping[str, Any],
        on_failure: str = "fail",
        base_dir: str | None = None,
        data_conn_id: str | None = None,
        reports_uri: str | None = None,
        reports_conn_id: str | None = None,
        max_unexpected_values: int = 5,
        optional_columns: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_uri = data_uri
        self.suite = suite
        self.on_failure = on_failure
        self.base_dir = base_dir
        self.data_conn_id = data_conn_id
        self.reports_uri = reports_uri
        self.reports_conn_id = reports_conn_id
        self.max_unexpected_values = max_unexpected_values
        self.optional_columns = optional_columns

    def _check_arguments(self) -> None:
        if self.on_failure not in ON_FAILURE_CHOICES:
            raise InvalidInputError(
                f"{self.task_id}: on_failure={self.on_failure!r} is not one of {', '.join(ON_FAILURE_CHOICES)}"
            )
        if (
            isinstance(self.max_unexpected_values, bool)
            or not isinstance(self.max_unexpected_values, int)
            or self.max_unexpected_values < 0
        ):
            raise InvalidInputError(
                f"{self.task_id}: max_unexpected_values must be an integer >= 0, got {self.max_unexpected_values!r}"
            )

    def _load_suite(self, data: DataHook, absent: Sequence[str] = ()) -> tuple[Any, str, list[str]]:
        """The built GX suite (without what it says about ``absent`` optional columns), where it came
        from, and what was left out; the suite file is read through ``data``."""
        from mlops_provider.core import validation

        suite: Any = self.suite
        from_file = isinstance(suite, str) and bool(suite.strip())
        if from_file:
            suite = data.resolve(suite)

        def read(uri: str) -> bytes:
            try:
                return data.read_bytes(uri)
            except DataError as err:
                raise DataError(f"Cannot read the expectation suite: {err}") from err

        with airflow_errors("Invalid expectation suite"):
            spec, source = validation.load_suite_spec(suite, read)
            spec, skipped = validation.without_columns(spec, absent)
            default_name = source.rsplit("/", 1)[-1].removesuffix(".json") if from_file else "suite"
            return validation.build_suite(spec, source, default_name=default_name), source, skipped

    def _write_reports(self, context: Context, outcome: Any, data_uri: str, source: str) -> tuple[str, str]:
        """Write the JSON result and the HTML report under the run's prefix; (report URI, result URI)."""
        from mlops_provider.core import validation
        from mlops_provider.core.paths import reports_root, run_prefix
        from mlops_provider.hooks.data import DataHook
        from mlops_provider.links.reports import report_url

        ti = context["ti"]
        prefix = run_prefix(self.reports_uri or reports_root(), ti.dag_id, ti.run_id, ti.task_id)
        reports = DataHook(conn_id=self.reports_conn_id or self.data_conn_id)
        result_uri = reports.write_bytes(
            validation.result_document(outcome, data_uri, source), f"{prefix}/{RESULT_NAME}"
        )
        report_uri = reports.write_bytes(
            validation.render_html(outcome, data_uri, source), f"{prefix}/{REPORT_NAME}"
        )
        ValidationReportLink.persist(context, report_url(report_uri))
        return report_uri, result_uri

    def execute(self, context: Context) -> dict[str, Any]:
        self._check_arguments()
        from mlops_provider.core import validation

        validation.quiet_gx_logging()  # before anything imports great_expectations
        from mlops_provider.hooks.data import DataHook

        data = DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir)
        data_uri = data.resolve(self.data_uri)
        self.log.info("Reading %s", data_uri)
        frame = data.read_frame(data_uri)
        absent = [c for c in self.optional_columns or () if c not in frame.columns]
        suite, source, skipped = self._load_suite(data, absent)
        if skipped:
            self.log.info("Optional column(s) %s absent: left out %s", absent, "; ".join(skipped))
        self.log.info(
            "Validating %d rows x %d columns with suite %r (%d expectations, from %s)",
            len(frame),
            len(frame.columns),
            suite.name,
            len(suite.expectations),
            source,
        )
        with airflow_errors(f"Validation of {data_uri}"):
            outcome = validation.validate_frame(
                frame, suite, data_name=data_uri, max_unexpected_values=self.max_unexpected_values
            )
        del frame
        report_uri, result_uri = self._write_reports(context, outcome, data_uri, source)

        status = "passed" if outcome.success else ("warned" if self.on_failure == "warn" else "failed")
        summary = validation.summary(
            outcome, data_uri=data_uri, report_uri=report_uri, result_uri=result_uri, status=status
        )
        summary["skipped_expectations"] = skipped[:50]
        if outcome.success:
            self.log.info(
                "Validation passed: %d expectations on %d rows; report %s",
                outcome.evaluated,
                outcome.rows,
                report_uri,
            )
            return self.keep_for_lineage(summary)
        message = validation.failure_message(outcome, data_uri)
        if self.on_failure == "warn":
            self.log.warning("%s\non_failure='warn': the task succeeds. Report: %s", message, report_uri)
            return self.keep_for_lineage(summary)
        context["ti"].xcom_push(key="return_value", value=self.keep_for_lineage(summary))
        raise AirflowFailException(f"{message}\nReport: {report_uri}")
