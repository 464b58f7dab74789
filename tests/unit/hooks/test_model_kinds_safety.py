"""The provider's skops allowlist trusts exactly the types a fitted XGBoost / LightGBM scikit-learn wrapper
holds, nothing else of those packages; their models log with skops, load back, and name their library in
the pinned requirements."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core.training import TrainingSpec, train
from mlops_provider.exceptions import InvalidInputError
from mlops_provider.hooks.model_safety import (
    LIBRARY_TYPES,
    SKOPS,
    ModelLoadPolicy,
    pip_requirements,
    quiet_serialization,
)
from mlops_provider.hooks.models import serialization_options

KINDS = ["xgboost.XGBClassifier", "xgboost.XGBRegressor", "lightgbm.LGBMClassifier", "lightgbm.LGBMRegressor"]


@pytest.mark.parametrize("name", sorted(LIBRARY_TYPES))
def test_the_library_wrapper_types_are_trusted_by_exact_name(name):
    assert ModelLoadPolicy().is_trusted(name)


@pytest.mark.parametrize(
    "name",
    [
        "xgboost.callback.TrainingCheckPoint",  # writes files
        "xgboost.core.DMatrix",
        "xgboost.sklearn.XGBRanker",
        "xgboost.sklearn.XGBClassifierX",
        "xgboost.core.Booster.save_model",
        "xgboost.core._load_lib",
        "xgboost.Booster",  # the name skops would report is the defining module's: not this alias
        "xgboost",
        "lightgbm.basic.Dataset",
        "lightgbm.basic._LIB",
        "lightgbm.callback.record_evaluation",
        "lightgbm.sklearn.LGBMRanker",
        "lightgbm.plotting.create_tree_digraph",
        "collections.OrderedDictX",
        "collections.namedtuple",
        "collections.UserDict",
    ],
)
def test_nothing_else_of_those_packages_is_trusted(name):
    assert ModelLoadPolicy().refused_types([name, *sorted(LIBRARY_TYPES)]) == [name]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=120)
    return pd.DataFrame(
        {
            "x": x,
            "z": rng.normal(size=120),
            "colour": rng.choice(["red", "green", "blue"], 120),
            "label": np.where(x > 0, "high", "low"),
            "amount": 3 * x + rng.normal(size=120),
        }
    )


def fitted(frame: pd.DataFrame, estimator: str):
    regression = estimator.endswith("Regressor")
    return train(
        frame,
        TrainingSpec(
            target="amount" if regression else "label",
            features=["x", "z", "colour"],
            estimator=estimator,
            params={} if estimator.startswith("sklearn") else {"n_estimators": 3},
            task_type="regression" if regression else "classification",
        ),
    ).model


@pytest.mark.parametrize("estimator", KINDS)
def test_a_library_model_logs_with_skops_and_loads_back_with_the_listed_types_only(frame, estimator):
    model = fitted(frame, estimator)
    options = serialization_options(model)
    assert options["serialization_format"] == SKOPS
    trusted = options["skops_trusted_types"]
    assert {t for t in trusted if not t.startswith(("sklearn.", "numpy.", "scipy."))} <= LIBRARY_TYPES
    with quiet_serialization():  # skops scans every loaded module on import (Airflow's shims warn)
        import skops.io as sio

        loaded = sio.loads(sio.dumps(model), trusted=trusted)
    X = frame[["x", "z", "colour"]]
    assert np.array_equal(loaded.predict(X), model.predict(X))


class Foreign:
    pass


@pytest.mark.parametrize("estimator", ["xgboost.XGBClassifier", "lightgbm.LGBMRegressor"])
def test_a_library_model_holding_another_type_is_refused_at_log_time(frame, estimator):
    model = fitted(frame, estimator)
    final = model.steps[-1][1]
    library = final.estimators_[0] if hasattr(final, "estimators_") else final
    library.__dict__["extra"] = Foreign()
    with pytest.raises(InvalidInputError, match=r"outside the provider's skops allowlist: .*Foreign"):
        serialization_options(model)
    library.__dict__["extra"] = os.system
    with pytest.raises(InvalidInputError, match=r"(posix|os)\.system"):
        serialization_options(model)
    # naming it is the only way in (the provider never trusts it by itself)
    assert serialization_options(model, ModelLoadPolicy(extra_trusted_types=("posix.system", "os.system")))


@pytest.mark.parametrize(
    ("estimator", "distribution"),
    [("xgboost.XGBClassifier", "xgboost"), ("lightgbm.LGBMRegressor", "lightgbm")],
)
def test_the_pinned_requirements_name_the_library(frame, estimator, distribution):
    from importlib.metadata import version

    pins = pip_requirements(fitted(frame, estimator))
    library = [p for p in pins if p.startswith(distribution)]
    assert len(library) == 1  # xgboost or xgboost-cpu, whichever is installed: never both
    name, _, pinned = library[0].partition("==")
    assert pinned == version(name)
    assert pins[: len(pip_requirements())] == pip_requirements()


def test_a_scikit_learn_model_pins_no_library(frame):
    assert pip_requirements(fitted(frame, "sklearn.tree.DecisionTreeClassifier")) == pip_requirements()
