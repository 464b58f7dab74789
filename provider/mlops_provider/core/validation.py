"""Great Expectations 1.x validation of a DataFrame: suite loading, validation, summary, HTML report.

No Airflow in here: :class:`~mlops_provider.operators.validation.ValidateDataOperator` reads the data,
calls :func:`load_suite_spec`, :func:`build_suite`, :func:`validate_frame`, then writes what
:func:`result_document` and :func:`render_html` return.

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
import difflib
import html
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations import ExpectationSuite

GX_LOGGER = "great_expectations"
DETAIL_RESULT_FORMAT = "BASIC"
MAX_VALUE_CHARS = 200
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


class SuiteError(ValueError):
    """An expectation suite cannot be read or holds expectations GX cannot build."""


def quiet_gx_logging() -> None:
    """
    Keep GX's INFO lines out of task logs: call before importing GX (~200 lines on import) and after
    (GX sets one of its own module loggers to INFO explicitly). A stricter level set by the user stays.
    """
    for name, logger in [(GX_LOGGER, logging.getLogger(GX_LOGGER))] + [
        (name, obj)
        for name, obj in list(logging.root.manager.loggerDict.items())
        if name.startswith(GX_LOGGER + ".") and isinstance(obj, logging.Logger)
    ]:
        if (
            name == GX_LOGGER
            and logger.level < logging.WARNING
            or name != GX_LOGGER
            and logging.NOTSET < logger.level < logging.WARNING
        ):
            logger.setLevel(logging.WARNING)


# -- suites ------------------------------------------------------------------------------------------
def parse_suite_json(raw: bytes | str, source: str) -> dict[str, Any]:
    """Parse the text of a GX suite JSON file; errors name ``source`` and the position."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        spec = json.loads(text)
    except UnicodeDecodeError as err:
        raise SuiteError(f"{source}: suite file is not UTF-8 text (offset {err.start})") from None
    except json.JSONDecodeError as err:
        raise SuiteError(
            f"{source}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    if not isinstance(spec, dict):
        raise SuiteError(f"{source}: a suite must be a JSON object, got {type(spec).__name__}")
    return spec


def load_suite_spec(
    suite: str | Mapping[str, Any], read_bytes: Callable[[str], bytes] | None = None
) -> tuple[dict[str, Any], str]:
    """
    The suite as a dict and a description of where it came from.

    :param suite: a dict (a GX 1.x suite) or the path/URI of a suite JSON file (already resolved).
    :param read_bytes: reads a path/URI; defaults to the local filesystem.
    """
    if isinstance(suite, Mapping):
        return dict(suite), "suite given as a dict"
    if not isinstance(suite, str) or not suite.strip():
        raise SuiteError(f"suite must be a dict or the path of a suite JSON file, got {suite!r}")
    reader = read_bytes or _read_local
    try:
        raw = reader(suite)
    except FileNotFoundError:
        raise SuiteError(f"{suite}: suite file not found") from None
    except OSError as err:
        raise SuiteError(f"{suite}: cannot read the suite file ({type(err).__name__}: {err})") from None
    return parse_suite_json(raw, suite), suite


def _read_local(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _describe(index: int, exp: Any) -> str:
    kind = exp.get("type") if isinstance(exp, Mapping) else None
    where = f"expectation #{index}"
    if isinstance(kind, str):
        where += f" {kind!r}"
        kwargs = exp.get("kwargs")
        if isinstance(kwargs, Mapping) and isinstance(kwargs.get("column"), str):
            where += f" (column {kwargs['column']!r})"
    return where


def _pydantic_errors(err: Exception) -> str | None:
    errors = getattr(err, "errors", None)
    if not callable(errors):
        return None
    try:
        items = errors()
    except Exception:
        return None
    parts, seen = [], set()
    for item in items:
        loc = ".".join(str(p) for p in item.get("loc", ()) if p != "__root__")
        if loc and loc in seen:  # a union type reports one error per member: keep the first
            continue
        seen.add(loc)
        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
    return "; ".join(parts) or None


def _build_one(index: int, exp: Any) -> tuple[Any, str | None]:
    """Build one expectation; return (expectation, None) or (None, problem)."""
    import great_expectations.exceptions as gx_exceptions
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    where = _describe(index, exp)
    if not isinstance(exp, Mapping):
        return None, f"{where}: must be an object with 'type' and 'kwargs', got {type(exp).__name__}"
    if "type" not in exp and "expectation_type" in exp:
        return None, f"{where}: 'expectation_type' is the GX 0.x format; GX 1.x suites use 'type'"
    kind = exp.get("type")
    if not isinstance(kind, str) or not kind:
        return None, f"{where}: missing or invalid 'type'"
    if not isinstance(exp.get("kwargs", {}), Mapping):
        return None, f"{where}: 'kwargs' must be an object"
    config = {"kwargs": {}, **exp}
    try:
        return ExpectationConfiguration(**config).to_domain_obj(), None
    except gx_exceptions.ExpectationNotFoundError:
        close = difflib.get_close_matches(kind, list_registered_expectation_implementations(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return None, f"{where}: unknown expectation type{hint}"
    except gx_exceptions.InvalidExpectationConfigurationError as err:
        return None, f"{where}: invalid configuration ({err})"
    except TypeError as err:
        return None, f"{where}: invalid field ({err})"
    except ValueError as err:  # pydantic's ValidationError
        return None, f"{where}: invalid argument(s): {_pydantic_errors(err) or err}"


def build_suite(spec: Mapping[str, Any], source: str, default_name: str = "suite") -> ExpectationSuite:
    """
    A GX ``ExpectationSuite`` holding every expectation of ``spec``; raise :class:`SuiteError` naming
    each expectation GX cannot build (index, type, column, reason) instead of dropping it.
    """
    quiet_gx_logging()
    import great_expectations as gx

    quiet_gx_logging()
    expectations = spec.get("expectations")
    if not isinstance(expectations, list):
        raise SuiteError(f"{source}: 'expectations' must be a list of expectations")
    if not expectations:
        raise SuiteError(f"{source}: the suite has no expectations (it would pass any data)")
    built, problems = [], []
    for index, exp in enumerate(expectations):
        obj, problem = _build_one(index, exp)
        if problem:
            problems.append(problem)
        else:
            built.append(obj)
    if problems:
        raise SuiteError(f"{source}: {len(problems)} invalid expectation(s): " + "; ".join(problems))
    name = spec.get("name") or spec.get("expectation_suite_name") or default_name
    try:
        suite = gx.ExpectationSuite(
            name=str(name),
            expectations=built,
            suite_parameters=spec.get("suite_parameters") or None,
            meta=spec.get("meta") or None,
        )
    except (TypeError, ValueError) as err:
        raise SuiteError(f"{source}: invalid suite ({err})") from None
    if len(suite.expectations) != len(expectations):  # GX drops what it cannot load: never silently
        kept = {id(e) for e in suite.expectations}
        dropped = [_describe(i, expectations[i]) for i, e in enumerate(built) if id(e) not in kept]
        raise SuiteError(
            f"{source}: GX dropped {len(expectations) - len(suite.expectations)} expectation(s) while "
            f"loading: {', '.join(dropped) or 'unknown'}"
        )
    return suite


# -- validation --------------------------------------------------------------------------------------
@dataclass
class FailedExpectation:
    type: str
    column: str | None
    unexpected_count: int | None
    unexpected_values: list[Any]
    error: str | None
    observed_value: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "column": self.column,
            "unexpected_count": self.unexpected_count,
            "unexpected_values": self.unexpected_values,
            "error": self.error,
            "observed_value": _bounded(self.observed_value),
        }


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
        if isinstance(kwargs.get(key), str):
            return kwargs[key]
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


def validate_frame(
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    data_name: str = "dataset",
    max_unexpected_values: int = 5,
) -> ValidationOutcome:
    """
    Run ``suite`` on ``frame`` with an ephemeral GX context. A 0-row frame never succeeds.

    :param data_name: how errors name the data (its URI).
    :param max_unexpected_values: at most this many unexpected values per failed expectation.
    """
    quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    quiet_gx_logging()
    started = dt.datetime.now(dt.UTC)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("mlops")
        .add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    first = batch.validate(suite, result_format="BOOLEAN_ONLY").to_json_dict()
    results: list[dict[str, Any]] = list(first.get("results") or [])

    # Failed expectations that did not raise: run them again for counts and a few unexpected values.
    rerun_keys = {
        _key(r["expectation_config"])
        for r in results
        if not r.get("success") and not _exception_messages(r.get("exception_info"))
    }
    if rerun_keys:
        again = [e for e in suite.expectations if _key(e.configuration.to_json_dict()) in rerun_keys]
        detail_suite = gx.ExpectationSuite(name=suite.name, expectations=again)
        detailed = batch.validate(
            detail_suite,
            result_format={
                "result_format": DETAIL_RESULT_FORMAT,
                "partial_unexpected_count": max(1, max_unexpected_values),
            },
        ).to_json_dict()
        by_key = {_key(r["expectation_config"]): r for r in detailed.get("results") or []}
        results = [by_key.get(_key(r["expectation_config"]), r) for r in results]
    first["results"] = results
    first.setdefault("meta", {})["result_format"] = f"BOOLEAN_ONLY; failed ones {DETAIL_RESULT_FORMAT}"

    columns = [str(c) for c in frame.columns]
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

    rows = len(frame)
    error = f"dataset {data_name} has 0 rows" if rows == 0 else None
    statistics = first.get("statistics") or {}
    return ValidationOutcome(
        success=bool(first.get("success")) and rows > 0,
        suite_name=suite.name,
        rows=rows,
        columns=columns,
        evaluated=int(statistics.get("evaluated_expectations", len(results))),
        failed=failed,
        result=json_safe(first, max_chars=None),
        error=error,
        gx_version=str(gx.__version__),
        started_at=started.isoformat(timespec="seconds"),
        duration_s=(dt.datetime.now(dt.UTC) - started).total_seconds(),
        details=details,
    )


# -- outputs -----------------------------------------------------------------------------------------
def summary(
    outcome: ValidationOutcome,
    *,
    data_uri: str,
    report_uri: str | None,
    result_uri: str | None,
    status: str,
    max_failed: int = 50,
) -> dict[str, Any]:
    """The small XCom summary; the list of failed expectations is bounded by ``max_failed``."""
    return {
        "success": outcome.success,
        "status": status,
        "data_uri": data_uri,
        "suite": outcome.suite_name,
        "rows": outcome.rows,
        "evaluated": outcome.evaluated,
        "failed": len(outcome.failed),
        "failed_expectations": [f.as_dict() for f in outcome.failed[:max_failed]],
        "error": outcome.error,
        "report_uri": report_uri,
        "result_uri": result_uri,
    }


def failure_message(outcome: ValidationOutcome, data_uri: str, max_items: int = 20) -> str:
    """One message listing why the validation failed (for the task log and the exception)."""
    lines = [f"Validation of {data_uri} with suite {outcome.suite_name!r} failed"]
    if outcome.error:
        lines.append(f"  - {outcome.error}")
    for f in outcome.failed[:max_items]:
        text = f"  - {f.type}" + (f" on column {f.column!r}" if f.column else "")
        if f.error:
            text += f": {f.error}"
        elif f.unexpected_count is not None:
            text += f": {f.unexpected_count} unexpected value(s), e.g. {f.unexpected_values}"
        elif f.observed_value is not None:
            text += f": observed {json.dumps(f.observed_value, default=str)[:MAX_VALUE_CHARS]}"
        lines.append(text)
    if len(outcome.failed) > max_items:
        lines.append(f"  ... and {len(outcome.failed) - max_items} more")
    lines.append(f"({len(outcome.failed)} of {outcome.evaluated} expectation(s) failed, {outcome.rows} rows)")
    return "\n".join(lines)


def result_document(outcome: ValidationOutcome, data_uri: str, source: str) -> bytes:
    """The full result as JSON bytes: provenance plus GX's validation result."""
    doc = {
        "data_uri": data_uri,
        "suite": outcome.suite_name,
        "suite_source": source,
        "rows": outcome.rows,
        "columns": outcome.columns,
        "success": outcome.success,
        "error": outcome.error,
        "validated_at": outcome.started_at,
        "great_expectations_version": outcome.gx_version,
        "validation_result": outcome.result,
    }
    return json.dumps(doc, indent=1, allow_nan=False).encode()


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}
.meta{color:#57606a;margin:0 0 16px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}
.cards{display:flex;gap:12px;margin:16px 0;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 16px;min-width:120px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}
th,td{text-align:left;padding:6px 8px;border-top:1px solid #d0d7de;vertical-align:top}
th{background:#f0f3f6}
tr.fail td:first-child{border-left:4px solid #cf222e}tr.pass td:first-child{border-left:4px solid #1a7f37}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-word}
.err{color:#cf222e}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;background:#fff;border:1px solid #d0d7de;padding:10px 16px;border-radius:6px}
dt{color:#57606a}dd{margin:0}
"""


def _esc(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, default=str)
    return html.escape(value)


def render_html(outcome: ValidationOutcome, data_uri: str, source: str, title: str | None = None) -> bytes:
    """A self-contained HTML page (inline CSS, no scripts, no network) describing the validation."""
    ok = outcome.success
    rows_html = []
    ordered = sorted(outcome.details, key=lambda d: d["success"])  # failures first
    for d in ordered:
        f: FailedExpectation = d["failure"]
        if d["success"]:
            finding = "passed"
        elif f.error:
            finding = f'<span class="err">{_esc(f.error)}</span>'
        else:
            parts = []
            if f.unexpected_count is not None:
                parts.append(f"{f.unexpected_count} unexpected value(s)")
            if f.unexpected_values:
                parts.append(f"e.g. <code>{_esc(f.unexpected_values)}</code>")
            if f.observed_value is not None:
                parts.append(f"observed <code>{_esc(f.observed_value)}</code>")
            finding = ", ".join(parts) or "failed"
        rows_html.append(
            f'<tr class="{"pass" if d["success"] else "fail"}"><td>{"pass" if d["success"] else "FAIL"}</td>'
            f"<td><code>{_esc(f.type)}</code></td><td>{_esc(f.column)}</td>"
            f"<td><code>{_esc(d['kwargs'])}</code></td><td>{finding}</td></tr>"
        )
    error = f'<p class="err"><b>{_esc(outcome.error)}</b></p>' if outcome.error else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_esc(title or f"Validation: {outcome.suite_name}")}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>Data validation <span class="badge {"ok" if ok else "bad"}">{"PASSED" if ok else "FAILED"}</span></h1>
<p class="meta">Great Expectations {_esc(outcome.gx_version)} &middot; validated {_esc(outcome.started_at)} UTC
 in {outcome.duration_s:.2f} s</p>
<dl><dt>Suite</dt><dd><code>{_esc(outcome.suite_name)}</code> ({_esc(source)})</dd>
<dt>Data</dt><dd><code>{_esc(data_uri)}</code></dd>
<dt>Columns</dt><dd><code>{_esc(", ".join(outcome.columns))}</code></dd></dl>
{error}
<div class="cards"><div class="card">Rows<b>{outcome.rows}</b></div>
<div class="card">Expectations<b>{outcome.evaluated}</b></div>
<div class="card">Failed<b>{len(outcome.failed)}</b></div>
<div class="card">Passed<b>{outcome.evaluated - len(outcome.failed)}</b></div></div>
<table><thead><tr><th></th><th>Expectation</th><th>Column</th><th>Arguments</th><th>Finding</th></tr></thead>
<tbody>
{"".join(rows_html)}
</tbody></table>
</main></body></html>
"""
    return page.encode()
