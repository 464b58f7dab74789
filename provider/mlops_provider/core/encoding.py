"""How categorical features are encoded when the provider builds the preprocessing. No Airflow in here.

One-hot encoding is dense (the tree ensembles scikit-learn ships need dense input), so its width must
be bounded: a column with thousands of values would make a frame of rows x values floats.

* An ID-like column (more than ``ID_LIKE_UNIQUE_RATIO`` of its non-null values distinct, and more than
  ``ID_LIKE_MIN_UNIQUE`` of them) carries no signal a model can generalise from and is refused, naming
  the column: drop it from ``data.features``, or pass your own Pipeline.
* Any other categorical keeps its ``MAX_ONE_HOT_CATEGORIES - 1`` most frequent values as columns;
  rarer values and values never seen in training share one "infrequent" column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

ID_LIKE_UNIQUE_RATIO = 0.5
ID_LIKE_MIN_UNIQUE = 50
MAX_ONE_HOT_CATEGORIES = 50


def is_id_like(n_unique: int, n_non_null: int) -> bool:
    """Nearly one value per row: an identifier, not a category (also used by the drift check)."""
    return n_unique > ID_LIKE_MIN_UNIQUE and n_unique > ID_LIKE_UNIQUE_RATIO * n_non_null


class IdLikeColumnError(InvalidInputError):
    """A categorical feature has (nearly) one value per row."""


def refuse_id_like(X: pd.DataFrame, categorical: Sequence[str], where: str) -> None:
    """Raise :class:`IdLikeColumnError` naming every ID-like categorical feature."""
    found = []
    for column in categorical:
        values = X[column].dropna()
        distinct = int(values.nunique())
        if is_id_like(distinct, len(values)):
            found.append(f"{column!r} ({distinct} distinct values in {len(values)} rows)")
    if found:
        raise IdLikeColumnError(
            f"{where}: feature(s) {', '.join(found)} look like IDs: one-hot encoding them would add a "
            "column per row and teach the model nothing; drop them from data.features (keep an ID for "
            "joins in scoring.id_column), or pass an estimator factory that returns your own Pipeline"
        )


def one_hot_encoder() -> Any:
    """A dense one-hot encoder with a bounded width; unseen values count as infrequent."""
    from sklearn.preprocessing import OneHotEncoder

    return OneHotEncoder(
        handle_unknown="infrequent_if_exist",
        max_categories=MAX_ONE_HOT_CATEGORIES,
        sparse_output=False,
    )
