"""XGBoost and LightGBM through core.training: string labels handled transparently, categorical features,
a fixed seed that makes training reproducible, one thread unless asked, their errors as training input
errors, and a clear error naming ``training.estimator`` and the extra when the library is missing."""

from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core import estimators
from mlops_provider.core.estimators import EstimatorError, build_estimator, check_estimator, encode_labels
from mlops_provider.core.training import TrainingInputError, TrainingSpec, train

LABELS = ["drizzle", "fog", "rain", "snow", "sun"]
KINDS = {
    "xgboost.XGBClassifier": {"n_estimators": 8, "max_depth": 3},
    "lightgbm.LGBMClassifier": {"n_estimators": 8, "num_leaves": 7, "subsample": 0.7, "subsample_freq": 1},
    "xgboost.XGBRegressor": {"n_estimators": 8, "max_depth": 3, "subsample": 0.7},
    "lightgbm.LGBMRegressor": {"n_estimators": 8, "num_leaves": 7, "colsample_bytree": 0.6},
}
CLASSIFIERS = [k for k in KINDS if k.endswith("Classifier")]


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    """Seattle weather with an object-typed season and a few missing numbers."""
    from vega_datasets import data

    frame = data.seattle_weather()
    frame["season"] = frame.pop("date").dt.month.map(
        lambda m: ("winter", "spring", "summer", "autumn")[m % 12 // 3]
    )
    frame.loc[::97, "wind"] = np.nan
    return frame


def spec(estimator: str, seed: int = 7, **overrides) -> TrainingSpec:
    regression = estimator.endswith("Regressor")
    return TrainingSpec(
        target="temp_max" if regression else "weather",
        estimator=estimator,
        params={**KINDS[estimator], **overrides},
        task_type="regression" if regression else "classification",
        random_state=seed,
        features=["precipitation", "temp_min", "wind", "season"] + ([] if regression else ["temp_max"]),
    )


def library_step(model):
    """The library estimator: the preprocessing Pipeline's last step (inside the label-encoding
    VotingClassifier for XGBoost)."""
    final = model.steps[-1][1]
    return final.estimators_[0] if hasattr(final, "estimators_") else final


@pytest.mark.parametrize("estimator", CLASSIFIERS)
def test_string_labels_come_back_as_the_original_labels(weather, estimator):
    result = train(weather, spec(estimator))
    assert result.preprocessed  # object column and missing numbers: one-hot + imputation in front
    model = result.model
    assert list(model.classes_) == LABELS
    predicted = model.predict(result.X_holdout)
    assert set(predicted) <= set(LABELS)
    assert predicted.dtype == object
    proba = model.predict_proba(result.X_holdout)
    assert proba.shape == (len(result.holdout), len(LABELS))
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert list(np.asarray(LABELS)[proba.argmax(axis=1)]) == list(predicted)
    assert (predicted == result.holdout["weather"].to_numpy()).mean() > 0.6


def test_xgboost_is_fitted_on_codes_and_keeps_its_own_probabilities(weather):
    from sklearn.ensemble import VotingClassifier
    from xgboost import XGBClassifier

    result = train(weather, spec("xgboost.XGBClassifier"))
    voting = result.model.steps[-1][1]
    assert isinstance(voting, VotingClassifier)
    assert voting.voting == "soft"
    inner = voting.estimators_[0]
    assert isinstance(inner, XGBClassifier)
    assert list(inner.classes_) == [0, 1, 2, 3, 4]  # what XGBoost saw: the codes
    X = result.model[:-1].transform(result.X_holdout)
    assert np.array_equal(voting.predict_proba(X), inner.predict_proba(X).astype(float))


@pytest.mark.parametrize("labels", [[0, 1], [1, 2], [-1, 1], [True, False], ["yes", "no"]], ids=str)
def test_any_binary_label_values_work_with_xgboost(labels):
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    frame = pd.DataFrame({"x": x, "y": np.where(x > 0, labels[0], labels[1])})
    result = train(
        frame, TrainingSpec(target="y", estimator="xgboost.XGBClassifier", params={"n_estimators": 5})
    )
    assert set(result.model.classes_) == set(labels)
    assert set(result.model.predict(result.X_holdout)) <= set(labels)


@pytest.mark.parametrize("estimator", list(KINDS))
def test_the_seed_makes_training_reproducible(weather, estimator):
    first, again = train(weather, spec(estimator)), train(weather, spec(estimator))
    X = first.X_holdout
    output = "predict_proba" if estimator.endswith("Classifier") else "predict"
    assert np.array_equal(getattr(first.model, output)(X), getattr(again.model, output)(X))
    assert library_step(first.model).get_params()["random_state"] == 7  # the seed reaches the library
    assert library_step(train(weather, spec(estimator, seed=8)).model).get_params()["random_state"] == 8
    kept = library_step(train(weather, spec(estimator, random_state=3)).model).get_params()
    assert kept["random_state"] == 3  # a seed given in params is kept


@pytest.mark.parametrize("estimator", list(KINDS))
def test_one_thread_unless_asked_and_lightgbm_quiet_unless_asked(weather, estimator):
    default = library_step(train(weather, spec(estimator)).model).get_params()
    assert default["n_jobs"] == 1
    asked = library_step(train(weather, spec(estimator, n_jobs=2)).model).get_params()
    assert asked["n_jobs"] == 2
    if estimator.startswith("lightgbm"):
        assert default["verbose"] == -1
        assert library_step(train(weather, spec(estimator, verbose=1)).model).get_params()["verbose"] == 1


def test_lightgbm_writes_no_log_lines_by_default(weather, capfd):
    train(weather, spec("lightgbm.LGBMClassifier"))
    assert "[LightGBM]" not in capfd.readouterr().out


@pytest.mark.parametrize(
    ("estimator", "params", "columns"),
    [
        ("lightgbm.LGBMClassifier", {"num_leaves": 1}, ["a", "b"]),  # LightGBMError, not a ValueError
        ("lightgbm.LGBMClassifier", {}, ['a:"b"', "c"]),  # feature names LightGBM refuses
        ("xgboost.XGBClassifier", {}, ["a[0]", "b"]),
        ("xgboost.XGBClassifier", {"max_depth": -3}, ["a", "b"]),
        ("xgboost.XGBClassifier", {"objective": "no:such"}, ["a", "b"]),
    ],
    ids=["lgbm-params", "lgbm-names", "xgb-names", "xgb-depth", "xgb-objective"],
)
def test_library_errors_are_training_input_errors(estimator, params, columns):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({columns[0]: rng.normal(size=60), columns[1]: rng.normal(size=60)})
    frame["y"] = np.where(frame[columns[0]] > 0, "up", "down")
    with pytest.raises(TrainingInputError, match=f"fitting '{estimator}' failed"):
        train(frame, TrainingSpec(target="y", estimator=estimator, params={"n_estimators": 2, **params}))


def test_a_factory_pipeline_ending_in_xgboost_gets_its_labels_encoded():
    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier, XGBRegressor

    pipeline = Pipeline([("scale", StandardScaler()), ("model", XGBClassifier())])
    assert encode_labels(pipeline) is pipeline
    assert isinstance(pipeline.steps[-1][1], VotingClassifier)
    nested = Pipeline([("inner", Pipeline([("model", XGBClassifier())]))])
    assert isinstance(encode_labels(nested).steps[-1][1].steps[-1][1], VotingClassifier)
    for unchanged in (
        XGBRegressor(),
        build_estimator("lightgbm.LGBMClassifier", {}),
        build_estimator("sklearn.tree.DecisionTreeClassifier", {}),
    ):
        assert encode_labels(unchanged) is unchanged
    wrapped = encode_labels(XGBClassifier())
    assert encode_labels(wrapped) is wrapped  # already encoded: not wrapped twice


@pytest.mark.parametrize(
    ("library", "path"),
    [("xgboost", "xgboost.XGBClassifier"), ("lightgbm", "lightgbm.sklearn.LGBMRegressor")],
)
def test_a_missing_library_names_the_key_and_the_extra(monkeypatch, library, path):
    for name in list(sys.modules):
        if name == library or name.startswith(library + "."):
            monkeypatch.setitem(sys.modules, name, None)  # as if not installed: the import fails
    monkeypatch.setitem(sys.modules, library, None)
    expected = rf"training\.estimator.*pip install 'airflow-provider-mlops\[{library}\]'"
    with pytest.raises(EstimatorError, match=expected) as err:
        check_estimator(path, {})  # the validate command
    assert err.value.key == "training.estimator"
    with pytest.raises(EstimatorError, match=expected):
        build_estimator(path, {})
    with pytest.raises(TrainingInputError, match=expected):
        train(pd.DataFrame({"x": range(10), "y": [0, 1] * 5}), TrainingSpec(target="y", estimator=path))


def test_a_library_whose_native_part_does_not_load_names_the_extra(monkeypatch):
    real = importlib.import_module

    def broken(name, package=None):
        if name.split(".")[0] == "lightgbm":
            raise OSError("libgomp.so.1: cannot open shared object file: No such file or directory")
        return real(name, package)

    monkeypatch.setattr(estimators.importlib, "import_module", broken)
    with pytest.raises(EstimatorError, match=r"needs lightgbm.*libgomp.*airflow-provider-mlops\[lightgbm\]"):
        check_estimator("lightgbm.LGBMClassifier", {})


def test_another_missing_module_keeps_the_plain_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.no_such", None)
    with pytest.raises(EstimatorError, match=r"module 'sklearn.no_such' does not import") as err:
        check_estimator("sklearn.no_such.Model", {})
    assert "pip install" not in str(err.value)


@pytest.mark.parametrize("estimator", CLASSIFIERS)
def test_metrics_and_permutation_importance_work_on_the_wrapped_models(weather, estimator):
    from mlops_provider.core.metrics import compute_metrics, permutation_importance_report

    result = train(weather, spec(estimator))
    with warnings.catch_warnings():  # XGBoost's float32 probabilities are renormalised: log_loss is quiet
        warnings.simplefilter("error")
        report = compute_metrics(result.model, result.X_holdout, result.holdout["weather"], "classification")
    assert {"accuracy", "f1_macro", "roc_auc", "log_loss"} <= set(report.values)
    assert report.non_finite == []
    importance = permutation_importance_report(
        result.model, result.X_holdout, result.holdout["weather"], "classification", n_repeats=2
    )
    assert {row["feature"] for row in importance} == set(spec(estimator).features or ())
    assert importance[0]["feature"] == "precipitation"  # rain or not: the strongest signal


@pytest.mark.parametrize(
    "path",
    [
        "xgboost.train",  # a library function is never a factory
        "lightgbm.train",
        "lightgbm.plot_tree",
        "xgboost.core._load_lib",  # private
        "xgboost.Booster",  # no fit
        "xgboost.DMatrix",
        "lightgbm.Dataset",
        "xgboost.callback.TrainingCheckPoint",  # writes files; no predict
        "xgboost:__builtins__.eval",
        "xgboost.XGBClassifier.fit",
    ],
)
def test_only_estimator_classes_of_the_libraries_are_accepted(path):
    with pytest.raises(EstimatorError, match=r"training\.estimator") as err:
        check_estimator(path, {})
    assert err.value.key == "training.estimator"


@pytest.mark.parametrize("estimator", ["xgboost.XGBClassifier", "lightgbm.LGBMRegressor"])
@pytest.mark.parametrize("value", [float("nan"), np.nan], ids=["nan", "np.nan"])
def test_a_nan_param_is_refused_naming_training_params(estimator, value):
    with pytest.raises(EstimatorError, match=r"'learning_rate' are NaN") as err:
        check_estimator(estimator, {"learning_rate": value, "max_depth": 3})
    assert err.value.key == "training.params"


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        ("xgboost.XGBClassifier", {"max_depth": "deep"}),
        ("xgboost.XGBClassifier", {"n_estimators": 2.5}),
        ("xgboost.XGBClassifier", {"random_state": "x"}),
        ("xgboost.XGBClassifier", {"n_jobs": "many"}),
        ("lightgbm.LGBMClassifier", {"learning_rate": -1.0}),
        ("lightgbm.LGBMClassifier", {"n_estimators": -1}),
        ("lightgbm.LGBMClassifier", {"max_depth": "deep"}),
        ("lightgbm.LGBMClassifier", {"n_jobs": "many"}),
    ],
    ids=str,
)
def test_bad_param_values_fail_the_training_as_input_errors(estimator, params):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    frame["y"] = np.where(frame["a"] > 0, "up", "down")
    with pytest.raises(TrainingInputError, match=f"fitting '{estimator}' failed"):
        train(frame, TrainingSpec(target="y", estimator=estimator, params={"n_estimators": 2, **params}))


def test_a_missing_dependency_of_a_submodule_is_not_blamed_on_the_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    for name in [n for n in sys.modules if n.startswith("xgboost.dask")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(EstimatorError, match=r"module 'xgboost.dask' does not import") as err:
        check_estimator("xgboost.dask.DaskXGBClassifier", {})
    assert "pip install" not in str(err.value)
