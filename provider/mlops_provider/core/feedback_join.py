"""Late labels joined to batch predictions, with an account of every label that could not be used.

No Airflow, no MLflow. :func:`join_labels` joins labels (from :func:`~mlops_provider.core.feedback.
prepare_labels`) to the predictions scored in the window (vocabulary: :mod:`mlops_provider.core.feedback`):

* ids are normalised: ``12``, ``12.0`` and ``"12"`` are one id, dates compare as ISO text; no id in
  common at all raises :class:`FeedbackError` showing what each side's ids look like;
* a row scored again in a later batch (same id, version and alias) keeps its latest scoring date;
* labels missing, of another kind than the predictions (``0``/``1`` for a model predicting ``"rain"``;
  for regression, not a finite number) or given twice with different values are left out; the same
  label twice counts once; a label naming a class the model does not know is kept (the model is wrong).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from mlops_provider.core.feedback import (
    ALIAS_COLUMN,
    LABEL_COLUMN,
    MAX_EXAMPLES,
    MAX_LISTED_COLUMNS,
    PREDICTION_COLUMN,
    PROBA_PREFIX,
    RESERVED_COLUMNS,
    SCORING_DATE_COLUMN,
    SERVED_ALIAS,
    SOURCE_COLUMN,
    VERSION_COLUMN,
    FeedbackError,
    LabelIssues,
    clip,
    clip_text,
    scoring_times,
)
from mlops_provider.core.metrics import metric_names

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    Mask = np.ndarray[Any, np.dtype[np.bool_]]

_NEEDED = (PREDICTION_COLUMN, VERSION_COLUMN, ALIAS_COLUMN, SCORING_DATE_COLUMN)  # besides the id column

# -- values as text, ids as keys ---------------------------------------------------------------------


def _text(value: Any) -> str:
    """A class or id as text: ``12``, ``12.0`` -> ``"12"``; a midnight date -> ``"2015-01-03"``."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return str(int(number)) if number.is_integer() and abs(number) < 2**63 else str(number)
    if isinstance(value, datetime) and value.tzinfo is None and value.time() == time():
        value = value.date()  # a date read as a timestamp
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "bool"
    return "number" if isinstance(value, numbers.Number) else "text"


def _id_side(ids: pd.Series) -> tuple[pd.Series, str]:
    """Non-null ids as ``(keys, "number")`` (int64 when whole, else float64) or ``(keys, "text")``."""
    import pandas as pd

    api = pd.api.types
    if api.is_bool_dtype(ids.dtype):
        return ids.astype(str).astype(object), "text"
    if api.is_numeric_dtype(ids.dtype):
        return _whole(ids), "number"
    if api.is_datetime64_any_dtype(ids.dtype):
        return ids.map(_text).astype(object), "text"
    inferred = api.infer_dtype(ids, skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return _whole(pd.to_numeric(ids)), "number"
    if inferred == "string":
        return ids.astype(object), "text"
    return ids.map(_text).astype(object), "text"


def _whole(keys: pd.Series) -> pd.Series:
    """Number ids as int64 when every one is whole (``12.0`` -> ``12``), else as float64."""
    import numpy as np

    if keys.dtype.kind == "i" or (keys.dtype.kind == "u" and (keys.empty or int(keys.max()) < 2**63)):
        return keys.astype("int64")
    if keys.dtype.kind == "u":  # past int64: as text, so no id wraps onto another
        return keys.map(str).astype(object)
    values = keys.to_numpy(float)
    whole = np.all(np.isfinite(values) & (np.abs(values) < 2**53) & (values == np.round(values)))
    return keys.astype("int64" if whole else "float64")


def _as_numbers(text: pd.Series) -> pd.Series | None:
    """Text ids read as numbers when every one is a number (``"12"``), else None."""
    import pandas as pd

    if pd.to_numeric(text.head(20), errors="coerce").isna().any():
        return None
    parsed = pd.to_numeric(text, errors="coerce")
    return None if parsed.isna().any() else _whole(parsed)


def _id_keys(left: pd.Series, right: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Both sides' non-null ids as comparable keys: numbers when both sides read as numbers, else text."""
    (lkeys, lkind), (rkeys, rkind) = _id_side(left), _id_side(right)
    if lkind != rkind:
        parsed = _as_numbers(lkeys if lkind == "text" else rkeys)
        if parsed is not None:
            lkeys, rkeys = (parsed, rkeys) if lkind == "text" else (lkeys, parsed)
            lkind = rkind = "number"
    if lkind == rkind == "number":
        if lkeys.dtype != rkeys.dtype:
            lkeys, rkeys = lkeys.astype(float), rkeys.astype(float)
        return lkeys, rkeys
    return _to_text(lkeys, lkind), _to_text(rkeys, rkind)


def _to_text(keys: pd.Series, kind: str) -> pd.Series:
    if kind == "text":
        return keys
    return keys.astype(str).astype(object) if keys.dtype.kind == "i" else keys.map(_text).astype(object)


def _examples(values: Any, mask: Any, sources: Any = None) -> list[str]:
    """Up to three clipped values where ``mask`` holds, each ``'id' (file.csv)`` when files are known."""
    import numpy as np

    out = []
    for pos in np.flatnonzero(mask)[:MAX_EXAMPLES]:
        text = clip(values.iloc[pos])
        if sources is not None:  # the file name's end (``….csv``) says more than its start
            name = clip_text(str(sources.iloc[pos]).rsplit("/", 1)[-1][::-1], 80 - len(text) - 3)
            text += f" ({name[::-1]})"
        out.append(text)
    return out


def _look(ids: pd.Series, whose: str) -> str:
    import pandas as pd

    shown = ", ".join(clip(v, 30) for v in pd.unique(ids.dropna())[:MAX_EXAMPLES])
    return f"{whose}' ids look like {shown or 'nothing'} ({clip_text(str(ids.dtype), 20)})"


def _distinct(values: pd.Series, mask: Any) -> list[str]:
    """Up to three distinct clipped values where ``mask`` holds."""
    import pandas as pd

    if not mask.any():
        return []
    return [clip(v) for v in pd.unique(values[mask].head(1000))[:MAX_EXAMPLES]]


# -- the join ----------------------------------------------------------------------------------------


def _check_columns(predictions: pd.DataFrame, labels: pd.DataFrame, id_column: str, where: str) -> None:
    if id_column in RESERVED_COLUMNS:
        raise FeedbackError(f"{clip_text(where, 300)}: the id column cannot be {clip(id_column)}")
    for whose, frame, needed in (("predictions", predictions, _NEEDED), ("labels", labels, (LABEL_COLUMN,))):
        for column in (id_column, *needed):
            if column not in frame.columns:
                have = ", ".join(clip(c) for c in list(frame.columns)[:MAX_LISTED_COLUMNS])
                raise FeedbackError(
                    f"{clip_text(where, 300)}: the {whose} have no column {clip(column)}; "
                    f"they have {have or 'none'}"
                )


def _present_labels(labels: pd.DataFrame, id_column: str, issues: LabelIssues) -> pd.DataFrame:
    """Label rows with both an id and a label; the others counted."""
    no_id = labels[id_column].isna().to_numpy()
    no_label = labels[LABEL_COLUMN].isna().to_numpy() & ~no_id
    issues.note("missing_ids", int(no_id.sum()), [])
    issues.note(
        "missing_labels",
        int(no_label.sum()),
        _examples(labels[id_column], no_label, labels.get(SOURCE_COLUMN)),
    )
    if no_id.any() or no_label.any():
        labels = labels.loc[~(no_id | no_label)]
    return labels


@dataclass
class _Predicted:
    """The predictions' values as the join compares them, and what the model can predict."""

    values: Any  # classification: text per row; regression: float per row
    kinds: set[str] = field(default_factory=set)  # bool | number | text
    classes: set[str] = field(default_factory=set)
    probas: dict[str, str] = field(default_factory=dict)  # proba column -> its class as text


def _predicted(predictions: pd.DataFrame, task_type: str) -> _Predicted:
    import numpy as np
    import pandas as pd

    column = predictions[PREDICTION_COLUMN]
    if task_type == "regression":
        return _Predicted(pd.to_numeric(column, errors="coerce").to_numpy(float))
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    present = [u for u in uniques if not pd.isna(u)]
    kinds = {_kind(u) for u in present}
    probas = {}
    for name in (str(c) for c in predictions.columns if str(c).startswith(PROBA_PREFIX)):
        suffix = name[len(PROBA_PREFIX) :]  # proba_1.0 of a model whose classes are floats: class "1"
        number = _float_or_nan(suffix) if kinds == {"number"} else math.nan
        probas[name] = _text(number) if math.isfinite(number) else suffix
    classes = set(probas.values()) or {_text(u) for u in present}
    texts = np.array([_text(u) for u in uniques], dtype=object)
    return _Predicted(texts[codes], kinds, classes, probas)


def _label_values(
    labels: pd.DataFrame, predicted: _Predicted, task_type: str, issues: LabelIssues
) -> tuple[Any, Any, Any]:
    """``(values, usable, unknown)`` per label row; labels of the wrong kind are counted, not usable."""
    import numpy as np
    import pandas as pd

    column = labels[LABEL_COLUMN]
    if task_type == "regression":
        try:
            values = pd.to_numeric(column, errors="coerce").to_numpy(float)
        except (TypeError, ValueError):
            values = column.map(_float_or_nan).to_numpy(float)
        usable = np.isfinite(values)
        unknown = np.zeros(len(values), dtype=bool)
    else:
        issues.expected_kind = (
            f"of the kind the model predicts ({' or '.join(sorted(predicted.kinds)) or '?'})"
        )
        codes, uniques = pd.factorize(column)
        texts = [_text(u) for u in uniques]
        checked = bool(predicted.kinds)  # nothing scored: nothing to compare the kinds with
        wrong = [
            checked and _kind(u) not in predicted.kinds and t not in predicted.classes
            for u, t in zip(uniques, texts, strict=True)
        ]
        values = np.array(texts, dtype=object)[codes]
        usable = ~np.array(wrong, dtype=bool)[codes]
        unknown = (
            usable & np.array([checked and t not in predicted.classes for t in texts], dtype=bool)[codes]
        )
    issues.note("type_mismatch", int((~usable).sum()), _distinct(column, ~usable))
    return values, usable, unknown


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _unique_labels(
    labels: pd.DataFrame, keys: Any, values: Any, usable: Mask, id_column: str, issues: LabelIssues
) -> Mask:
    """Usable label rows, one per id: the same label twice counts once; different labels drop the id."""
    import numpy as np
    import pandas as pd

    pairs = pd.DataFrame({"key": keys, "value": values}).loc[usable]
    repeated = pairs["key"].duplicated(keep=False)
    if not repeated.any():
        return usable
    distinct = pairs.drop_duplicates()
    conflicting = pairs["key"].isin(distinct["key"][distinct["key"].duplicated()])
    first = ~pairs["key"].duplicated(keep="first")
    mark = np.zeros(len(keys), dtype=bool)
    ids, sources = labels[id_column], labels.get(SOURCE_COLUMN)
    for name, mask in (
        ("conflicting_ids", first & conflicting),
        ("duplicate_ids", first & repeated & ~conflicting),
    ):
        mark[:] = False
        mark[pairs.index[mask.to_numpy()]] = True
        issues.note(name, int(mark.sum()), _examples(ids, mark, sources))
    keep = np.zeros(len(keys), dtype=bool)
    keep[pairs.index[(first & ~conflicting).to_numpy()]] = True
    return keep


def _groups(predictions: pd.DataFrame) -> tuple[Any, Any, Any, Any]:
    """``(version codes, versions as text, alias codes, aliases as text)``, factorized once."""
    import numpy as np
    import pandas as pd

    out = []
    for column in (VERSION_COLUMN, ALIAS_COLUMN):
        codes, names = pd.factorize(predictions[column], use_na_sentinel=False)
        out += [codes.astype(np.int64), np.array([str(n) for n in names], dtype=object)]
    return out[0], out[1], out[2], out[3]


def _latest(
    predictions: pd.DataFrame, keys: Any, group: Any, times: pd.Series, id_column: str, issues: LabelIssues
) -> Mask:
    """Prediction rows to keep: of a row scored again (same id, version, alias), the latest batch's."""
    import numpy as np
    import pandas as pd

    rows = pd.DataFrame({"key": keys, "group": group})
    if not rows.duplicated().any():
        return np.ones(len(rows), dtype=bool)
    order = np.argsort(times.to_numpy(dtype="datetime64[ns]"), kind="stable")
    stale = np.zeros(len(rows), dtype=bool)
    stale[order[rows.iloc[order].duplicated(keep="last").to_numpy()]] = True
    issues.note("rescored", int(stale.sum()), _examples(predictions[id_column], stale))
    return ~stale


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    id_column: str,
    task_type: str,
    where: str,
    served_alias: str = SERVED_ALIAS,
) -> tuple[pd.DataFrame, LabelIssues]:
    """
    The labelled predictions: ``[id, label, prediction, model_version, alias, scoring_date, proba_*]``,
    one row per (id, version, alias) with its latest scoring date (a UTC timestamp), and the issues.
    ``labels`` has :func:`~mlops_provider.core.feedback.prepare_labels`'s shape; ``where`` names both
    sources in errors; ``served_alias``'s rows were the answers (the others shadow). Ids are normalised;
    labels, predictions and proba suffixes are text (``str(class)``, whole numbers without ``.0``).
    """
    import numpy as np
    import pandas as pd

    metric_names(task_type)
    _check_columns(predictions, labels, id_column, where)
    issues = LabelIssues(label_rows=len(labels))
    labels = _present_labels(labels, id_column, issues)
    if predictions[id_column].isna().any():
        predictions = predictions.loc[predictions[id_column].notna()]
    pred_keys, label_keys = (k.to_numpy() for k in _id_keys(predictions[id_column], labels[id_column]))
    predicted = _predicted(predictions, task_type)
    values, usable, unknown = _label_values(labels, predicted, task_type, issues)
    kept = np.flatnonzero(_unique_labels(labels, label_keys, values, usable, id_column, issues))
    times = scoring_times(predictions, where)
    versions, version_text, aliases, alias_text = _groups(predictions)
    group = versions * len(alias_text) + aliases
    rows = np.flatnonzero(_latest(predictions, pred_keys, group, times, id_column, issues))
    found = pd.Index(label_keys[kept]).get_indexer(pd.Index(pred_keys[rows]))
    hit = found >= 0
    if not hit.any() and len(rows) and len(label_keys) and not pd.Index(label_keys).isin(pred_keys).any():
        raise FeedbackError(
            f"{clip_text(where, 300)}: no label id matches a predicted id (column {clip(id_column)}); "
            f"{_look(predictions[id_column], 'the predictions')}; {_look(labels[id_column], 'the labels')}"
        )
    _count_unscored(labels, kept, found[hit], unknown, id_column, issues)
    waiting = np.zeros(len(predictions), dtype=bool)
    waiting[rows[~hit]] = True
    waiting &= alias_text[aliases] == served_alias
    issues.note("unlabelled_predictions", int(waiting.sum()), _examples(predictions[id_column], waiting))
    matched, label_rows = rows[hit], kept[found[hit]]
    data: dict[str, Any] = {
        id_column: pred_keys[matched],
        LABEL_COLUMN: values[label_rows],
        PREDICTION_COLUMN: predicted.values[matched],
        VERSION_COLUMN: version_text[versions[matched]],
        ALIAS_COLUMN: alias_text[aliases[matched]],
        SCORING_DATE_COLUMN: times.array.take(matched),
    }
    for column, name in predicted.probas.items():
        data[PROBA_PREFIX + name] = predictions[column].to_numpy(dtype=float)[matched]
    return pd.DataFrame(data), issues


def _count_unscored(
    labels: pd.DataFrame, kept: Any, used: Any, unknown: Mask, id_column: str, issues: LabelIssues
) -> None:
    """Count usable label ids never scored in the window, and labels of classes the model does not know."""
    import numpy as np

    scored = np.zeros(len(labels), dtype=bool)
    scored[kept[used]] = True
    unscored = np.zeros(len(labels), dtype=bool)
    unscored[kept] = ~scored[kept]
    ids, sources = labels[id_column], labels.get(SOURCE_COLUMN)
    issues.note("unscored_ids", int(unscored.sum()), _examples(ids, unscored, sources))
    strange = unknown & scored
    issues.note("unknown_class", int(strange.sum()), _distinct(labels[LABEL_COLUMN], strange))
