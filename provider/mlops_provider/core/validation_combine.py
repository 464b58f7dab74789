"""One verdict from the validations of a dataset's partitions. No Airflow in here.

A batch too large for one task is validated in partitions: one mapped task per group of files of a
:class:`~mlops_provider.core.manifest.Plan`, each writing its full GX result with every expectation's
counts (``validate_frame(..., partition=True)``). :func:`combine` judges the whole dataset from them:

* row-level expectations (GX column, column-pair and multicolumn *map* expectations): exact. Element,
  missing and unexpected counts add up and success is recomputed as GX does it:
  ``(considered - unexpected) / considered >= mostly`` with ``considered = element - missing``, true
  when nothing is considered. ``mostly`` may hold for the batch while one partition misses it alone.
* table row count (``expect_table_row_count_to_be_between`` / ``_to_equal``): exact, on the total.
* ``expect_column_min_to_be_between`` / ``expect_column_max_to_be_between``: exact for numbers (the
  minimum of the partitions' minimums, the maximum of their maximums).
* schema (``expect_column_to_exist``, column set, ordered list and count): exact, every partition
  must pass (all partitions must have the same columns, as one file set read whole must).
* all others (mean, median, stdev, quantiles, sums, distinct or unique values, ordering, z-scores, a
  type check without counts, dates as min/max, ...) cannot be combined exactly: they pass only when
  every partition with rows passed, and the outcome lists them as judged per partition.

The verdict fails when a partition has no result (its mapped task did not run or failed), validated
another plan, suite or number of rows than the plan counts, or raised; a dataset with 0 rows in total
never passes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.core.manifest import group_name
from mlops_provider.core.validation import (
    ValidationOutcome,
    _column_of,
    _exception_messages,
    _findings,
    _key,
    json_safe,
)
from mlops_provider.core.validation_partitions import MAX_NAMES, Partial, count, names

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

ROWS, ROW_COUNT, MIN, MAX, SCHEMA, EACH = "rows", "row_count", "min", "max", "schema", "each"
ROW_COUNT_KINDS = ("expect_table_row_count_to_be_between", "expect_table_row_count_to_equal")
EXTREME_KINDS = {"expect_column_min_to_be_between": MIN, "expect_column_max_to_be_between": MAX}
SCHEMA_KINDS = frozenset(
    {
        "expect_column_to_exist",
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
    }
)
# Map expectations whose verdict on a row depends on other rows: not combinable from counts.
CROSS_ROW_KINDS = frozenset(
    {
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_multicolumn_values_to_be_unique",
        "expect_column_values_to_be_increasing",
        "expect_column_values_to_be_decreasing",
        "expect_column_value_z_scores_to_be_less_than",
        "expect_column_values_to_not_be_outliers",
    }
)
MAX_ISSUES = 10


@dataclass
class Combined:
    outcome: ValidationOutcome
    judged_per_partition: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def combine_rule(expectation: Any) -> str:
    """How a built GX expectation combines over partitions (one of the module's rules)."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    kind = expectation.expectation_type
    if kind in ROW_COUNT_KINDS:
        return ROW_COUNT
    if kind in EXTREME_KINDS:
        return EXTREME_KINDS[kind]
    if kind in SCHEMA_KINDS:
        return SCHEMA
    maps = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    return ROWS if kind not in CROSS_ROW_KINDS and isinstance(expectation, maps) else EACH


def suite_rules(suite: ExpectationSuite) -> list[tuple[str, dict[str, Any]]]:
    """Each expectation of ``suite`` as (rule, its configuration as JSON data)."""
    return [(combine_rule(e), e.configuration.to_json_dict()) for e in suite.expectations]


def describe(config: Mapping[str, Any]) -> str:
    column = _column_of(config.get("kwargs") or {})
    return str(config.get("type")) + (f" on column {column!r}" if column else "")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- combining one expectation ------------------------------------------------------------------------
Verdict = tuple[bool, dict[str, Any], str | None]  # success, GX-like result, note


def _between(value: float, kwargs: Mapping[str, Any]) -> bool | None:
    """GX's min/max test (``strict_min``/``strict_max``); None when a bound is not a number."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    strict_min, strict_max = kwargs.get("strict_min") or False, kwargs.get("strict_max") or False
    if any(b is not None and not _number(b) for b in (low, high)) or not (
        isinstance(strict_min, bool) and isinstance(strict_max, bool)
    ):
        return None
    above = low is None or (value > low if strict_min else value >= low)
    below = high is None or (value < high if strict_max else value <= high)
    return above and below


def _rows(
    config: Mapping[str, Any], got: list[tuple[Partial, dict[str, Any]]], max_values: int
) -> Verdict | None:
    mostly = (config.get("kwargs") or {}).get("mostly", 1.0)
    found: list[dict[str, Any]] = [r["result"] if isinstance(r.get("result"), dict) else {} for _, r in got]
    keys = ("element_count", "unexpected_count")
    if not _number(mostly) or not found or not all(count(c.get(k)) for c in found for k in keys):
        return None
    if not all(count(c.get("missing_count", 0)) for c in found):
        return None
    element = sum(c["element_count"] for c in found)
    unexpected = sum(c["unexpected_count"] for c in found)
    missing = sum(c.get("missing_count", 0) for c in found)
    considered = element - missing
    success = element == 0 or considered <= 0 or (considered - unexpected) / considered >= mostly
    values = [v for c in found for v in (c.get("partial_unexpected_list") or [])][: max(0, max_values)]
    result: dict[str, Any] = {
        "element_count": element,
        "unexpected_count": unexpected,
        "unexpected_percent": unexpected / considered * 100 if considered > 0 else None,
        "partial_unexpected_list": values,
    }
    if any("missing_count" in c for c in found):
        result["missing_count"] = missing
    alone = [p.name for p, r in got if not r["success"]]
    note: str | None = (
        None if success else f"{unexpected} of {considered} value(s) over {len(got)} partition(s)"
    )
    if success and alone:
        note = (
            f"passes on the whole batch (mostly {mostly}) although partition(s) {names(alone)} failed alone"
        )
    return success, result, note


def _row_count(config: Mapping[str, Any], total: int) -> Verdict:
    kwargs = config.get("kwargs") or {}
    if config.get("type") == "expect_table_row_count_to_equal":
        value = kwargs.get("value")
        success: bool | None = total == value if _number(value) else None
    else:
        success = _between(total, kwargs)
    if success is None:
        return (
            False,
            {"observed_value": total},
            "its bounds are not numbers: cannot judge the total row count",
        )
    return success, {"observed_value": total}, f"judged on the total row count ({total})"


def _extreme(
    rule: str, config: Mapping[str, Any], got: list[tuple[Partial, dict[str, Any]]]
) -> Verdict | None:
    observed = [(r.get("result") or {}).get("observed_value") for p, r in got if p.rows > 0]
    values = [v for v in observed if v is not None]
    if not all(_number(v) for v in values):  # dates, text: judged per partition
        return None
    what = "minimum" if rule == MIN else "maximum"
    if not values:
        return False, {"observed_value": None}, f"no {what} in any partition"
    value = min(values) if rule == MIN else max(values)
    success = _between(value, config.get("kwargs") or {})
    if success is None:
        return None
    return success, {"observed_value": value}, f"the {what} over {len(values)} partition(s)"


def _every(got: list[tuple[Partial, dict[str, Any]]], per_partition: bool) -> Verdict:
    """Passes when every partition passed (with rows, when ``per_partition``: an empty partition has
    no mean, median, ... of its own)."""
    judged = [(p, r) for p, r in got if p.rows > 0 or not per_partition] or got
    failing = [(p, r) for p, r in judged if not r["success"]]
    first = (failing or judged)[0][1] if got else {}
    result = dict(first.get("result") or {})
    if per_partition:
        result["partitions"] = {
            p.name: {"success": r["success"], "observed_value": (r.get("result") or {}).get("observed_value")}
            for p, r in judged
        }
    note = "judged per partition (cannot be combined exactly)" if per_partition else None
    if failing:
        where = f"failed in partition(s) {names([p.name for p, _ in failing])}"
        note = f"{note}: {where}" if note else where
    return not failing, result, note


def _combine_one(
    rule: str, config: dict[str, Any], got: list[tuple[Partial, dict[str, Any]]], total: int, max_values: int
) -> tuple[dict[str, Any], bool]:
    """The combined GX-like result of one expectation, and whether it was judged per partition."""
    raised = [(p, r) for p, r in got if _exception_messages(r.get("exception_info"))]
    verdict: Verdict | None = None
    if not got:
        verdict = False, {}, "no partition's result has it"
    elif raised:
        verdict = False, {}, f"raised in partition(s) {names([p.name for p, _ in raised])}"
    elif rule == ROWS:
        verdict = _rows(config, got, max_values)
    elif rule == ROW_COUNT:
        verdict = _row_count(config, total)
    elif rule in (MIN, MAX):
        verdict = _extreme(rule, config, got)
    elif rule == SCHEMA:
        verdict = _every(got, per_partition=False)
    judged = verdict is None
    success, result, note = verdict if verdict is not None else _every(got, per_partition=True)
    info = raised[0][1].get("exception_info") if raised else {"raised_exception": False}
    meta = {"rule": EACH if judged else rule, "note": note, "partitions": len(got)}
    combined = {"success": success, "expectation_config": config, "result": result, "exception_info": info}
    return {**combined, "meta": meta}, judged


# -- the whole dataset --------------------------------------------------------------------------------
def _issues(
    found: Mapping[int, Partial], planned: Mapping[int, int], suite_name: str, keys: set[str]
) -> list[str]:
    """What makes the partitions' results unfit to combine: rows or columns unlike the plan or each
    other, another suite."""
    issues = []
    first = found[min(found)] if found else None
    for part in sorted(found):
        p = found[part]
        if p.rows != planned.get(part):
            issues.append(
                f"partition {p.name} validated {p.rows} rows, the plan counts {planned.get(part)} "
                "(its files changed after planning?)"
            )
        if first is not None and p.columns != first.columns:
            differ = sorted(set(p.columns) ^ set(first.columns))[:MAX_NAMES]
            issues.append(
                f"partition {p.name} has other columns than {first.name} ({differ or 'their order'})"
            )
        own = {_key(r["expectation_config"]) for r in p.results}
        if p.suite != suite_name or own != keys:
            issues.append(
                f"partition {p.name} validated another suite ({p.suite!r}: {len(keys - own)} expectation(s) "
                f"of {suite_name!r} missing, {len(own - keys)} not in it)"
            )
    return issues


def _combine_all(
    expectations: Sequence[tuple[str, dict[str, Any]]], found: Mapping[int, Partial], max_values: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """The combined result of each expectation, and those judged per partition."""
    rows = sum(p.rows for p in found.values())
    by_key = {part: {_key(r["expectation_config"]): r for r in p.results} for part, p in found.items()}
    results, judged = [], []
    for rule, config in expectations:
        key = _key(config)
        got = [(found[part], by_key[part][key]) for part in sorted(found) if key in by_key[part]]
        result, per_partition = _combine_one(rule, json_safe(config, None), got, rows, max_values)
        results.append(result)
        if per_partition:
            judged.append(describe(config))
    return results, judged


def combine(
    expectations: Sequence[tuple[str, dict[str, Any]]],
    partials: Mapping[int, Partial | None],
    planned: Mapping[int, int],
    suite_name: str,
    data_name: str,
    max_unexpected_values: int = 5,
    problems: Sequence[str] = (),
) -> Combined:
    """
    One outcome for the dataset from its partitions' results (see the module's rules).

    :param expectations: the suite's expectations as (rule, configuration), from :func:`suite_rules`.
    :param partials: each partition's result by plan group index; None for one that has none.
    :param planned: the plan's row count of each group (every group of the plan).
    :param problems: what went wrong reading partitions' results (each names its partition).
    """
    started = dt.datetime.now(dt.UTC)
    found = {part: p for part, p in partials.items() if p is not None and part in planned}
    missing = [group_name(part) for part in sorted(planned) if found.get(part) is None]
    issues = list(problems)
    if missing:
        issues.append(f"no result from partition(s) {names(missing)} (its mapped task did not run or failed)")
    issues += _issues(found, planned, suite_name, {_key(config) for _, config in expectations})
    rows = sum(p.rows for p in found.values())
    if rows == 0:
        issues.append(f"dataset {data_name} has 0 rows")
    results, judged = _combine_all(expectations, found, max_unexpected_values)
    columns = found[min(found)].columns if found else []
    failed, details = _findings(results, columns, max_unexpected_values)
    for detail, result in zip(details, results, strict=True):
        detail["failure"].note = result["meta"]["note"]
    passed = sum(1 for r in results if r["success"])
    success = not issues and passed == len(results)
    statistics = {"evaluated_expectations": len(results), "successful_expectations": passed}
    meta = {"combined_from_partitions": len(planned), "problems": issues}
    document = {"success": success, "suite_name": suite_name, "results": results, "statistics": statistics}
    shown = issues[:MAX_ISSUES] + [f"... and {len(issues) - MAX_ISSUES} more"] * (len(issues) > MAX_ISSUES)
    outcome = ValidationOutcome(
        success=success,
        suite_name=suite_name,
        rows=rows,
        columns=columns,
        evaluated=len(results),
        failed=failed,
        result=json_safe({**document, "meta": meta}, None),
        error="; ".join(shown) or None,
        gx_version=next((p.gx_version for p in found.values() if p.gx_version), ""),
        started_at=started.isoformat(timespec="seconds"),
        duration_s=(dt.datetime.now(dt.UTC) - started).total_seconds(),
        details=details,
    )
    return Combined(outcome, judged, missing)
