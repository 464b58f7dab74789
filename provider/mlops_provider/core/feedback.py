"""The closed loop's arithmetic: which batches count, live metrics, live vs holdout. No Airflow, no MLflow.

Ground truth arrives late. Scoring writes a prediction file per batch (the vocabulary below); the
performance monitor joins the labels that have arrived (:mod:`.feedback_join`) and computes here:

* :func:`window` / :func:`scoring_in_window`: batches scored in ``(monitor_date - days, monitor_date]``;
* :func:`live_metrics`: per alias, the metrics (built-in and a plan's own) on the labelled rows of the
  alias's latest version (an older version served earlier in the window is under ``other_versions``);
* :func:`paired_metrics`: two aliases on the labelled rows both scored (same id, same batch);

A prediction file has one row per scored input row: the user's id column, ``row``, ``prediction``,
``proba_<class>`` per class (classifiers, in the model's ``classes_`` order, ``<class>`` = ``str(class)``),
``model_version``, ``alias`` (``champion`` when served; ``challenger`` / ``previous_champion`` in shadow),
``scored_at`` and ``scoring_date`` (ISO-8601 UTC; the latter is the scoring run's logical date).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.metrics import (
    classification_metrics,
    metric_names,
    regression_metrics,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_provider.core.metric_plan import MetricPlan

ROW_COLUMN = "row"
PREDICTION_COLUMN = "prediction"
PROBA_PREFIX = "proba_"
VERSION_COLUMN = "model_version"
ALIAS_COLUMN = "alias"
SCORED_AT_COLUMN = "scored_at"
SCORING_DATE_COLUMN = "scoring_date"
LABEL_COLUMN = "label"  # the joined frame's ground truth
SERVED_ALIAS = "champion"
# Names a prediction file uses itself: the user's id column must not be one of them.
RESERVED_COLUMNS = frozenset(
    {ROW_COLUMN, PREDICTION_COLUMN, VERSION_COLUMN, ALIAS_COLUMN, SCORED_AT_COLUMN, SCORING_DATE_COLUMN}
    | {LABEL_COLUMN}
)
EXAMPLE_CHARS = 40  # one example value in a message; with its file name an example stays <= 80 chars
MAX_EXAMPLES = 3
MAX_LISTED_COLUMNS = 10
SOURCE_COLUMN = "_source"  # the label file a label row came from (see prepare_labels)


class FeedbackError(InvalidInputError):
    """Predictions and labels cannot be joined at all; the message names the source and the column."""


def proba_columns(classes: Iterable[Any]) -> list[str]:
    """``proba_<class>`` per class, in the given (the model's ``classes_``) order."""
    return [f"{PROBA_PREFIX}{c}" for c in classes]


def clip_text(text: str, limit: int = EXAMPLE_CHARS) -> str:
    """``text`` on one line (non-printable characters as ``?``), at most ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(value: Any, limit: int = EXAMPLE_CHARS) -> str:
    """``repr(value)`` on one line, at most ``limit`` characters; never raises."""
    try:
        item = getattr(value, "item", None)
        if callable(item) and type(value).__module__ == "numpy":
            value = item()  # np.int64(12) -> 12
        text = repr(value)
    except Exception:  # a hostile __repr__ must not hide the report
        text = f"<{type(value).__name__}>"
    return clip_text(text, limit)


# -- label files and what could not be used -----------------------------------------------------

_SENTENCES = {
    "missing_ids": "{n} label row(s) have no id and were left out",
    "missing_labels": "{n} label row(s) have no label and were left out",
    "type_mismatch": "{n} label(s) are not {kind} and were left out",
    "conflicting_ids": "{n} label id(s) appear twice with different labels and were left out",
    "duplicate_ids": "{n} label id(s) appear more than once with the same label and count once",
    "unknown_class": "{n} label(s) name a class the model does not know; kept, as the model's errors",
    "unscored_ids": "{n} label id(s) were not scored in the window and were not used",
    "rescored": "{n} prediction row(s) were scored again in a later batch; the latest was kept",
    "unlabelled_predictions": "{n} served prediction(s) have no label yet",
}


@dataclass
class LabelIssues:
    """Label rows read, and how many labels or predictions could not be used and why (with examples)."""

    label_rows: int = 0
    missing_ids: int = 0
    missing_labels: int = 0
    type_mismatch: int = 0
    conflicting_ids: int = 0
    duplicate_ids: int = 0
    unknown_class: int = 0
    unscored_ids: int = 0
    rescored: int = 0
    unlabelled_predictions: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)  # up to 3 clipped reprs per count
    expected_kind: str = "finite numbers"  # what a label must be, for the type_mismatch sentence

    def note(self, name: str, count: int, examples: list[str]) -> None:
        setattr(self, name, count)
        if count:
            self.examples[name] = examples[:MAX_EXAMPLES]

    def as_dict(self) -> dict[str, Any]:
        counts = {f.name: getattr(self, f.name) for f in fields(self) if f.type in ("int", int)}
        return {**counts, "examples": {k: list(v) for k, v in self.examples.items()}}

    def reasons(self) -> list[str]:
        """One sentence per non-zero count, with an example: ``"3 label id(s) appear twice ..."``."""
        out = []
        for name, sentence in _SENTENCES.items():
            count = getattr(self, name)
            if count:
                text = sentence.format(n=count, kind=self.expected_kind)
                example = self.examples.get(name)
                out.append(f"{text} (e.g. {example[0]})" if example else text)
        return out


def prepare_labels(frame: pd.DataFrame, *, id_column: str, label_column: str, source: str) -> pd.DataFrame:
    """``[id_column, "label", "_source"]`` of one label file; FeedbackError names a missing column."""
    import pandas as pd

    names = [str(c) for c in frame.columns]
    listed = ", ".join(clip(c) for c in names[:MAX_LISTED_COLUMNS])
    if len(names) > MAX_LISTED_COLUMNS:
        listed += f" and {len(names) - MAX_LISTED_COLUMNS} more"
    for column, what in ((id_column, "the id column"), (label_column, "the label column")):
        if column not in frame.columns:
            raise FeedbackError(
                f"{clip_text(source, 300)}: no column {clip(column)} ({what} of feedback.labels); "
                f"its columns are {listed or 'none'}"
            )
        if names.count(column) > 1:
            raise FeedbackError(f"{clip_text(source, 300)}: column {clip(column)} appears more than once")
        first = frame[column].first_valid_index()
        if first is not None and not isinstance(frame[column].at[first], Hashable):
            raise FeedbackError(
                f"{clip_text(source, 300)}: column {clip(column)} holds nested values (lists or records); "
                "ids and labels are plain values"
            )
    if id_column == label_column or id_column in RESERVED_COLUMNS:
        raise FeedbackError(
            f"{clip_text(source, 300)}: the id column {clip(id_column)} must differ from the label column "
            f"and from {', '.join(sorted(RESERVED_COLUMNS))}"
        )
    out = pd.DataFrame(
        {
            id_column: frame[id_column].reset_index(drop=True),
            LABEL_COLUMN: frame[label_column].reset_index(drop=True),
        }
    )
    out[SOURCE_COLUMN] = pd.Series(source, index=out.index, dtype="category")
    return out


# -- the window --------------------------------------------------------------------------------------


def window(monitor_date: datetime, days: int) -> tuple[datetime, datetime]:
    """``(start, end)``: batches with ``start < scoring_date <= end`` count. A naive date is UTC."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidInputError(f"feedback.window_days must be a whole number >= 1, got {days!r}")
    end = _utc(monitor_date)
    return end - timedelta(days=days), end


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def scoring_times(frame: pd.DataFrame, where: str = "predictions") -> pd.Series:
    """The ``scoring_date`` column as tz-aware UTC timestamps (ISO strings parsed once per distinct value)."""
    import pandas as pd

    if SCORING_DATE_COLUMN not in frame.columns:
        raise FeedbackError(
            f"{clip_text(where, 300)}: no column {SCORING_DATE_COLUMN!r} (the batch's scoring date)"
        )
    column = frame[SCORING_DATE_COLUMN]
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        utc: pd.Series = column.dt.tz_convert("UTC")
        return utc
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    parsed = pd.to_datetime(pd.Series(uniques, dtype=object), utc=True, format="ISO8601", errors="coerce")
    if parsed.isna().any():
        bad = ", ".join(clip(v) for v in pd.Series(uniques)[parsed.isna().to_numpy()].head(MAX_EXAMPLES))
        raise FeedbackError(
            f"{clip_text(where, 300)}: column {SCORING_DATE_COLUMN!r} holds values that are not "
            f"ISO-8601 dates, e.g. {bad}"
        )
    values = parsed.array.take(codes, allow_fill=True)  # a missing date stays NaT
    return pd.Series(values, index=frame.index, name=SCORING_DATE_COLUMN)


def scoring_in_window(
    frame: pd.DataFrame, start: datetime, end: datetime, *, where: str = "predictions"
) -> pd.DataFrame:
    """The rows of ``frame`` scored in ``(start, end]`` (rows without a scoring date are left out)."""
    import pandas as pd

    times = scoring_times(frame, where)
    mask = (times > pd.Timestamp(_utc(start))) & (times <= pd.Timestamp(_utc(end)))
    return frame.loc[mask.to_numpy()]


# -- live metrics ------------------------------------------------------------------------------------


def _wanted(task_type: str, metrics: Sequence[str] | None, plan: MetricPlan | None) -> tuple[str, ...]:
    names = plan.names if plan is not None else metric_names(task_type)
    if metrics is None:
        return names
    unknown = [m for m in metrics if m not in names]
    if unknown:
        raise InvalidInputError(
            f"unknown metric(s) {', '.join(map(clip, unknown))} for {task_type}; expected {', '.join(names)}"
        )
    return tuple(metrics)


def _version_order(version: Any) -> tuple[int, float, str]:
    text = str(version)
    return (1, float(text), text) if text.isdigit() else (0, 0.0, text)


def latest_version(rows: pd.DataFrame) -> str:
    """The version scored most recently among ``rows`` (ties: the highest version number)."""
    last = rows.groupby(VERSION_COLUMN, sort=False, observed=True)[SCORING_DATE_COLUMN].max()
    return str(max(last.index, key=lambda v: (last[v], _version_order(v))))


def _probabilities(rows: pd.DataFrame) -> tuple[np.ndarray[Any, Any] | None, list[str] | None]:
    """The proba matrix and its classes when every row has them (columns all-missing here are dropped)."""
    import numpy as np

    columns = [c for c in rows.columns if str(c).startswith(PROBA_PREFIX)]
    present = [c for c in columns if rows[c].notna().any()]
    if not present:
        return None, None
    matrix = rows[present].to_numpy(dtype=float)
    if np.isnan(matrix).any():  # some row lacks a probability
        return None, None
    return matrix, [str(c)[len(PROBA_PREFIX) :] for c in present]


def _encoded(true: pd.Series, pred: pd.Series, classes: Sequence[str] | None) -> tuple[Any, Any]:
    """Labels and predictions (as text) as integer codes, the classes first in their order: scikit-learn
    is ten times faster on integers than on strings, and the proba columns keep their order."""
    import numpy as np
    import pandas as pd

    values = pd.Index(pd.unique(np.concatenate([true.to_numpy(object), pred.to_numpy(object)])))
    known = pd.Index(list(classes or []), dtype=object)
    categories = known.append(values.difference(known, sort=False))
    codes = [
        pd.Categorical(s.to_numpy(object), categories=categories).codes.astype(np.int64) for s in (true, pred)
    ]
    return codes[0], codes[1]


def _report(
    rows: pd.DataFrame, task_type: str, wanted: Sequence[str], plan: MetricPlan | None = None
) -> dict[str, float | None]:
    """The ``wanted`` metrics of ``rows``; a plan's custom metrics get ``X=None`` (no features here)."""
    if rows.empty:
        return {}
    if task_type == "regression":
        report = regression_metrics(
            rows[LABEL_COLUMN].to_numpy(float), rows[PREDICTION_COLUMN].to_numpy(float)
        )
    else:
        proba, classes = _probabilities(rows) if {"roc_auc", "log_loss"} & set(wanted) else (None, None)
        as_text = [rows[c].astype(str) for c in (LABEL_COLUMN, PREDICTION_COLUMN)]  # text already: cheap
        true, pred = _encoded(as_text[0], as_text[1], classes)
        codes = list(range(len(classes))) if classes is not None else None
        report = classification_metrics(true, pred, proba, codes)
    if plan is not None and set(plan.extra_names) & set(wanted):
        proba, _ = _probabilities(rows)
        values, errors = plan.values(rows[LABEL_COLUMN].to_numpy(), rows[PREDICTION_COLUMN].to_numpy(), proba)
        if set(errors) & set(wanted):  # never judged, promoted or rolled back on a metric that failed
            raise InvalidInputError(
                "; ".join(f"{m} on live rows (X is None): {e}" for m, e in errors.items())
            )
        report.add(values, errors)
    return {name: report.values[name] for name in wanted if name in report.values}


def live_metrics(
    joined: pd.DataFrame,
    *,
    task_type: str,
    metrics: Sequence[str] | None = None,
    plan: MetricPlan | None = None,
) -> dict[str, dict[str, Any]]:
    """
    Per alias: ``{"version", "labels", "metrics", "other_versions"}``, metrics on the labelled rows of
    the alias's latest version (:func:`latest_version`); ``other_versions`` lists the versions it served
    earlier in the window as ``[{"version", "labels"}]``, left out of the metrics. Classification
    compares labels and predictions as text; ``roc_auc`` and ``log_loss`` need a probability on every row.
    """
    wanted = _wanted(task_type, metrics, plan)
    result: dict[str, dict[str, Any]] = {}
    for alias, rows in joined.groupby(ALIAS_COLUMN, sort=True, observed=True):
        version = latest_version(rows)
        current = rows[rows[VERSION_COLUMN].astype(str) == version]
        counts = rows[VERSION_COLUMN].astype(str).value_counts(sort=False)
        others = [{"version": v, "labels": int(counts[v])} for v in sorted(counts.index, key=_version_order)]
        result[str(alias)] = {
            "version": version,
            "labels": len(current),
            "metrics": _report(current, task_type, wanted, plan),
            "other_versions": [o for o in others if o["version"] != version],
        }
    return result


def paired_metrics(
    joined: pd.DataFrame,
    a: str,
    b: str,
    *,
    task_type: str,
    metrics: Sequence[str] | None = None,
    id_column: str | None = None,
    plan: MetricPlan | None = None,
) -> dict[str, Any]:
    """
    ``{"rows": n, a: {metrics}, b: {metrics}, "versions": {a: v, b: v}}`` on the labelled rows scored
    under both aliases in the same batch (same id, same scoring date), each alias's latest version.
    ``id_column`` defaults to the joined frame's first column (where :func:`join_labels` puts it).
    """
    wanted = _wanted(task_type, metrics, plan)
    key = [id_column or str(joined.columns[0]), SCORING_DATE_COLUMN]
    sides = []
    for alias in (a, b):
        rows = joined[joined[ALIAS_COLUMN].astype(str) == alias]
        version = latest_version(rows) if not rows.empty else None
        sides.append((version, rows[rows[VERSION_COLUMN].astype(str) == version].set_index(key)))
    shared = sides[0][1].index.intersection(sides[1][1].index)
    return {
        "rows": len(shared),
        a: _report(sides[0][1].loc[shared], task_type, wanted, plan),
        b: _report(sides[1][1].loc[shared], task_type, wanted, plan),
        "versions": {a: sides[0][0], b: sides[1][0]},
    }
