"""A batch checked against the model before it is scored. No Airflow and no MLflow in here.

* Types, against the model's logged input signature (:class:`ColumnSpec`, MLflow's type names): text
  in a column the model takes as a number, numbers (e.g. an int-typed category) in a column it takes as
  text, and text in a boolean column are refused, naming each column with an example value.
* Non-finite values: ``inf``/``-inf`` in any feature is refused; a missing value (NaN, None) only where
  the model cannot take it: a column goes through an imputer or a OneHotEncoder in the model's leading
  ColumnTransformer, or the final estimator takes NaN itself (its ``allow_nan`` tag).
* Unseen categories: for every column a OneHotEncoder encodes, the share of rows whose value it did not
  see in training (a missing value counts when training had none). An encoder that errors on unknown
  categories refuses any; otherwise the shares are reported and :func:`over_limit` compares them with a
  configured maximum.

Every problem raises one :class:`ScoringInputError` naming the columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})
UNSEEN_ACTIONS = ("warn", "fail")
_EXAMPLES = 3


class ScoringInputError(InvalidInputError):
    """The batch cannot be scored by this model; a retry cannot change that."""


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of a model's logged signature: name, MLflow type name, whether it is required."""

    name: str
    type: str
    required: bool = True


@dataclass
class ModelInputs:
    """What the fitted model itself says about its inputs (see :func:`model_inputs`)."""

    categories: dict[str, list[Any]] = field(default_factory=dict)  # OneHotEncoder categories per column
    strict_categories: set[str] = field(default_factory=set)  # encoders with handle_unknown="error"
    nan_ok: set[str] = field(default_factory=set)  # columns where a missing value is handled


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: str | bytes) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _examples(values: Any) -> str:
    return ", ".join(repr(v) for v in list(dict.fromkeys(values))[:_EXAMPLES])


def _allow_nan(estimator: Any) -> bool:
    from sklearn.utils import get_tags

    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # not a scikit-learn estimator, or tags unavailable: assume it cannot
        return False


def _first_step(step: Any) -> Any:
    from sklearn.pipeline import Pipeline

    return step.steps[0][1] if isinstance(step, Pipeline) and step.steps else step


def _handles_missing(step: Any) -> bool:
    from sklearn.preprocessing import OneHotEncoder

    first = _first_step(step)
    return isinstance(first, OneHotEncoder) or type(first).__module__.startswith("sklearn.impute")


def model_inputs(model: Any, features: Sequence[str]) -> ModelInputs:
    """The categories each OneHotEncoder knows and the columns that take missing values."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    is_pipeline = isinstance(model, Pipeline) and bool(model.steps)
    final_ok = _allow_nan(model.steps[-1][1] if is_pipeline else model)
    head = model.steps[0][1] if is_pipeline else None
    found = ModelInputs()
    if not isinstance(head, ColumnTransformer) or not hasattr(head, "transformers_"):
        if final_ok or (head is not None and _handles_missing(head)):
            found.nan_ok = set(features)
        return found
    for _, transformer, columns in head.transformers_:
        names = [c for c in (columns if isinstance(columns, list | tuple) else []) if isinstance(c, str)]
        if isinstance(transformer, str):  # "drop" never reaches the model; "passthrough" does
            if transformer == "drop" or final_ok:
                found.nan_ok.update(names)
            continue
        if _handles_missing(transformer) or final_ok:
            found.nan_ok.update(names)
        encoder = _first_step(transformer)
        if isinstance(encoder, OneHotEncoder) and hasattr(encoder, "categories_"):
            for name, known in zip(names, encoder.categories_, strict=False):
                found.categories[name] = list(known)
                if encoder.handle_unknown == "error":
                    found.strict_categories.add(name)
    return found


def _type_problem(column: pd.Series, spec: ColumnSpec) -> str | None:
    import pandas as pd

    values = column.dropna()
    if values.empty:
        return None
    numeric_dtype = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if spec.type == "string":
        if numeric_dtype or pd.api.types.is_bool_dtype(column):
            return (
                f"{spec.name!r} holds {column.dtype} values (e.g. {_examples(values)}), the model takes text"
            )
        wrong = values[[not isinstance(v, str) for v in values]]
        if len(wrong):
            return f"{spec.name!r} holds non-text values (e.g. {_examples(wrong)}), the model takes text"
    elif spec.type in NUMERIC_TYPES or spec.type == "boolean":
        if numeric_dtype or pd.api.types.is_bool_dtype(column):
            return None
        text = [v for v in values if isinstance(v, str | bytes)]
        if text:
            text = [v for v in text if not _is_number(v)] or text  # the offending values first
            return f"{spec.name!r} holds text (e.g. {_examples(text)}), the model takes {spec.type} values"
    return None


def _missing_problems(frame: pd.DataFrame, features: Sequence[str], inputs: ModelInputs) -> list[str]:
    import numpy as np
    import pandas as pd

    problems = []
    for name in features:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            infinite = int(np.isinf(column.to_numpy(dtype=float, na_value=np.nan)).sum())
            if infinite:
                problems.append(f"{name!r} holds {infinite} infinite value(s), which no model takes")
        missing = int(column.isna().sum())
        if missing and name not in inputs.nan_ok:
            problems.append(f"{name!r} holds {missing} missing value(s) (NaN), which the model cannot take")
    return problems


def unseen_counts(frame: pd.DataFrame, inputs: ModelInputs) -> dict[str, int]:
    """Per encoded column, the rows with a category the model did not see in training."""
    counts = {}
    for name, known in inputs.categories.items():
        if name not in frame.columns or len(frame) == 0:
            continue
        column = frame[name]
        present = column.notna()
        seen = {k for k in known if not _is_missing(k)}
        unseen = int((~column[present].isin(seen)).sum())
        if not any(_is_missing(k) for k in known):
            unseen += int((~present).sum())
        counts[name] = unseen
    return counts


def as_shares(counts: Mapping[str, int], rows: int) -> dict[str, float]:
    """Counts per column as shares of ``rows`` (6 decimals), by column name."""
    return {name: round(count / rows, 6) for name, count in sorted(counts.items())} if rows else {}


def unseen_shares(frame: pd.DataFrame, inputs: ModelInputs) -> dict[str, float]:
    """Per encoded column, the share of rows with a category the model did not see in training."""
    return as_shares(unseen_counts(frame, inputs), len(frame))


def check_batch(
    frame: pd.DataFrame,
    features: Sequence[str],
    signature: Sequence[ColumnSpec] | None,
    inputs: ModelInputs,
    where: str,
) -> dict[str, float]:
    """Refuse a batch the model cannot score (one error naming every column); the unseen shares."""
    return as_shares(checked_unseen_counts(frame, features, signature, inputs, where), len(frame))


def checked_unseen_counts(
    frame: pd.DataFrame,
    features: Sequence[str],
    signature: Sequence[ColumnSpec] | None,
    inputs: ModelInputs,
    where: str,
) -> dict[str, int]:
    """:func:`check_batch`'s checks; the rows with an unseen category per column (a chunk's counts add
    up over a streamed batch, its shares would not)."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ScoringInputError(f"{where}: missing column(s) {', '.join(map(repr, missing))}")
    specs = {spec.name: spec for spec in signature or () if spec.name in features}
    problems = [p for name, spec in specs.items() if (p := _type_problem(frame[name], spec))]
    if problems:
        raise ScoringInputError(f"{where}: wrong value types: {'; '.join(problems)}")
    problems = _missing_problems(frame, features, inputs)
    if problems:
        raise ScoringInputError(f"{where}: non-finite values: {'; '.join(problems)}")
    counts = unseen_counts(frame, inputs)
    strict = sorted(name for name in inputs.strict_categories if counts.get(name))
    if strict:
        raise ScoringInputError(
            f"{where}: unseen categories in column(s) {', '.join(map(repr, strict))}, whose encoder "
            "refuses unknown categories"
        )
    return counts


def check_unseen_options(max_share: Any, on_unseen: Any) -> float | None:
    """The validated maximum unseen share (``None``: no limit); ``on_unseen`` must be warn or fail."""
    if on_unseen not in UNSEEN_ACTIONS:
        raise ScoringInputError(f"on_unseen must be one of {', '.join(UNSEEN_ACTIONS)}, got {on_unseen!r}")
    if isinstance(max_share, str):  # a rendered template
        text = max_share.strip()
        if text.lower() in ("", "none", "null"):
            return None
        try:
            max_share = float(text)
        except ValueError:
            pass
    if max_share is None:
        return None
    if isinstance(max_share, bool) or not isinstance(max_share, int | float) or not 0 <= max_share <= 1:
        raise ScoringInputError(f"max_unseen_share must be a number between 0 and 1, got {max_share!r}")
    return float(max_share)


def over_limit(shares: Mapping[str, float], max_share: float | None) -> dict[str, float]:
    """The columns whose unseen share exceeds ``max_share`` (none without a limit)."""
    if max_share is None:
        return {}
    return {name: share for name, share in shares.items() if share > max_share}
