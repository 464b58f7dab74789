"""Column and dataset drift: a vectorised numpy/scipy port of Evidently 0.7's drift methods. No Airflow.

Why not Evidently itself for the decision: its ``DataDriftPreset`` computes each column's test three
times and builds plotly charts even for ``.dict()`` (1M x 20: 95 s, +1 GB), and its default method
flips at 1000 reference rows (p-value tests below, distances above). Here the method is explicit and the scores
are the ones Evidently computes for the same method on the same data (``ValueDrift(column,
method=...)``): the tests in ``tests/unit/core/test_drift.py`` compare them on real data.

Methods (Evidently's names, thresholds and comparison operators):

============== ============ ================================================ ==================
method         kind         score                                            drift when
============== ============ ================================================ ==================
wasserstein    numeric      Wasserstein-1 / max(std(reference), 0.001)       score >= 0.1
jensenshannon  both         JS distance (natural log); categories, or        score >= 0.1
                            Sturges bins on both frames when the reference
                            has > 20 distinct numeric values
ks             numeric      two-sample Kolmogorov-Smirnov p-value            p <= 0.05
chisquare      categorical  chi-square p-value, reference counts scaled      p < 0.05
                            to the current size as expected frequencies
============== ============ ================================================ ==================

``auto`` (the default for both kinds) picks per check, by the smaller frame's row count: ``ks`` and
``chisquare`` up to ``AUTO_P_VALUE_MAX_ROWS`` (1000) rows, ``wasserstein`` and ``jensenshannon`` above,
and records the method it used. With ``drift_share`` 0.5 this keeps false alarms on same-distribution
batches at or under 1% (200 seeds, five data sets, 200 rows and up; see the README).

Like Evidently, each column is compared on its non-null values (NaN and +-inf dropped in each frame).

Column kinds come from the dtype, not from Evidently's cardinality guess (an integer column with <= 10
distinct values would become categorical there, so the kind could flip between batches): int, uint and
float are numeric; bool, string, object and category are categorical; datetimes are not evaluated.
The operator passes the same kinds to Evidently's report (``DataDefinition``).

Column statuses: ``drift`` / ``no_drift``; ``insufficient_data`` when either frame has fewer than
``min_rows`` non-null values in the column (the score is still computed for information, but never
counts as drift); ``not_evaluable`` for a column with no non-null value in a frame, a datetime column, or
an ID-like categorical (more than ``ID_LIKE_UNIQUE_RATIO`` of the reference's non-null values distinct,
and more than ``ID_LIKE_MIN_UNIQUE`` of them). A categorical with more than ``MAX_CATEGORIES`` distinct
values that is not ID-like is bucketed: the ``MAX_CATEGORIES - 1`` most frequent reference values
(ties by value) and ``"__other__"`` for the rest, in both frames.

Dataset decision: ``drift`` when ``drifted columns / evaluated columns >= drift_share``, where evaluated
columns are those with status ``drift`` or ``no_drift`` (Evidently divides by all columns); below
``min_rows`` rows in either frame, or with no evaluable column, the status is ``insufficient_data`` and
never ``drift``.

Defaults (declared here once; the operator, the sensor and the config schema use these names):
``DEFAULT_DRIFT_SHARE``, ``DEFAULT_MIN_ROWS``, ``DEFAULT_NUMERIC_METHOD``, ``DEFAULT_CATEGORICAL_METHOD``,
``DEFAULT_REPORT_SAMPLE_ROWS``, ``DEFAULT_MAX_ROWS``; the accepted methods are ``NUMERIC_METHODS`` and
``CATEGORICAL_METHODS``.

Data above ``max_rows`` (the drift task's argument) is compared on a deterministic sample of each frame
(:mod:`mlops_provider.core.data_sample`); ``compute_drift(..., sample=DriftSample(...))`` records it.

Layout: the scores are in :mod:`mlops_provider.core.drift_stats`, column selection and the report's
frames in :mod:`mlops_provider.core.drift_frames`, the result types in
:mod:`mlops_provider.core.drift_result`; this module holds the decision and re-exports them all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

from mlops_provider.core.drift_args import (
    AUTO,
    AUTO_P_VALUE_MAX_ROWS,
    CATEGORICAL_METHODS,
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_DRIFT_SHARE,
    DEFAULT_MAX_ROWS,
    DEFAULT_MIN_ROWS,
    DEFAULT_NUMERIC_METHOD,
    DEFAULT_REPORT_SAMPLE_ROWS,
    DEFAULT_THRESHOLDS,
    NUMERIC_METHODS,
    P_VALUE_METHODS,
    check_arguments,
    check_task_arguments,
    resolve_methods,
)
from mlops_provider.core.drift_frames import Kind, column_kind, report_frames, resolve_columns
from mlops_provider.core.drift_result import ColumnDrift, DriftResult, DriftSample
from mlops_provider.core.drift_stats import (
    JS_NUMERIC_BINS_MIN_UNIQUE,
    MAX_CATEGORIES,
    OTHER,
    bucket,
    categorical_score,
    category_counts,
    chisquare_counts,
    finite_values,
    jensenshannon_counts,
    jensenshannon_numeric,
    ks_pvalue,
    numeric_score,
    top_categories,
    wasserstein_normed,
)
from mlops_provider.core.encoding import ID_LIKE_MIN_UNIQUE, ID_LIKE_UNIQUE_RATIO, is_id_like

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AUTO",
    "AUTO_P_VALUE_MAX_ROWS",
    "CATEGORICAL_METHODS",
    "DEFAULT_CATEGORICAL_METHOD",
    "DEFAULT_DRIFT_SHARE",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_MIN_ROWS",
    "DEFAULT_NUMERIC_METHOD",
    "DEFAULT_REPORT_SAMPLE_ROWS",
    "DEFAULT_THRESHOLDS",
    "ID_LIKE_MIN_UNIQUE",
    "ID_LIKE_UNIQUE_RATIO",
    "JS_NUMERIC_BINS_MIN_UNIQUE",
    "MAX_CATEGORIES",
    "NUMERIC_METHODS",
    "OTHER",
    "P_VALUE_METHODS",
    "ColumnDrift",
    "DriftResult",
    "DriftSample",
    "Kind",
    "Status",
    "bucket",
    "category_counts",
    "check_arguments",
    "check_task_arguments",
    "chisquare_counts",
    "column_kind",
    "compute_drift",
    "finite_values",
    "is_id_like",
    "jensenshannon_counts",
    "jensenshannon_numeric",
    "ks_pvalue",
    "report_frames",
    "resolve_columns",
    "resolve_methods",
    "top_categories",
    "wasserstein_normed",
]

Status = Literal["drift", "no_drift", "insufficient_data", "not_evaluable"]


# -- the computation --------------------------------------------------------------------------------
def _threshold_for(method: str, threshold: float | Mapping[str, float] | None, kind: str) -> float:
    if threshold is None:
        return DEFAULT_THRESHOLDS[method]
    if isinstance(threshold, Mapping):
        value = threshold.get(kind)
        return DEFAULT_THRESHOLDS[method] if value is None else float(value)
    return float(threshold)


def _drifted(method: str, score: float, threshold: float) -> bool:
    if math.isnan(score):
        return False
    if method == "ks":
        return score <= threshold
    if method == "chisquare":
        return score < threshold
    return score >= threshold


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    drift_share: float = DEFAULT_DRIFT_SHARE,
    min_rows: int = DEFAULT_MIN_ROWS,
    numeric_method: str = DEFAULT_NUMERIC_METHOD,
    categorical_method: str = DEFAULT_CATEGORICAL_METHOD,
    threshold: float | Mapping[str, float] | None = None,
    target: str | None = None,
    reference_uri: str = "reference",
    current_uri: str = "current",
    sample: DriftSample | None = None,
) -> DriftResult:
    """
    Per-column drift scores and the dataset decision (see the module docstring).

    >>> result = compute_drift(reference_df, current_df, ["temp_max", "weather"])  # doctest: +SKIP
    >>> result.status, result.drifted_columns  # doctest: +SKIP
    ('drift', ['temp_max'])

    :param threshold: one value for both methods, or ``{"numeric": ..., "categorical": ...}``; default
        each method's Evidently default (0.1 for distances, 0.05 for p-values)
    :param sample: the frames are samples of larger data: scores and ``auto`` use the sampled rows;
        ``n_reference``/``n_current`` and ``min_rows`` the true counts; the result records it.
    :raises DataError: schema mismatch (missing/extra column, numeric vs categorical), naming URI and column
    :raises InvalidInputError: a bad argument (a ``ValueError``)
    """
    check_arguments(
        drift_share=drift_share,
        min_rows=min_rows,
        numeric_method=numeric_method,
        categorical_method=categorical_method,
        threshold=threshold,
    )
    kinds = resolve_columns(
        reference, current, columns, reference_uri=reference_uri, current_uri=current_uri, target=target
    )
    numeric_method, categorical_method = resolve_methods(
        numeric_method, categorical_method, min(len(reference), len(current))
    )
    methods = {"numeric": numeric_method, "categorical": categorical_method}
    results = [
        _column_drift(name, kind, reference[name], current[name], methods, min_rows, threshold)
        for name, kind in kinds.items()
    ]
    result = DriftResult(
        status="insufficient_data",
        drift_share=None,
        threshold_share=float(drift_share),
        n_reference=sample.reference_total if sample else len(reference),
        n_current=sample.current_total if sample else len(current),
        min_rows=min_rows,
        numeric_method=numeric_method,
        categorical_method=categorical_method,
        columns=results,
        sample=sample,
    )
    return _decide(result, drift_share, min_rows)


def _decide(result: DriftResult, drift_share: float, min_rows: int) -> DriftResult:
    """The dataset decision on the column results (sets status, drift_share and reason in place)."""
    n_ref, n_cur = result.n_reference, result.n_current
    if n_ref < min_rows or n_cur < min_rows:
        result.reason = f"{n_ref} reference and {n_cur} current rows; at least {min_rows} needed in each"
        return result
    evaluated = result.evaluated_columns
    if not evaluated:
        result.reason = "no column could be evaluated (see each column's status)"
        return result
    share = len(result.drifted_columns) / len(evaluated)
    result.drift_share = share
    result.status = "drift" if share >= drift_share else "no_drift"
    return result


class _Scored(NamedTuple):
    """A column's score before the decision: the method, score, non-null counts, bucketed?"""

    method: str
    score: float
    n_ref: int
    n_cur: int
    bucketed: bool = False


def _not_evaluable(
    name: str, kind: str, reason: str, n_ref: int, n_cur: int, method: str | None = None
) -> ColumnDrift:
    return ColumnDrift(name, kind, method, None, None, False, "not_evaluable", n_ref, n_cur, reason)


def _score_numeric(name: str, ref: pd.Series, cur: pd.Series, method: str) -> _Scored | ColumnDrift:
    ref_values, cur_values = finite_values(ref), finite_values(cur)
    n_ref, n_cur = int(ref_values.size), int(cur_values.size)
    if n_ref == 0 or n_cur == 0:
        side = "reference" if n_ref == 0 else "current"
        return _not_evaluable(name, "numeric", f"no finite value in the {side} data", n_ref, n_cur, method)
    return _Scored(method, numeric_score(method, ref_values, cur_values), n_ref, n_cur)


def _score_categorical(name: str, ref: pd.Series, cur: pd.Series, method: str) -> _Scored | ColumnDrift:
    ref_counts, cur_counts = category_counts(ref, cur)
    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
    if n_ref == 0 or n_cur == 0:
        side = "reference" if n_ref == 0 else "current"
        return _not_evaluable(
            name, "categorical", f"no non-null value in the {side} data", n_ref, n_cur, method
        )
    n_unique_ref = int((ref_counts > 0).sum())
    if is_id_like(n_unique_ref, n_ref):
        reason = f"ID-like: {n_unique_ref} distinct values in {n_ref} reference rows"
        return _not_evaluable(name, "categorical", reason, n_ref, n_cur, method)
    bucketed = False
    if len(ref_counts) > MAX_CATEGORIES:
        keep = top_categories(ref, MAX_CATEGORIES - 1)
        ref_counts, cur_counts = category_counts(bucket(ref, keep), bucket(cur, keep))
        bucketed = True
    score = categorical_score(
        method, ref_counts.to_numpy(dtype="float64"), cur_counts.to_numpy(dtype="float64")
    )
    return _Scored(method, score, n_ref, n_cur, bucketed)


def _column_drift(
    name: str,
    kind: Kind,
    ref: pd.Series,
    cur: pd.Series,
    methods: Mapping[str, str],
    min_rows: int,
    threshold: float | Mapping[str, float] | None,
) -> ColumnDrift:
    """One column's result: scored with ``methods[kind]``, then judged against its threshold."""
    if kind == "empty":
        n_ref, n_cur = int(ref.notna().sum()), int(cur.notna().sum())
        side = "reference" if n_ref == 0 else "current"
        return _not_evaluable(name, kind, f"no non-null value in the {side} data", n_ref, n_cur)
    if kind == "datetime":
        why = "datetime column (not compared)"
        return _not_evaluable(name, kind, why, int(ref.notna().sum()), int(cur.notna().sum()))
    score_of = _score_numeric if kind == "numeric" else _score_categorical
    scored = score_of(name, ref, cur, methods[kind])
    if isinstance(scored, ColumnDrift):
        return scored
    if not math.isfinite(scored.score):  # e.g. chisquare on one category in both frames
        why = f"the {scored.method} score is not a finite number (one value only?)"
        return _not_evaluable(name, kind, why, scored.n_ref, scored.n_cur, scored.method)
    limit = _threshold_for(scored.method, threshold, kind)
    if scored.n_ref < min_rows or scored.n_cur < min_rows:
        status, drifted = "insufficient_data", False
        reason: str | None = (
            f"{scored.n_ref} reference and {scored.n_cur} current non-null values; at least {min_rows} needed"
        )
    else:
        drifted = _drifted(scored.method, scored.score, limit)
        status, reason = ("drift" if drifted else "no_drift"), None
    return ColumnDrift(
        name,
        kind,
        scored.method,
        limit,
        scored.score,
        drifted,
        status,
        scored.n_ref,
        scored.n_cur,
        reason,
        scored.bucketed,
    )
