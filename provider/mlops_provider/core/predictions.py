"""Prediction files: what batch scoring writes, served and in shadow. No Airflow and no MLflow in here.

One row per scored input row: the id column(s), ``row`` (the input row number), ``prediction``, one
``proba_<class>`` per class for a classifier (the model's ``classes_`` order), ``model_version``,
``alias`` (the alias it was scored under), ``scored_at`` (when) and ``scoring_date`` (the scoring
run's logical date). Served predictions go to the configured output; those of other versions scored
on the same batch (``@challenger``, ``@previous_champion``: never served) go beside it, to
:func:`shadow_uri`. The performance monitor joins both with late labels (:mod:`.feedback`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.core.feedback import (
    ALIAS_COLUMN,
    PREDICTION_COLUMN,
    ROW_COLUMN,
    SCORED_AT_COLUMN,
    SCORING_DATE_COLUMN,
    VERSION_COLUMN,
    proba_columns,
)
from mlops_provider.core.metrics import predict_with_proba
from mlops_provider.core.monitoring import iso_utc

if TYPE_CHECKING:
    import pandas as pd

SHADOW_MARK = ".shadow"


def _chunk(model: Any, chunk: pd.DataFrame, features: Sequence[str], probabilities: bool) -> pd.DataFrame:
    import pandas as pd

    rows = chunk[list(features)]
    # with probabilities: one pass where the argmax of predict_proba is exactly predict (core.metrics)
    predicted, proba = predict_with_proba(model, rows) if probabilities else (model.predict(rows), None)
    out = pd.DataFrame({PREDICTION_COLUMN: predicted}, index=chunk.index)
    if proba is not None and getattr(model, "classes_", None) is not None:
        for name, column in zip(proba_columns(model.classes_), proba.T, strict=True):
            out[name] = column
    return out


def score_frame(
    model: Any,
    chunk: pd.DataFrame,
    features: Sequence[str],
    row_start: int = 0,
    id_columns: Sequence[str] = (),
    probabilities: bool = False,
) -> pd.DataFrame:
    """One chunk's predictions: id columns, ``row`` (from ``row_start``), ``prediction`` and, with
    ``probabilities`` for a classifier, ``proba_<class>``."""
    import numpy as np
    import pandas as pd

    head = chunk[list(id_columns)].reset_index(drop=True) if id_columns else pd.DataFrame()
    head[ROW_COLUMN] = np.arange(row_start, row_start + len(chunk), dtype=np.int64)
    scored = _chunk(model, chunk, features, probabilities).reset_index(drop=True)
    return pd.concat([head, scored], axis=1)


def stamp(
    predictions: pd.DataFrame, *, version: str, alias: str, scored_at: datetime, scoring_date: Any
) -> pd.DataFrame:
    """The predictions with the version and alias that made them, when, and for which scoring date."""
    predictions[VERSION_COLUMN] = str(version)
    predictions[ALIAS_COLUMN] = str(alias)
    predictions[SCORED_AT_COLUMN] = iso_utc(scored_at)
    predictions[SCORING_DATE_COLUMN] = iso_utc(scoring_date) or iso_utc(scored_at)
    return predictions


def shadow_uri(output_uri: str) -> str:
    """Where a batch's shadow predictions go: beside the output, ``run.parquet`` -> ``run.shadow.parquet``."""
    head, sep, name = output_uri.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    shadow = f"{stem}{SHADOW_MARK}.{suffix}" if dot and stem else f"{name}{SHADOW_MARK}"
    return f"{head}{sep}{shadow}"
