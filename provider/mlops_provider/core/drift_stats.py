"""The per-column drift scores: a vectorised numpy/scipy port of Evidently 0.7's methods. No Airflow.

Each function takes the non-null values of one column in both frames and returns Evidently's score for
the method (a distance, or a p-value for ``ks`` and ``chisquare``). Categorical helpers align value
counts and bucket high-cardinality columns. The decision built on these scores is in
:mod:`mlops_provider.core.drift`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MAX_CATEGORIES = 100
OTHER = "__other__"
JS_NUMERIC_BINS_MIN_UNIQUE = 20  # Evidently bins a numeric column with more distinct values than this


# -- numeric scores ---------------------------------------------------------------------------------
def finite_values(series: pd.Series) -> np.ndarray:
    """The column's values as float64 without NaN/None/+-inf (Evidently drops them)."""
    import numpy as np

    values = series.to_numpy(dtype="float64", na_value=np.nan, copy=False)
    mask = np.isfinite(values)
    return values if mask.all() else values[mask]


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's ``wasserstein``: ``scipy.stats.wasserstein_distance / max(std(reference), 0.001)``.

    Same arithmetic as scipy's ``_cdf_distance(p=1)``, with ``np.sort`` instead of ``argsort`` + gather
    (~4x faster, identical result)."""
    import numpy as np

    norm = max(float(np.std(reference)), 0.001)
    ref_sorted = np.sort(reference)
    cur_sorted = np.sort(current)
    all_values = np.concatenate((ref_sorted, cur_sorted))
    all_values.sort(kind="mergesort")
    deltas = np.diff(all_values)
    points = all_values[:-1]
    ref_cdf = ref_sorted.searchsorted(points, "right") / ref_sorted.size
    cur_cdf = cur_sorted.searchsorted(points, "right") / cur_sorted.size
    np.subtract(ref_cdf, cur_cdf, out=ref_cdf)
    np.abs(ref_cdf, out=ref_cdf)
    return float(np.vecdot(ref_cdf, deltas)) / norm


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's ``ks``: the two-sided two-sample Kolmogorov-Smirnov p-value (scipy's defaults)."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current)[1])


def _js(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial import distance

    return float(distance.jensenshannon(p, q))


def jensenshannon_numeric(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's ``jensenshannon`` on a numeric column: Sturges bins over both frames when the
    reference has more than 20 distinct values, else the distinct values as categories."""
    import numpy as np

    ref_unique = np.unique(reference)
    if ref_unique.size > JS_NUMERIC_BINS_MIN_UNIQUE:
        bins = np.histogram_bin_edges(np.concatenate((reference, current)), bins="sturges")
        p = np.histogram(reference, bins)[0] / reference.size
        q = np.histogram(current, bins)[0] / current.size
        return _js(p, q)
    keys = np.union1d(ref_unique, np.unique(current))
    ref_index = np.searchsorted(keys, reference)
    cur_index = np.searchsorted(keys, current)
    return _js(
        np.bincount(ref_index, minlength=keys.size) / reference.size,
        np.bincount(cur_index, minlength=keys.size) / current.size,
    )


def numeric_score(method: str, reference: np.ndarray, current: np.ndarray) -> float:
    """The score of ``method`` (``wasserstein``, ``ks`` or ``jensenshannon``) on finite values."""
    if method == "wasserstein":
        return wasserstein_normed(reference, current)
    if method == "ks":
        return ks_pvalue(reference, current)
    return jensenshannon_numeric(reference, current)


# -- categorical scores -----------------------------------------------------------------------------
def category_counts(reference: pd.Series, current: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Non-null value counts of both frames aligned on the union of observed values."""
    ref_counts = reference.value_counts(dropna=True, sort=False)
    cur_counts = current.value_counts(dropna=True, sort=False)
    ref_counts = ref_counts[ref_counts > 0]
    cur_counts = cur_counts[cur_counts > 0]
    if not ref_counts.index.equals(cur_counts.index):
        union = ref_counts.index.union(cur_counts.index, sort=False)
        ref_counts = ref_counts.reindex(union, fill_value=0)
        cur_counts = cur_counts.reindex(union, fill_value=0)
    return ref_counts, cur_counts


def jensenshannon_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Evidently's ``jensenshannon`` on categories: JS distance of the two frequency vectors."""
    return _js(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())


def chisquare_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Evidently's ``chisquare``: p-value of current counts against reference counts scaled to the
    current size (a category absent from the reference gives p = 0)."""
    import numpy as np
    from scipy.stats import chisquare

    f_exp = ref_counts * (cur_counts.sum() / ref_counts.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(chisquare(cur_counts, f_exp)[1])


def categorical_score(method: str, ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """The score of ``method`` (``jensenshannon`` or ``chisquare``) on aligned category counts."""
    if method == "jensenshannon":
        return jensenshannon_counts(ref_counts, cur_counts)
    return chisquare_counts(ref_counts, cur_counts)


def top_categories(reference: pd.Series, keep: int) -> list[Any]:
    """The ``keep`` most frequent non-null reference values (ties broken by the value's text)."""
    counts = reference.value_counts(dropna=True)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return [value for value, _ in ranked[:keep]]


def bucket(series: pd.Series, keep: Sequence[Any]) -> pd.Series:
    """Values outside ``keep`` become ``OTHER``; nulls stay null. Returns an object column."""
    values = series.astype(object)
    inside = values.isin(list(keep)) | values.isna()
    return values.where(inside, OTHER).astype(object) if not inside.all() else values.astype(object)
