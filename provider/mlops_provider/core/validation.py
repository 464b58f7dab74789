"""Great Expectations 1.x validation of a DataFrame: suite loading, validation, summary, HTML report.

No Airflow in here: :class:`~mlops_provider.operators.validation.ValidateDataOperator` reads the data,
calls :func:`load_suite_spec`, :func:`build_suite`, :func:`validate_frame`, then writes what
:func:`result_document` and :func:`render_html` return. Suite reading and building live in
:mod:`~mlops_provider.core.validation_suite`, the outputs (summary, failure message, JSON document, HTML
page) in :mod:`~mlops_provider.core.validation_report`; both are re-exported here. Partitions of one
dataset validated apart are combined into one verdict by :mod:`~mlops_provider.core.validation_combine`.

Why it is not just ``ExpectationSuite(**spec)`` + ``batch.validate(suite)``:

* GX logs and *drops* an expectation it cannot build (unknown type, bad argument): a typo would then
  validate as a success. :func:`build_suite` builds each expectation itself, names every bad one
  (index and type) and checks that the loaded suite still holds them all.
* Empty data passes row-level expectations vacuously: :func:`validate_frame` fails a 0-row batch.
* ``SUMMARY``/``COMPLETE`` result formats cost 2-3x ``BOOLEAN_ONLY`` on large data, so the suite runs
  with ``BOOLEAN_ONLY`` and only the failed expectations run again with ``BASIC`` (a few unexpected
  values each). A passing suite costs one boolean-only run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.core.validation_report import (
    MAX_VALUE_CHARS,
    failure_message,
    render_html,
    result_document,
    summary,
)
from mlops_provider.core.validation_suite import (
    GX_LOGGER,
    SuiteError,
    build_suite,
    load_suite,
    load_suite_spec,
    parse_suite_json,
    quiet_gx_logging,
    without_columns,
)

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite

__all__ = [
    "GX_LOGGER",
    "without_columns",
    "FailedExpectation",
    "SuiteError",
    "ValidationOutcome",
    "build_suite",
    "failure_message",
    "json_safe",
    "load_suite",
    "load_suite_spec",
    "parse_suite_json",
    "quiet_gx_logging",
    "render_html",
    "result_document",
    "summary",
    "validate_frame",
]

DETAIL_RESULT_FORMAT = "BASIC"
MAX_ERROR_CHARS = 500
_MISSING_COLUMN = re.compile(r'column "(?P<column>.+?)" in BatchData does not exist')
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list", "column_set")
# Expectations whose failure on a missing column means "the column is missing".
_SCHEMA_KINDS = (
    "expect_column_to_exist",
    "expect_table_columns_to_match_set",
    "expect_table_columns_to_match_ordered_list",
)


# -- validation --------------------------------------------------------------------------------------
@dataclass
class FailedExpectation:
    type: str
    column: str | None
    unexpected_count: int | None
    unexpected_values: list[Any]
    error: str | None
    observed_value: Any = None
    note: str | None = None  # how a combined verdict was reached (partitions)

    def as_dict(self) -> dict[str, Any]:
        found = {
            "type": self.type,
            "column": self.column,
            "unexpected_count": self.unexpected_count,
            "unexpected_values": self.unexpected_values,
            "error": self.error,
            "observed_value": _bounded(self.observed_value),
        }
        return {**found, "note": self.note} if self.note else found


@dataclass
class ValidationOutcome:
    """What a validation found; ``result`` is GX's full result as strict JSON-safe data."""

    success: bool
    suite_name: str
    rows: int
    columns: list[str]
    evaluated: int
    failed: list[FailedExpectation]
    result: dict[str, Any]
    error: str | None = None
    gx_version: str = ""
    started_at: str = ""
    duration_s: float = 0.0
    details: list[dict[str, Any]] = field(default_factory=list)


def json_safe(value: Any, max_chars: int | None = MAX_VALUE_CHARS) -> Any:
    """``value`` as strict JSON data: NaN/inf become None, numpy scalars Python ones, long text cut."""
    if value is None:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # np.float64 subclasses float: make it a plain float
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value if max_chars is None or len(value) <= max_chars else value[:max_chars] + "..."
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, max_chars) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, max_chars) for v in value]
    try:
        if value != value:  # NaT, pd.NA-like and numpy NaN scalars
            return None
    except (TypeError, ValueError):  # pd.NA refuses bool()
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return json_safe(item(), max_chars)
        except (TypeError, ValueError):
            pass
    isoformat = getattr(value, "isoformat", None)  # pandas Timestamp
    if callable(isoformat):
        try:
            return isoformat()
        except (TypeError, ValueError):  # NaT
            return None
    text = str(value)
    return text if max_chars is None or len(text) <= max_chars else text[:max_chars] + "..."


def _bounded(value: Any) -> Any:
    """``value`` if its JSON is short, else its JSON cut to ``MAX_VALUE_CHARS`` (keeps XCom small)."""
    text = json.dumps(value, default=str)
    return value if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "..."


def _exception_messages(exception_info: Any) -> list[str]:
    """Messages from GX's ``exception_info``, which comes in two shapes:
    ``{"raised_exception": bool, "exception_message": str, ...}`` or, when a metric failed (e.g. a
    missing column), ``{"<MetricConfigurationID ...>": {"raised_exception": ..., ...}, ...}``."""
    if not isinstance(exception_info, Mapping):
        return []
    entries = [exception_info] if "raised_exception" in exception_info else list(exception_info.values())
    messages = []
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "exception without a message")
            if message not in messages:
                messages.append(message)
    return messages


def _column_of(kwargs: Mapping[str, Any]) -> str | None:
    for key in _COLUMN_KWARGS:
        value = kwargs.get(key)
        if isinstance(value, str):
            return value
    column_list = kwargs.get("column_list")
    if isinstance(column_list, list) and column_list and all(isinstance(c, str) for c in column_list):
        return ", ".join(column_list)
    return None


def _missing_columns(kwargs: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    present = set(columns)
    names: list[Any] = [kwargs.get(k) for k in _COLUMN_KWARGS]
    for key in _COLUMN_LIST_KWARGS:
        if isinstance(kwargs.get(key), list | tuple):
            names.extend(kwargs[key])
    return [n for n in names if isinstance(n, str) and n not in present]


def _error_of(
    kind: str, kwargs: Mapping[str, Any], exception_info: Any, columns: Sequence[str]
) -> str | None:
    messages = _exception_messages(exception_info)
    missing = [m.group("column") for m in map(_MISSING_COLUMN.search, messages) if m]
    if kind in _SCHEMA_KINDS or missing:
        missing = sorted(set(missing) | set(_missing_columns(kwargs, columns)))
    if missing:
        return "missing column(s) " + ", ".join(map(repr, missing)) + " (not in the data)"
    if messages:
        text = "; ".join(m.strip().splitlines()[0] for m in messages if m.strip())
        return text[:MAX_ERROR_CHARS]
    return None


def _key(config: Mapping[str, Any]) -> str:
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    return json.dumps([config.get("type"), kwargs], sort_keys=True, default=str)


def _whole_frame_batch(frame: pd.DataFrame) -> Any:
    """A GX batch over the whole frame, in an ephemeral context with progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return (
        context.data_sources.add_pandas("mlops")
        .add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )


def _with_details(
    batch: Any, suite: ExpectationSuite, results: list[dict[str, Any]], max_unexpected_values: int
) -> list[dict[str, Any]]:
    """``results`` where each failed expectation that did not raise is run again for its counts and
    a few unexpected values (``DETAIL_RESULT_FORMAT``)."""
    import great_expectations as gx

    rerun_keys = {
        _key(r["expectation_config"])
        for r in results
        if not r.get("success") and not _exception_messages(r.get("exception_info"))
    }
    if not rerun_keys:
        return results
    again = [e for e in suite.expectations if _key(e.configuration.to_json_dict()) in rerun_keys]
    detailed = batch.validate(
        gx.ExpectationSuite(name=suite.name, expectations=again),
        result_format={
            "result_format": DETAIL_RESULT_FORMAT,
            "partial_unexpected_count": max(1, max_unexpected_values),
        },
    ).to_json_dict()
    by_key = {_key(r["expectation_config"]): r for r in detailed.get("results") or []}
    return [by_key.get(_key(r["expectation_config"]), r) for r in results]


def _findings(
    results: list[dict[str, Any]], columns: Sequence[str], max_unexpected_values: int
) -> tuple[list[FailedExpectation], list[dict[str, Any]]]:
    """The failed expectations, and one detail entry per expectation (for the HTML report)."""
    failed: list[FailedExpectation] = []
    details: list[dict[str, Any]] = []
    for r in results:
        config = r.get("expectation_config") or {}
        kind = str(config.get("type"))
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        res = r.get("result") or {}
        error = None if r.get("success") else _error_of(kind, kwargs, r.get("exception_info"), columns)
        values = res.get("partial_unexpected_list") or []
        entry = FailedExpectation(
            type=kind,
            column=_column_of(kwargs),
            unexpected_count=res.get("unexpected_count"),
            unexpected_values=json_safe(list(values[:max_unexpected_values])),
            error=error,
            observed_value=json_safe(res.get("observed_value")),
        )
        details.append({"success": bool(r.get("success")), "kwargs": json_safe(kwargs), "failure": entry})
        if not r.get("success"):
            failed.append(entry)
    return failed, details


def validate_frame(
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    data_name: str = "dataset",
    max_unexpected_values: int = 5,
    partition: bool = False,
) -> ValidationOutcome:
    """
    Run ``suite`` on ``frame`` with an ephemeral GX context. A 0-row frame never succeeds.

    :param data_name: how errors name the data (its URI).
    :param max_unexpected_values: at most this many unexpected values per failed expectation.
    :param partition: ``frame`` is one partition of a dataset: every expectation reports its counts
        (``DETAIL_RESULT_FORMAT``, for :mod:`~mlops_provider.core.validation_combine`), and 0 rows is
        no failure by itself (the combined verdict judges the total).
    """
    quiet_gx_logging()
    import great_expectations as gx

    quiet_gx_logging()
    started = dt.datetime.now(dt.UTC)
    batch = _whole_frame_batch(frame)
    if partition:  # BASIC costs about what BOOLEAN_ONLY does (1M rows x 9 columns: 0.44 s vs 0.37 s)
        detail = {
            "result_format": DETAIL_RESULT_FORMAT,
            "partial_unexpected_count": max(1, max_unexpected_values),
        }
        first = batch.validate(suite, result_format=detail).to_json_dict()
        results = list(first.get("results") or [])
    else:
        first = batch.validate(suite, result_format="BOOLEAN_ONLY").to_json_dict()
        results = _with_details(batch, suite, list(first.get("results") or []), max_unexpected_values)
    first["results"] = results
    first.setdefault("meta", {})["result_format"] = (
        DETAIL_RESULT_FORMAT if partition else f"BOOLEAN_ONLY; failed ones {DETAIL_RESULT_FORMAT}"
    )

    columns = [str(c) for c in frame.columns]
    failed, details = _findings(results, columns, max_unexpected_values)
    rows = len(frame)
    statistics = first.get("statistics") or {}
    return ValidationOutcome(
        success=bool(first.get("success")) and (rows > 0 or partition),
        suite_name=suite.name,
        rows=rows,
        columns=columns,
        evaluated=int(statistics.get("evaluated_expectations", len(results))),
        failed=failed,
        result=json_safe(first, max_chars=None),
        error=f"dataset {data_name} has 0 rows" if rows == 0 and not partition else None,
        gx_version=str(gx.__version__),
        started_at=started.isoformat(timespec="seconds"),
        duration_s=(dt.datetime.now(dt.UTC) - started).total_seconds(),
        details=details,
    )
