"""core.metrics on real models and data sets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlops_provider.core.metrics import (
    classification_metrics,
    compute_metrics,
    permutation_importance_report,
    predict_with_proba,
    regression_metrics,
    slice_gap,
    slice_labels,
    slice_metrics,
)


@pytest.fixture(scope="module")
def cancer_model():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y), X, y


def test_binary_classification_has_every_metric(cancer_model):
    model, X, y = cancer_model
    report = compute_metrics(model, X, y, "classification")
    assert set(report.values) == {
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
        "log_loss",
    }
    assert 0.9 < report.values["accuracy"] <= 1
    assert 0.9 < report.values["roc_auc"] <= 1
    assert report.non_finite == []
    assert report.rows == len(X)


def _labelled(frame: pd.DataFrame, target: pd.Series, names: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    return frame, target.map(dict(enumerate(names)))


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
        # depth-1 stumps: many rows share a leaf with tied class frequencies (the predict() fallback)
        lambda: DecisionTreeClassifier(max_depth=1, random_state=0),
        # not in the argmax list: predict() is called as is
        lambda: KNeighborsClassifier(n_neighbors=4),
    ],
    ids=["hgb", "forest", "pipeline-logistic", "stump", "knn"],
)
@pytest.mark.parametrize("dataset", ["wine", "cancer"])
def test_labels_from_one_proba_pass_equal_predict(make_model, dataset):
    loader = load_wine if dataset == "wine" else load_breast_cancer
    X, y = loader(return_X_y=True, as_frame=True)
    X, y = _labelled(X, y, ["a", "b", "c"])
    model = make_model().fit(X, y)
    predictions, proba = predict_with_proba(model, X)
    assert np.array_equal(predictions, model.predict(X))
    assert predictions.dtype == model.predict(X).dtype
    np.testing.assert_array_equal(proba, model.predict_proba(X))


def test_tied_probabilities_take_predict_labels():
    # Two identical rows with opposite labels: the stump's leaf probabilities tie at 0.5.
    X = pd.DataFrame({"x": [0.0, 0.0, 1.0, 1.0, 1.0]})
    y = pd.Series(["b", "a", "a", "a", "b"])
    model = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    proba = model.predict_proba(X)
    assert proba[0, 0] == proba[0, 1] == 0.5
    expected = model.predict(X)
    asked: list[int] = []
    predict = model.predict
    model.predict = lambda rows: asked.append(len(rows)) or predict(rows)  # observe the fallback
    predictions, _ = predict_with_proba(model, X)
    assert asked == [2]  # only the two tied rows went through predict()
    assert list(predictions) == list(expected)


def test_multiclass_roc_auc_only_when_every_class_is_present():
    X, y = load_wine(return_X_y=True, as_frame=True)
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    assert "roc_auc" in compute_metrics(model, X, y, "classification").values
    two_classes = y != 2
    report = compute_metrics(model, X[two_classes], y[two_classes], "classification")
    assert "roc_auc" not in report.values  # undefined, left out rather than guessed
    assert "log_loss" in report.values


def test_regression_metrics_on_diabetes():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    report = compute_metrics(LinearRegression().fit(X, y), X, y, "regression")
    assert set(report.values) == {"rmse", "mae", "r2"}
    assert report.values["rmse"] >= report.values["mae"] > 0
    assert 0.4 < report.values["r2"] < 0.6


def test_non_finite_values_become_null_and_flagged():
    report = regression_metrics([1.0, 2.0, 3.0], [1.0, math.nan, 3.0])
    assert report.values == {"rmse": None, "mae": None, "r2": None}
    assert report.non_finite == ["rmse", "mae", "r2"]
    proba = np.array([[0.5, 0.5], [math.inf, 0.0]])
    report = classification_metrics([0, 1], [0, 1], proba, [0, 1])
    assert report.values["roc_auc"] is None
    assert "log_loss" in report.non_finite
    assert report.values["accuracy"] == 1.0


def test_numeric_slice_column_is_cut_into_quartiles_and_missing_kept():
    values = pd.Series([float(i) for i in range(40)] + [math.nan])
    labels = slice_labels(values)
    assert labels.nunique() == 5
    assert labels.iloc[-1] == "<missing>"
    few = slice_labels(pd.Series([1, 2, 2, 1]))
    assert sorted(few.unique()) == ["1", "2"]


def test_slice_metrics_and_gap(cancer_model):
    model, X, y = cancer_model
    slices = slice_metrics(model, X, y, X["mean radius"], "classification")
    assert len(slices) == 4
    assert sum(s["rows"] for s in slices.values()) == len(X)
    gap, missing = slice_gap(slices, "accuracy")
    assert gap is not None
    assert gap >= 0
    assert missing == []
    broken = {**slices, "bad": {"metrics": {"accuracy": None}}}
    assert slice_gap(broken, "accuracy")[1] == ["bad"]


def test_permutation_importance_is_deterministic_and_bounded(cancer_model):
    model, X, y = cancer_model
    first = permutation_importance_report(model, X, y, "classification", max_rows=200, n_repeats=3)
    second = permutation_importance_report(model, X, y, "classification", max_rows=200, n_repeats=3)
    assert first == second
    assert len(first) == X.shape[1]
    assert first[0]["importance_mean"] >= first[-1]["importance_mean"]


def test_unknown_task_type_is_refused(cancer_model):
    model, X, y = cancer_model
    with pytest.raises(ValueError, match="task_type must be one of"):
        compute_metrics(model, X, y, "ranking")
