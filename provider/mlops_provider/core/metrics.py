"""Model quality metrics on a holdout: overall, per slice, permutation importance. No Airflow in here.

Metric names (the config's vocabulary): classification ``accuracy``, ``precision_macro``,
``recall_macro``, ``f1_macro``, ``roc_auc``, ``log_loss``; regression ``rmse``, ``mae``, ``r2``.
``rmse``, ``mae`` and ``log_loss`` are better when lower.

A metric that is not defined for the data (``roc_auc`` when the holdout holds one class, or a
multiclass holdout lacking one of the model's classes; ``log_loss`` without ``predict_proba``) is left
out of the result. A metric that is computed but not finite (NaN, inf) is kept as ``None`` and its
name listed in ``non_finite``: it is never compared as a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.core.metric_plan import MetricPlan

CLASSIFICATION_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "expected_cost"})  # + the cost matrix's
# Left out of a report when undefined for the data (see the module docstring); the others always appear.
OPTIONAL_METRICS = frozenset({"roc_auc", "log_loss"})
TASK_TYPES = ("classification", "regression")
DEFAULT_PRIMARY = {"classification": "f1_macro", "regression": "rmse"}
# A numeric slice column with more distinct values than this is cut into quantile buckets.
MAX_SLICE_VALUES = 10
SLICE_QUANTILES = 4
MISSING_SLICE = "<missing>"


def metric_names(task_type: str) -> tuple[str, ...]:
    """The metric names defined for ``task_type``; a ValueError names an unknown task type."""
    if task_type == "classification":
        return CLASSIFICATION_METRICS
    if task_type == "regression":
        return REGRESSION_METRICS
    raise ValueError(f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def is_finite_number(value: Any) -> TypeGuard[int | float]:
    """A real number a float can hold: not a bool, NaN, an infinity, or an int past a float's range."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int like 10**400
        return False


@dataclass
class MetricReport:
    """
    Metric values (``None`` for a non-finite value), the names of non-finite ones, the row count, and
    why a custom metric has no value (``errors``: its function raised or returned no finite number).
    """

    values: dict[str, float | None] = field(default_factory=dict)
    non_finite: list[str] = field(default_factory=list)
    rows: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # said with the metric, e.g. unknown cost classes

    def as_dict(self) -> dict[str, Any]:
        report = {"metrics": dict(self.values), "non_finite": list(self.non_finite), "rows": self.rows}
        extra = {"errors": dict(self.errors), "notes": dict(self.notes)}
        return report | {key: value for key, value in extra.items() if value}

    def add(self, values: Mapping[str, float | None], errors: Mapping[str, str]) -> None:
        """Custom metric values (``None``: no finite value) and their errors."""
        for name, value in values.items():
            self.values[name] = value
            if value is None:
                self.non_finite.append(name)
        self.errors.update(errors)


def _finalise(raw: Mapping[str, float], rows: int) -> MetricReport:
    report = MetricReport(rows=rows)
    for name, value in raw.items():
        number = float(value)
        if math.isfinite(number):
            report.values[name] = number
        else:
            report.values[name] = None
            report.non_finite.append(name)
    return report


def _classes_of(model: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    return list(classes) if classes is not None else None


def compute_metrics(
    model: Any, X: pd.DataFrame, y: pd.Series, task_type: str, plan: MetricPlan | None = None
) -> MetricReport:
    """
    Score ``model`` on ``X``/``y``; see the module docstring for which metrics are defined when.
    With a ``plan``, its custom metrics and expected cost too.
    """
    metric_names(task_type)
    if len(X) == 0:
        raise ValueError("cannot compute metrics on 0 rows")
    if task_type == "regression":
        predictions, proba = model.predict(X), None
        report = regression_metrics(y, predictions)
    else:
        predictions, proba = predict_with_proba(model, X)
        report = classification_metrics(y, predictions, proba, _classes_of(model))
    if plan is not None and plan.extra_names:
        unknown = plan.check_classes(_classes_of(model))
        if unknown:
            report.notes["expected_cost"] = (
                f"cost_matrix names classes the model does not know, whose cells never match: {unknown}"
            )
        report.add(*plan.values(y, predictions, proba, X))
    return report


# Classifiers whose predict() is the class of highest predict_proba() (the same scores through a
# monotone map): their labels come from one predict_proba pass instead of a second pass over the
# model (half the scoring time of a 1000-tree ensemble).
ARGMAX_CLASSIFIERS = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.linear_model._logistic.LogisticRegression",
    }
)
# Rows whose two highest probabilities are closer than this get their label from predict() itself,
# so rounding and tie-breaking can never make the labels differ from predict()'s.
ARGMAX_MARGIN = 1e-9


def _final_estimator(model: Any) -> Any:
    steps = getattr(model, "steps", None)
    if type(model).__module__ == "sklearn.pipeline" and steps:
        return steps[-1][1]
    return model


def predict_with_proba(model: Any, X: pd.DataFrame) -> tuple[Any, Any | None]:
    """``(model.predict(X), model.predict_proba(X) or None)``, in one pass where that is exact."""
    import numpy as np

    proba = None
    if hasattr(model, "predict_proba"):
        try:
            proba = model.predict_proba(X)
        except (AttributeError, NotImplementedError):  # e.g. SVC(probability=False)
            proba = None
    if isinstance(proba, np.ndarray) and proba.ndim == 2 and proba.dtype == np.float32:
        proba = proba.astype(float)  # XGBoost's rows sum to 1 within ~1e-7 only: log_loss would warn
        proba /= proba.sum(axis=1, keepdims=True)
    final = _final_estimator(model)
    classes = getattr(model, "classes_", None)
    exact = f"{type(final).__module__}.{type(final).__qualname__}" in ARGMAX_CLASSIFIERS
    if (
        not exact
        or classes is None
        or len(classes) < 2
        or not isinstance(proba, np.ndarray)
        or proba.ndim != 2
    ):
        return model.predict(X), proba
    scores = np.asarray(proba, dtype=float)
    if not np.all(np.isfinite(scores)):
        return model.predict(X), proba
    predictions = np.asarray(classes).take(np.argmax(scores, axis=1))
    top_two = np.partition(scores, -2, axis=1)[:, -2:]
    close = np.flatnonzero(top_two[:, 1] - top_two[:, 0] <= ARGMAX_MARGIN)
    if close.size:
        rows = X.iloc[close] if hasattr(X, "iloc") else X[close]
        predictions[close] = model.predict(rows)
    return predictions, proba


def regression_metrics(y_true: Any, y_pred: Any) -> MetricReport:
    import numpy as np
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(y_pred)):
            raw = {"rmse": math.nan, "mae": math.nan, "r2": math.nan}
        else:
            raw = {
                "rmse": math.sqrt(mean_squared_error(y_true, y_pred)),
                "mae": mean_absolute_error(y_true, y_pred),
                "r2": r2_score(y_true, y_pred) if len(y_true) > 1 else math.nan,
            }
    return _finalise(raw, len(y_true))


def classification_metrics(
    y_true: Any, y_pred: Any, proba: Any | None, classes: Sequence[Any] | None
) -> MetricReport:
    import numpy as np
    from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support, roc_auc_score

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    raw: dict[str, float] = {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision_macro": precision,
        "recall_macro": recall,
        "f1_macro": f1,
    }
    if proba is not None and classes is not None:
        proba = np.asarray(proba, dtype=float)
        present = set(np.unique(y_true).tolist())
        if not np.all(np.isfinite(proba)):
            raw["roc_auc"] = math.nan
            raw["log_loss"] = math.nan
        else:
            if len(classes) == 2 and len(present) == 2:
                raw["roc_auc"] = roc_auc_score(y_true == classes[1], proba[:, 1])
            elif len(classes) > 2 and present == set(classes):
                raw["roc_auc"] = roc_auc_score(y_true, proba, multi_class="ovr", labels=list(classes))
            if set(present) <= set(classes):
                raw["log_loss"] = log_loss(y_true, proba, labels=list(classes))
    return _finalise(raw, len(y_true))


def slice_labels(values: pd.Series) -> pd.Series:
    """
    The slice each row belongs to, as strings. A numeric column with more than ``MAX_SLICE_VALUES``
    distinct values is cut into (up to) ``SLICE_QUANTILES`` quantile buckets labelled by interval
    (``(12.5, 17.0]``); anything else is sliced by value. Missing values form their own slice.
    """
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        if values.nunique(dropna=True) > MAX_SLICE_VALUES:
            buckets = pd.qcut(values, q=SLICE_QUANTILES, duplicates="drop")
            labels = buckets.astype(str)
        else:
            labels = values.map(lambda v: f"{v:g}" if isinstance(v, float) else str(v))
    else:
        labels = values.astype(str)
    return labels.where(values.notna(), MISSING_SLICE)


def slice_metrics(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    slice_values: pd.Series,
    task_type: str,
    plan: MetricPlan | None = None,
) -> dict[str, dict[str, Any]]:
    """``{slice label: {"rows": n, "metrics": {...}, "non_finite": [...]}}``, slices sorted by label."""
    labels = slice_labels(slice_values.reset_index(drop=True))
    X = X.reset_index(drop=True)
    y = y.reset_index(drop=True)
    result: dict[str, dict[str, Any]] = {}
    for label in sorted(labels.unique()):
        mask = (labels == label).to_numpy()
        report = compute_metrics(model, X.loc[mask], y.loc[mask], task_type, plan)
        result[str(label)] = report.as_dict()
    return result


def slice_gap(slices: Mapping[str, Mapping[str, Any]], metric: str) -> tuple[float | None, list[str]]:
    """
    The largest difference of ``metric`` between two slices, and the slices lacking a finite value.
    ``None`` when fewer than two slices have a finite value.
    """
    finite: list[float] = []
    missing: list[str] = []
    for label, report in slices.items():
        value = report.get("metrics", {}).get(metric)
        if is_finite_number(value):
            finite.append(float(value))
        else:
            missing.append(label)
    if len(finite) < 2:
        return None, missing
    return max(finite) - min(finite), missing


def permutation_importance_report(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    task_type: str,
    *,
    max_rows: int = 2000,
    n_repeats: int = 5,
    random_state: int = 42,
) -> list[dict[str, Any]]:
    """
    Permutation importance of each input column (fixed seed, at most ``max_rows`` rows sampled), sorted
    by mean importance. Scored with accuracy (classification) or R2 (regression).
    """
    from sklearn.inspection import permutation_importance

    metric_names(task_type)
    if len(X) > max_rows:
        X = X.sample(n=max_rows, random_state=random_state)
        y = y.loc[X.index]
    scoring = "accuracy" if task_type == "classification" else "r2"
    result = permutation_importance(
        model, X, y, scoring=scoring, n_repeats=n_repeats, random_state=random_state, n_jobs=1
    )
    rows = [
        {
            "feature": str(column),
            "importance_mean": _json_float(result.importances_mean[i]),
            "importance_std": _json_float(result.importances_std[i]),
        }
        for i, column in enumerate(X.columns)
    ]
    return sorted(
        rows, key=lambda r: -(r["importance_mean"] if r["importance_mean"] is not None else -math.inf)
    )


def _json_float(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
