"""core.training: real scikit-learn on real data sets, no Airflow, no MLflow."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn.datasets import load_diabetes, load_wine
from vega_datasets import data as vega

from mlops_provider.core.training import (
    TrainingInputError,
    TrainingSpec,
    build_estimator,
    import_object,
    train,
)


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_wine(as_frame=True).frame


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load_penguins()


def test_numeric_data_is_fitted_without_preprocessor_and_seeded(wine):
    spec = TrainingSpec(
        target="target", estimator="sklearn.ensemble.RandomForestClassifier", params={"n_estimators": 20}
    )
    result = train(wine, spec)
    assert not result.preprocessed
    assert result.model.get_params()["random_state"] == 42
    assert len(result.train) + len(result.holdout) == len(wine)
    assert set(result.holdout["target"]) <= set(result.train["target"])
    assert result.features == [c for c in wine.columns if c != "target"]


def test_same_spec_same_model_same_split(wine):
    spec = TrainingSpec(
        target="target", estimator="sklearn.ensemble.RandomForestClassifier", params={"n_estimators": 10}
    )
    a, b = train(wine, spec), train(wine, spec)
    pd.testing.assert_frame_equal(a.holdout, b.holdout)
    np.testing.assert_array_equal(a.model.predict_proba(a.X_holdout), b.model.predict_proba(b.X_holdout))


def test_strings_and_nans_get_a_column_transformer(penguins):
    spec = TrainingSpec(
        target="species", estimator="sklearn.ensemble.RandomForestClassifier", params={"n_estimators": 30}
    )
    result = train(penguins, spec)
    assert result.preprocessed
    assert result.dropped_missing_target == 0
    assert result.model.named_steps["preprocess"].transformers_[1][2] == ["island", "sex"]
    assert (result.model.predict(result.X_holdout) == result.holdout["species"]).mean() > 0.9


def test_seattle_weather_with_date_excluded_by_features():
    frame = vega.seattle_weather()
    spec = TrainingSpec(
        target="weather",
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        features=["precipitation", "temp_max", "temp_min", "wind"],
        params={"max_iter": 30},
    )
    result = train(frame, spec)
    assert result.features == ["precipitation", "temp_max", "temp_min", "wind"]
    assert "date" in result.holdout.columns  # the holdout keeps every column (for slices)


def test_regression_on_diabetes():
    frame = load_diabetes(as_frame=True).frame
    result = train(
        frame, TrainingSpec(target="target", estimator="sklearn.linear_model.Ridge", task_type="regression")
    )
    assert result.model.predict(result.X_holdout).shape == (len(result.holdout),)


def test_import_paths_with_colon_and_factories():
    assert import_object("sklearn.preprocessing:StandardScaler").__name__ == "StandardScaler"
    tree = build_estimator("sklearn.tree:DecisionTreeClassifier", {"max_depth": 3})
    assert tree.get_params()["max_depth"] == 3
    # a library function is no factory (Step 8: nothing but estimators and allowed factories is called)
    with pytest.raises(TrainingInputError, match="factory functions are accepted only from"):
        build_estimator("sklearn.pipeline.make_pipeline", {})


@pytest.mark.parametrize(
    ("spec_kwargs", "message"),
    [
        ({"target": "nope"}, "target column 'nope' not found"),
        ({"features": ["alcohol", "missing_col"]}, "'missing_col' not found"),
        ({"estimator": "sklearn.ensemble.NoSuchForest"}, "has no attribute 'NoSuchForest'"),
        ({"estimator": "no_such_package.Model"}, "module 'no_such_package' is outside the allowed modules"),
        ({"estimator": "sklearn.preprocessing.StandardScaler"}, "not a scikit-learn estimator"),
        ({"estimator": "os.getcwd"}, "module 'os' is outside the allowed modules"),
        ({"params": {"n_trees": 3}}, "unknown param(s) 'n_trees'"),
        ({"task_type": "regression", "target": "label"}, "regression needs a numeric target"),
        ({"test_size": 1.5}, "test_size must be a fraction"),
    ],
)
def test_bad_input_names_the_culprit(wine, spec_kwargs, message):
    frame = wine.assign(label=wine["target"].map({0: "a", 1: "b", 2: "c"}))
    kwargs = {"target": "target", "estimator": "sklearn.ensemble.RandomForestClassifier", **spec_kwargs}
    with pytest.raises(TrainingInputError, match=re.escape(message)):
        train(frame, TrainingSpec(**kwargs))


def test_empty_data_is_refused(wine):
    with pytest.raises(TrainingInputError, match="empty"):
        train(wine.iloc[0:0], TrainingSpec(target="target", estimator="sklearn.tree.DecisionTreeClassifier"))


def test_a_class_with_a_single_row_is_refused(penguins):
    frame = pd.concat([penguins, penguins.iloc[[0]].assign(species="Emperor")], ignore_index=True)
    with pytest.raises(TrainingInputError, match="'Emperor'"):
        train(frame, TrainingSpec(target="species", estimator="sklearn.tree.DecisionTreeClassifier"))


def test_missing_targets_are_dropped_and_counted(penguins):
    frame = penguins.copy()
    frame.loc[:4, "species"] = None
    result = train(frame, TrainingSpec(target="species", estimator="sklearn.tree.DecisionTreeClassifier"))
    assert result.dropped_missing_target == 5
    assert len(result.train) + len(result.holdout) == len(frame) - 5


def test_split_is_stable_across_retrains_so_the_champion_never_sees_the_challengers_holdout():
    from vega_datasets import data

    from mlops_provider.core.training import TrainingSpec, split

    frame = data.seattle_weather().drop(columns=["date"])
    spec = TrainingSpec(
        target="weather",
        estimator="sklearn.tree.DecisionTreeClassifier",
        task_type="classification",
        test_size=0.25,
        random_state=42,
    )
    older = frame.iloc[:700]
    champion_train, _ = split(older, spec)
    _, challenger_holdout = split(frame, spec)
    key = list(frame.columns)
    overlap = champion_train.merge(challenger_holdout, on=key, how="inner")
    assert overlap.empty
    assert 0.18 < len(challenger_holdout) / len(frame) < 0.32
    again_train, again_holdout = split(frame, spec)
    assert again_holdout.equals(challenger_holdout)
