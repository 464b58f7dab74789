"""Validate a dataset with a Great Expectations 1.x expectation suite: whole, or in partitions (one mapped
task per group of files) combined into one verdict."""

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

    from mlops_provider.core.manifest import Plan
    from mlops_provider.hooks.data import DataHook

ON_FAILURE_CHOICES = ("fail", "warn")
RESULT_NAME = "validation_result.json"
REPORT_NAME = "validation_report.html"
TEMPLATED = (
    "suite",
    "on_failure",
    "base_dir",
    "data_conn_id",
    "reports_uri",
    "reports_conn_id",
    "optional_columns",
)


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
    :param plan_uri: with ``part``: validate one partition of a batch, the files of group ``part`` of
        the plan (``<output>/_parts/plan.json``, :class:`~mlops_provider.core.manifest.Plan`) at this
        URI; each must be a file ``data_uri`` names. (templated)
    :param part: the plan's group number, from ``.expand(part=plan.output)``.

    **Partitions.** With ``plan_uri`` and ``part`` the task validates its group and does not judge: it
    runs every expectation with counts, writes its result and report under ``<task prefix>/part-<group>/``
    and returns ``status: "partial"`` with ``part``, ``plan_id`` and ``result_uri`` (``success`` is the
    partition's alone; 0 rows is no failure by itself); :class:`CombineValidationOperator` judges.
    """

    template_fields: Sequence[str] = ("data_uri", *TEMPLATED, "plan_uri")
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
        plan_uri: str | None = None,
        part: int | None = None,
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
        self.plan_uri = plan_uri
        self.part = part

    def _validate(self, data: DataHook, frame: Any, name: str, partition: bool) -> tuple[Any, str, list[str]]:
        """Validate ``frame`` (``name`` in messages); (outcome, suite source, skipped expectations)."""
        from mlops_provider.core import validation

        absent = [c for c in self.optional_columns or () if c not in frame.columns]
        suite, source, skipped = _load_suite(self.suite, data, absent)
        if skipped:
            self.log.info("Optional column(s) %s absent: left out %s", absent, "; ".join(skipped))
        self.log.info(
            "Validating %d rows x %d columns with suite %r (%d expectations, from %s)",
            *frame.shape,
            suite.name,
            len(suite.expectations),
            source,
        )
        with airflow_errors(f"Validation of {name}"):
            outcome = validation.validate_frame(
                frame,
                suite,
                data_name=name,
                max_unexpected_values=self.max_unexpected_values,
                partition=partition,
            )
        return outcome, source, skipped

    def execute(self, context: Context) -> dict[str, Any]:
        _check_arguments(self)
        from mlops_provider.core import validation

        validation.quiet_gx_logging()  # before anything imports great_expectations
        from mlops_provider.hooks.data import DataHook

        data = DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir)
        data_uri = data.resolve(self.data_uri)
        if self.plan_uri is not None or self.part is not None:
            return self._validate_part(context, data, data_uri)
        self.log.info("Reading %s", data_uri)
        frame = data.read_frame(data_uri)
        outcome, source, skipped = self._validate(data, frame, data_uri, partition=False)
        del frame
        summary = _publish(self, context, outcome, data_uri, source, skipped)
        return _conclude(self, context, summary, outcome, data_uri)

    def _validate_part(self, context: Context, data: DataHook, data_uri: str) -> dict[str, Any]:
        """Validate the files of group ``part`` of the plan; never judges (see the class doc)."""
        from mlops_provider.core import validation_partitions as partitions

        if self.plan_uri is None or self.part is None:
            raise InvalidInputError(f"{self.task_id}: give plan_uri and part together, not one of them")
        plan, plan_uri = _read_plan(data, self.plan_uri)
        with airflow_errors():
            group = partitions.plan_group(plan, self.part, plan_uri)
            partitions.check_files(group, data.files(data_uri), plan_uri, data_uri)
        folder = partitions.partition_folder(group.index)
        self.log.info("Reading %s of %s: %d file(s)", folder, plan.source, len(group.files))
        with airflow_errors():
            frame = partitions.concat([data.read_frame(f) for f in group.files], group.files)
        outcome, source, skipped = self._validate(data, frame, f"{data_uri} ({folder})", partition=True)
        del frame
        about = {"plan_uri": plan_uri, "plan_id": plan.plan_id, "part": group.index, "files": group.files}
        document = {"partition": about, "skipped_expectations": skipped}
        summary = _publish(
            self, context, outcome, data_uri, source, skipped, folder, document, status="partial"
        )
        summary.update(part=group.index, plan_id=plan.plan_id, files=len(group.files))
        self.log.info(
            "%s: %d rows, %d failed alone (not a verdict)", folder, outcome.rows, len(outcome.failed)
        )
        return self.keep_for_lineage(summary)


class CombineValidationOperator(LeanSetattrMixin, ValidationLineageMixin, BaseOperator):
    """
    One verdict, summary and report for a batch validated in partitions by a mapped
    :class:`ValidateDataOperator`::

        parts = ValidateDataOperator.partial(
            task_id="validate_partitions", data_uri=..., suite=..., plan_uri=...
        ).expand(part=plan.output)  # plan: the task that wrote the plan, returning its group numbers
        combined = CombineValidationOperator(
            task_id="validate_current", validate_task_id="validate_partitions", plan_uri=..., suite=...
        )
        plan >> parts >> combined

    It pulls every mapped summary, reads each partition's full result and combines them by the rules
    of :mod:`mlops_provider.core.validation_combine` (row-level expectations, row count and numeric
    min/max exactly; mean, median, uniqueness, ... only per partition, listed in ``judged_per_partition``).
    A partition without a result fails the verdict naming it; 0 rows in total never pass. It returns
    :class:`ValidateDataOperator`'s summary plus ``partitions``, ``plan_id``, ``judged_per_partition``
    and ``missing_partitions``, writes one JSON result and HTML report (its "Validation report" link),
    and fails without retrying, or warns, per ``on_failure``. Trigger rule by default
    ``all_done_min_one_success``: it judges when partitions failed, and is skipped with a skipped plan.

    :param validate_task_id: the mapped validation task. (templated)
    :param plan_uri: the plan the partitions were validated from. (templated)
    :param data_uri: the dataset, as summary and report name it; default the plan's source. (templated)
    :param suite, on_failure, base_dir, data_conn_id, reports_uri, reports_conn_id,
        max_unexpected_values, optional_columns: as for :class:`ValidateDataOperator`, and the same as
        the partitions' (the same ``reports_uri``, or the results are not found). (templated)
    """

    template_fields: Sequence[str] = ("validate_task_id", "plan_uri", "data_uri", *TEMPLATED)
    template_fields_renderers = {"suite": "json"}
    operator_extra_links = (ValidationReportLink(),)
    ui_color = "#e8f4e4"

    def __init__(
        self,
        *,
        validate_task_id: str,
        plan_uri: str,
        suite: str | Mapping[str, Any],
        on_failure: str = "fail",
        base_dir: str | None = None,
        data_conn_id: str | None = None,
        reports_uri: str | None = None,
        reports_conn_id: str | None = None,
        max_unexpected_values: int = 5,
        optional_columns: Sequence[str] | None = None,
        data_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done_min_one_success")
        super().__init__(**kwargs)
        self.validate_task_id, self.plan_uri, self.suite = validate_task_id, plan_uri, suite
        self.on_failure, self.base_dir, self.data_conn_id = on_failure, base_dir, data_conn_id
        self.reports_uri, self.reports_conn_id = reports_uri, reports_conn_id
        self.max_unexpected_values, self.optional_columns = max_unexpected_values, optional_columns
        self.data_uri = data_uri

    def execute(self, context: Context) -> dict[str, Any]:
        _check_arguments(self)
        from mlops_provider.core import validation

        validation.quiet_gx_logging()  # before anything imports great_expectations
        from mlops_provider.core.validation_combine import combine, suite_rules
        from mlops_provider.hooks.data import DataHook

        data = DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir)
        plan, _ = _read_plan(data, self.plan_uri)
        data_uri = data.resolve(self.data_uri) if self.data_uri else plan.source
        partials, problems = self._partials(context, plan)
        columns: list[str] = next((p.columns for p in partials.values()), [])
        suite, source, skipped = _load_suite(
            self.suite, data, [c for c in self.optional_columns or () if c not in columns]
        )
        self.log.info("Combining %d of %d partition(s) of %s", len(partials), len(plan.groups), plan.source)
        planned, limit = {g.index: g.rows for g in plan.groups}, self.max_unexpected_values
        rules = suite_rules(suite)
        combined = combine(rules, partials, planned, suite.name, data_uri, limit, problems)
        outcome, judged = combined.outcome, combined.judged_per_partition
        about = {"plan_id": plan.plan_id, "partitions": len(plan.groups), "judged_per_partition": judged}
        summary = _publish(self, context, outcome, data_uri, source, skipped, None, about)
        summary.update(about, judged_per_partition=judged[:50], missing_partitions=combined.missing[:50])
        return _conclude(self, context, summary, outcome, data_uri)

    def _partials(self, context: Context, plan: Plan) -> tuple[dict[int, Any], list[str]]:
        """Each partition's result whose summary and file check out, and what is wrong with others."""
        from mlops_provider.core import validation_partitions as partitions
        from mlops_provider.core.paths import reports_root, run_prefix
        from mlops_provider.hooks.data import DataHook

        ti = context["ti"]
        indexes = list(range(len(plan.groups)))
        summaries = ti.xcom_pull(task_ids=self.validate_task_id, map_indexes=indexes) if indexes else []
        prefix = run_prefix(self.reports_uri or reports_root(), ti.dag_id, ti.run_id, self.validate_task_id)

        def expected(part: int) -> str:  # where ValidateDataOperator wrote it (_publish)
            return partitions.result_uri(f"{prefix}/{partitions.partition_folder(part)}/{RESULT_NAME}")

        uris, problems = partitions.summary_uris(list(summaries or []), plan, expected)
        reports = DataHook(conn_id=self.reports_conn_id or self.data_conn_id)
        partials, unreadable = partitions.read_partials(uris, reports.read_bytes_if_exists, plan.plan_id)
        return partials, problems + unreadable


# -- shared by both operators ---------------------------------------------------------------------------
Validation = ValidateDataOperator | CombineValidationOperator


def _check_arguments(task: Validation) -> None:
    if task.on_failure not in ON_FAILURE_CHOICES:
        raise InvalidInputError(
            f"{task.task_id}: on_failure={task.on_failure!r} is not one of {', '.join(ON_FAILURE_CHOICES)}"
        )
    limit = task.max_unexpected_values
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInputError(
            f"{task.task_id}: max_unexpected_values must be an integer >= 0, got {limit!r}"
        )


def _load_suite(suite: Any, data: DataHook, absent: Sequence[str] = ()) -> tuple[Any, str, list[str]]:
    """:func:`~mlops_provider.core.validation_suite.load_suite` with the suite file read through ``data``."""
    from mlops_provider.core.validation_suite import load_suite

    def read(uri: str) -> bytes:
        try:
            return data.read_bytes(uri)
        except DataError as err:
            raise DataError(f"Cannot read the expectation suite: {err}") from err

    with airflow_errors("Invalid expectation suite"):
        return load_suite(suite, data.resolve, read, absent)


def _read_plan(data: DataHook, plan_uri: str) -> tuple[Plan, str]:
    from mlops_provider.core.manifest import Plan

    uri = data.resolve(plan_uri)
    with airflow_errors():
        return Plan.from_json(data.read_bytes(uri), uri), uri


def _publish(
    task: Validation,
    context: Context,
    outcome: Any,
    data_uri: str,
    source: str,
    skipped: list[str],
    folder: str | None = None,
    document: dict[str, Any] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Write the JSON result (with ``document`` keys) and the HTML report under the run's prefix (in
    ``folder`` below it, for a partition); the summary."""
    from mlops_provider.core import validation
    from mlops_provider.core.paths import reports_root, run_prefix
    from mlops_provider.hooks.data import DataHook
    from mlops_provider.links.reports import report_url

    ti = context["ti"]
    prefix = run_prefix(task.reports_uri or reports_root(), ti.dag_id, ti.run_id, ti.task_id)
    prefix = f"{prefix}/{folder}" if folder else prefix
    title = f"Validation: {outcome.suite_name}" + (f" ({folder})" if folder else "")
    reports = DataHook(conn_id=task.reports_conn_id or task.data_conn_id)
    result = validation.result_document(outcome, data_uri, source, **(document or {}))
    result_uri = reports.write_bytes(result, f"{prefix}/{RESULT_NAME}")
    page = validation.render_html(outcome, data_uri, source, title=title)
    report_uri = reports.write_bytes(page, f"{prefix}/{REPORT_NAME}")
    ValidationReportLink.persist(context, report_url(report_uri))
    summary = validation.summary(
        outcome,
        data_uri=data_uri,
        report_uri=report_uri,
        result_uri=result_uri,
        status=status or _status(task, outcome),
        max_failed=10 if folder else 50,  # many partitions' summaries stay small
    )
    return {**summary, "skipped_expectations": skipped[:50]}


def _status(task: Validation, outcome: Any) -> str:
    return "passed" if outcome.success else ("warned" if task.on_failure == "warn" else "failed")


def _conclude(
    task: Validation, context: Context, summary: dict[str, Any], outcome: Any, data_uri: str
) -> dict[str, Any]:
    """Return the summary, or (``on_failure="fail"``) push it and fail without retrying."""
    from mlops_provider.core import validation

    report_uri = summary["report_uri"]
    if outcome.success:
        task.log.info(
            "Validation passed: %d expectations on %d rows; report %s",
            outcome.evaluated,
            outcome.rows,
            report_uri,
        )
        return task.keep_for_lineage(summary)
    message = validation.failure_message(outcome, data_uri)
    if task.on_failure == "warn":
        task.log.warning("%s\non_failure='warn': the task succeeds. Report: %s", message, report_uri)
        return task.keep_for_lineage(summary)
    context["ti"].xcom_push(key="return_value", value=task.keep_for_lineage(summary))
    raise AirflowFailException(f"{message}\nReport: {report_uri}")
