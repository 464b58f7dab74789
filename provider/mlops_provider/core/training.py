"""Fit a scikit-learn estimator on a DataFrame, reproducibly. No Airflow and no MLflow in here.

* The estimator is named by import path: a scikit-learn estimator class
  (``sklearn.ensemble.RandomForestClassifier``) built with ``params``, or a factory function returning
  an estimator or Pipeline (``my_pkg.models:make_pipeline``) from a module in ``allowed_modules``,
  called with ``params``. What may be imported and called is :mod:`mlops_provider.core.estimators`'s.
* When the estimator is not already a Pipeline and the features hold non-numeric columns (object,
  category, bool, string) or missing numeric values, it is wrapped in a Pipeline whose ColumnTransformer
  one-hot encodes the categorical columns (missing values become their own category; at most
  ``MAX_ONE_HOT_CATEGORIES`` columns each, rare and unseen values in one "infrequent" column; an
  ID-like column is refused, see :mod:`mlops_provider.core.encoding`) and imputes numeric columns with
  their median.
* Every ``random_state`` parameter left at ``None`` (also inside Pipelines) is set to the seed, so a
  retry fits the same model. XGBoost and LightGBM estimators get ``n_jobs=1`` when it is left unset, and an
  XGBoost classifier is trained on label codes and answers with the original labels (see
  :func:`~mlops_provider.core.estimators.library_defaults` and
  :func:`~mlops_provider.core.estimators.encode_labels`).
* Rows whose target is missing are dropped (and counted); a classification class with fewer than two
  rows cannot be in both training and holdout and is refused, as is any class that ends up only in the
  holdout.

Every bad input raises :class:`TrainingInputError` naming the thing at fault.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.core.encoding import refuse_id_like
from mlops_provider.core.estimators import (
    TrainingInputError,
    build_estimator,
    encode_labels,
    import_object,
    is_library_error,
    library_defaults,
)
from mlops_provider.core.metrics import metric_names

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TrainingInputError",
    "TrainingResult",
    "TrainingSpec",
    "build_estimator",
    "import_object",
    "train",
]


@dataclass
class TrainingSpec:
    """What to train. ``features=None`` means every column but the target."""

    target: str
    estimator: str
    features: Sequence[str] | None = None
    params: Mapping[str, Any] | None = None
    task_type: str = "classification"
    test_size: float = 0.2
    random_state: int = 42
    allowed_modules: Sequence[str] = ()  # modules whose factory functions may build the estimator


@dataclass
class TrainingResult:
    model: Any
    features: list[str]
    train: pd.DataFrame  # training rows, every column of the input
    holdout: pd.DataFrame  # holdout rows, every column of the input (slices may use non-features)
    dropped_missing_target: int = 0
    preprocessed: bool = False
    effective_params: dict[str, Any] = field(default_factory=dict)

    @property
    def X_train(self) -> pd.DataFrame:
        return self.train[self.features]

    @property
    def X_holdout(self) -> pd.DataFrame:
        return self.holdout[self.features]


def seed_estimator(estimator: Any, random_state: int) -> dict[str, Any]:
    """Set every ``random_state`` parameter left at ``None`` to the seed; return what was set."""
    seeded = {
        key: random_state
        for key, value in estimator.get_params(deep=True).items()
        if (key == "random_state" or key.endswith("__random_state")) and value is None
    }
    if seeded:
        estimator.set_params(**seeded)
    return seeded


def categorical_columns(X: pd.DataFrame) -> list[str]:
    import pandas as pd

    return [
        str(c)
        for c in X.columns
        if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])
    ]


def needs_preprocessing(X: pd.DataFrame) -> bool:
    cats = set(categorical_columns(X))
    numeric = [c for c in X.columns if c not in cats]
    return bool(cats) or bool(X[numeric].isna().any().any())


def wrap_with_preprocessor(estimator: Any, X: pd.DataFrame) -> Any:
    """A Pipeline: ColumnTransformer (bounded one-hot categoricals, median-imputed numerics) -> estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from mlops_provider.core.encoding import one_hot_encoder

    cats = categorical_columns(X)
    numeric = [str(c) for c in X.columns if c not in set(cats)]
    transformers = []
    if numeric:
        transformers.append(("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric))
    if cats:
        transformers.append(("categorical", one_hot_encoder(), cats))
    preprocessor = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocessor), ("estimator", estimator)])


def prepare_frame(
    frame: pd.DataFrame, spec: TrainingSpec, where: str = "training data"
) -> tuple[pd.DataFrame, list[str], int]:
    """Check the frame against the spec; return it without missing-target rows, the features, and the drop count."""
    import pandas as pd

    metric_names(spec.task_type)  # ValueError on an unknown task type
    if frame is None or len(frame) == 0:
        raise TrainingInputError(f"{where}: the data set is empty (0 rows)")
    columns = [str(c) for c in frame.columns]
    if spec.target not in columns:
        raise TrainingInputError(
            f"{where}: target column {spec.target!r} not found; columns: {', '.join(columns)}"
        )
    if spec.features is None:
        features = [c for c in columns if c != spec.target]
    else:
        if isinstance(spec.features, str) or not all(isinstance(f, str) for f in spec.features):
            raise TrainingInputError(f"features must be a list of column names, got {spec.features!r}")
        features = list(spec.features)
        missing = [f for f in features if f not in columns]
        if missing:
            raise TrainingInputError(
                f"{where}: feature column(s) {', '.join(map(repr, missing))} not found; columns: {', '.join(columns)}"
            )
        if spec.target in features:
            raise TrainingInputError(f"{where}: the target {spec.target!r} is also listed as a feature")
    if not features:
        raise TrainingInputError(f"{where}: no feature columns besides the target {spec.target!r}")
    frame = frame.loc[:, ~pd.Index(columns).duplicated()]
    keep = frame[spec.target].notna()
    dropped = int((~keep).sum())
    frame = frame.loc[keep].reset_index(drop=True)
    if len(frame) == 0:
        raise TrainingInputError(f"{where}: every row has a missing target {spec.target!r}")
    if spec.task_type == "regression":
        target = frame[spec.target]
        if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
            sample = target.astype(str).head(3).tolist()
            raise TrainingInputError(
                f"{where}: target {spec.target!r} has dtype {target.dtype} (e.g. {sample}); "
                "regression needs a numeric target"
            )
    return frame, features, dropped


def holdout_mask(frame: pd.DataFrame, test_size: float, random_state: int) -> Any:
    """
    A stable split: a row is in the holdout when the hash of its content (salted with the seed) falls
    below ``test_size``. The same row lands on the same side in every retrain, so rows an earlier model
    (the champion) was trained on never enter a later challenger's holdout, and the champion is not
    scored on data it has memorised. Duplicate rows always share a side.
    """
    import numpy as np
    import pandas as pd

    salt = f"{int(random_state) % 10**16:016d}"
    hashes = pd.util.hash_pandas_object(frame, index=False, hash_key=salt).to_numpy(dtype=np.uint64)
    return (hashes / np.float64(2**64)) < float(test_size)


def split(frame: pd.DataFrame, spec: TrainingSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train/holdout split by :func:`holdout_mask` (deterministic, stable across retrains)."""
    if not isinstance(spec.test_size, int | float) or not 0 < float(spec.test_size) < 1:
        raise TrainingInputError(f"test_size must be a fraction between 0 and 1, got {spec.test_size!r}")
    n_holdout = int(-(-len(frame) * float(spec.test_size) // 1))
    if len(frame) < 4 or n_holdout < 1 or len(frame) - n_holdout < 2:
        raise TrainingInputError(
            f"training data has {len(frame)} usable row(s): too few for a test_size of {spec.test_size}"
        )
    if spec.task_type == "classification":
        counts = frame[spec.target].value_counts()
        rare = counts[counts < 2]
        if len(rare):
            raise TrainingInputError(
                f"target {spec.target!r}: class(es) {', '.join(map(repr, rare.index.tolist()))} have a single "
                "row, so they would be seen only in the holdout or only in training; add rows or drop them"
            )
        if counts.size < 2:
            raise TrainingInputError(
                f"target {spec.target!r} holds a single class ({counts.index[0]!r}); classification needs two or more"
            )
    mask = holdout_mask(frame, float(spec.test_size), spec.random_state)
    if spec.task_type == "classification":
        # A class whose every row hashed into the holdout keeps one row in training.
        target = frame[spec.target]
        for label in target.unique():
            rows = target == label
            if mask[rows.to_numpy()].all():
                mask[rows.to_numpy().nonzero()[0][0]] = False
    if not mask.any() or mask.all():
        raise TrainingInputError(
            f"training data has {len(frame)} usable row(s): the split left one side empty "
            f"(test_size {spec.test_size}); add rows"
        )
    train, holdout = frame[~mask], frame[mask]
    if spec.task_type == "classification":
        unseen = sorted(set(holdout[spec.target].unique()) - set(train[spec.target].unique()), key=str)
        if unseen:
            raise TrainingInputError(
                f"target {spec.target!r}: class(es) {', '.join(map(repr, unseen))} appear only in the holdout"
            )
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def train(frame: pd.DataFrame, spec: TrainingSpec, where: str = "training data") -> TrainingResult:
    """Validate, split, build and fit; deterministic for a given frame and spec."""
    from sklearn.pipeline import Pipeline

    if not isinstance(spec.random_state, int) or isinstance(spec.random_state, bool):
        raise TrainingInputError(f"random_state must be an integer, got {spec.random_state!r}")
    frame, features, dropped = prepare_frame(frame, spec, where)
    estimator = build_estimator(spec.estimator, spec.params, spec.allowed_modules)
    if spec.task_type == "classification":
        estimator = encode_labels(estimator)
    train_rows, holdout_rows = split(frame, spec)
    X = train_rows[features]
    preprocessed = False
    if not isinstance(estimator, Pipeline) and needs_preprocessing(X):
        refuse_id_like(X, categorical_columns(X), where)
        estimator = wrap_with_preprocessor(estimator, X)
        preprocessed = True
    seed_estimator(estimator, spec.random_state)
    library_defaults(estimator)
    try:
        estimator.fit(X, train_rows[spec.target])
    except Exception as err:  # the data or params at fault; XGBoost's and LightGBM's own errors too
        if not isinstance(err, ValueError | TypeError) and not is_library_error(err):
            raise
        raise TrainingInputError(f"{where}: fitting {spec.estimator!r} failed: {err}") from err
    return TrainingResult(
        model=estimator,
        features=features,
        train=train_rows,
        holdout=holdout_rows,
        dropped_missing_target=dropped,
        preprocessed=preprocessed,
        effective_params={k: v for k, v in estimator.get_params(deep=False).items() if _jsonable(v)},
    )


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
