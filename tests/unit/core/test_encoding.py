"""Bounded categorical encoding: ID-like features are refused by name, wide categoricals stay narrow,
and training memory does not grow with the number of distinct values (100k rows)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core.encoding import MAX_ONE_HOT_CATEGORIES, IdLikeColumnError
from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.training import TrainingSpec, train

ROWS = 100_000


def frame_with(column: pd.Series, rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return pd.DataFrame({"x": x, "extra": column, "label": np.where(x + rng.normal(size=rows) > 0, "a", "b")})


def spec(**kw) -> TrainingSpec:
    return TrainingSpec(
        target="label",
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        params={"max_iter": 5},
        **kw,
    )


@pytest.mark.parametrize("rows", [3_000, ROWS])
def test_an_id_column_is_refused_by_name(rows):
    ids = pd.Series([f"user-{i:07d}" for i in range(rows)])
    with pytest.raises(
        IdLikeColumnError, match=r"'extra' \(\d+ distinct values in \d+ rows\).*look like IDs"
    ):
        train(frame_with(ids, rows), spec(), where="users.csv")


def test_the_refusal_is_bad_input_and_names_the_file():
    ids = pd.Series([f"order-{i}" for i in range(500)])
    with pytest.raises(InvalidInputError, match="orders.csv"):
        train(frame_with(ids, 500), spec(), where="orders.csv")


def test_a_few_repeated_values_are_a_category_not_an_id():
    cities = pd.Series(np.random.default_rng(1).choice(["Oslo", "Lima", "Pune"], size=2_000))
    result = train(frame_with(cities, 2_000), spec())
    assert result.preprocessed


def test_a_wide_categorical_is_encoded_narrow_and_memory_stays_bounded():
    rng = np.random.default_rng(2)
    # 5,000 distinct values in 100k rows: a real category (20 rows each), not an ID
    wide = pd.Series([f"sku-{i}" for i in rng.integers(0, 5_000, ROWS)])
    data = frame_with(wide, ROWS)
    tracemalloc.start()
    try:
        result = train(data, spec())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    preprocess = result.model.named_steps["preprocess"]
    width = len(preprocess.get_feature_names_out())
    assert width <= 1 + MAX_ONE_HOT_CATEGORIES  # x + the bounded one-hot columns (dense 5,000 before)
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MB"  # 5,000 dense columns would need ~3 GB


def test_unseen_and_rare_values_are_scored_as_infrequent():
    rng = np.random.default_rng(3)
    values = pd.Series([f"v{i}" for i in rng.integers(0, 200, 5_000)])
    result = train(frame_with(values, 5_000), spec())
    batch = pd.DataFrame({"x": [0.1, -0.2], "extra": ["never-seen", "v1"]})
    assert len(result.model.predict(batch)) == 2
