"""Which columns a drift check compares (and as what kind), and the frames Evidently's report gets.

No Airflow. Column kinds come from the dtype, not from Evidently's cardinality guess (see
:mod:`mlops_provider.core.drift`); a schema mismatch raises :class:`~mlops_provider.core.errors.DataError`
naming the URI and the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from mlops_provider.core.drift_stats import MAX_CATEGORIES, bucket, top_categories
from mlops_provider.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.core.drift_result import DriftResult

Kind = Literal["numeric", "categorical", "datetime", "empty"]


def column_kind(series: pd.Series) -> Kind:
    """``numeric`` (int/uint/float), ``categorical`` (bool/string/object/category), ``datetime``; a
    column with no non-null value is ``empty`` (its dtype says nothing: CSV readers make it float)."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        kind: Kind = "categorical"
    elif pd.api.types.is_numeric_dtype(dtype):
        kind = "numeric"
    elif pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        kind = "datetime"
    else:
        kind = "categorical"
    if not series.notna().any():
        return "empty"
    return kind


def _column_names(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None,
    reference_uri: str,
    current_uri: str,
    target: str | None,
) -> list[str]:
    """The names to compare (see :func:`resolve_columns`); :class:`DataError` on a mismatch."""
    for frame, uri in ((reference, reference_uri), (current, current_uri)):
        duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        if duplicated:
            raise DataError(f"{uri}: duplicate column name(s) {', '.join(map(repr, duplicated))}")
    if columns is not None:
        if isinstance(columns, str) or not columns:
            raise DataError(f"columns must be a non-empty list of column names, got {columns!r}")
        names = list(dict.fromkeys(str(c) for c in columns))
        for frame, uri in ((reference, reference_uri), (current, current_uri)):
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise DataError(
                    f"{uri}: missing column(s) {', '.join(map(repr, missing))} needed for the drift check"
                )
        return names
    ref_cols = [str(c) for c in reference.columns if str(c) != target]
    cur_cols = {str(c) for c in current.columns if str(c) != target}
    missing = [c for c in ref_cols if c not in cur_cols]
    extra = sorted(cur_cols - set(ref_cols))
    if missing or extra:
        raise DataError(
            f"schema mismatch: {current_uri} lacks column(s) {missing or 'none'} and has extra column(s) "
            f"{extra or 'none'} compared with the reference {reference_uri}"
        )
    if not ref_cols:
        raise DataError(f"{reference_uri}: no column to compare (target {target!r} excluded)")
    return ref_cols


def resolve_columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None,
    *,
    reference_uri: str = "reference",
    current_uri: str = "current",
    target: str | None = None,
) -> dict[str, Kind]:
    """
    The columns to compare and their kinds; raise :class:`DataError` on a schema mismatch.

    With ``columns`` given, each must exist in both frames (other columns are ignored). Without, the
    two frames must have the same columns (the target may be missing from the current data), and all
    but ``target`` are compared. A column whose kind differs (numeric vs categorical) is an error.
    """
    names = _column_names(reference, current, columns, reference_uri, current_uri, target)
    kinds: dict[str, Kind] = {}
    for name in names:
        ref_kind = column_kind(reference[name])
        cur_kind = column_kind(current[name])
        if "empty" in (ref_kind, cur_kind):
            kinds[name] = "empty"
        elif ref_kind != cur_kind:
            raise DataError(
                f"schema mismatch in column {name!r}: {ref_kind} ({reference[name].dtype}) in the reference "
                f"{reference_uri} but {cur_kind} ({current[name].dtype}) in {current_uri}"
            )
        else:
            kinds[name] = ref_kind
    return kinds


def report_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    result: DriftResult,
    *,
    sample_rows: int,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str], bool]:
    """
    The frames and column kinds for Evidently's report: only columns that have a score (bucketed ones
    bucketed as in the decision), each frame sampled deterministically to at most ``sample_rows`` rows.

    :return: (reference, current, numeric columns, categorical columns, sampled?)
    """
    numeric = [c.column for c in result.columns if c.score is not None and c.kind == "numeric"]
    categorical = [c.column for c in result.columns if c.score is not None and c.kind == "categorical"]
    names = numeric + categorical
    sampled = False
    frames = []
    for frame in (reference, current):
        if len(frame) > sample_rows:
            frame = frame.sample(n=sample_rows, random_state=seed)
            sampled = True
        frames.append(frame[names].copy())
    ref_out, cur_out = frames
    for col in result.columns:
        if col.bucketed:
            keep = top_categories(reference[col.column], MAX_CATEGORIES - 1)
            ref_out[col.column] = bucket(ref_out[col.column], keep)
            cur_out[col.column] = bucket(cur_out[col.column], keep)
    for name in categorical:  # Evidently keys categories by value: one type per column
        for out in (ref_out, cur_out):
            if out[name].dtype == object or str(out[name].dtype) == "category":
                out[name] = out[name].astype(object)
    return ref_out, cur_out, numeric, categorical, sampled
