"""XGBoost and LightGBM estimators named by import path go the whole way: train -> evaluate -> register
-> promote (first run) -> a weaker challenger of the same kind refused against that champion -> batch
score with probabilities -> the provider's safe load. Real libraries, real MLflow (SQLite), the seattle
weather data (string labels 'rain', 'sun', ...; an object-typed ``season`` feature).

Hostile artifacts: a registered XGBoost/LightGBM model whose stored skops file holds something else
inside the wrapper (an object whose ``__setstate__`` writes a file, ``os.system`` as the objective, a
type of those packages outside the exact allowlist), or a pickle, or a booster whose bytes are not a
model, is refused with a clear error even when the attacker also sets the recorded sha256 to match.
"""

from __future__ import annotations

import copy
import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import context

from mlops_provider.exceptions import InvalidInputError
from mlops_provider.hooks.model_safety import SHA256_TAG, ModelLoadPolicy, model_digest
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator
from mlops_provider.operators.scoring import BatchScoreOperator
from mlops_provider.operators.training import TrainModelOperator

LABELS = {"drizzle", "fog", "rain", "snow", "sun"}
CLASSIFICATION_FEATURES = ["precipitation", "temp_max", "temp_min", "wind", "season"]
REGRESSION_FEATURES = ["precipitation", "temp_min", "wind", "season"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """One MLflow store for the module, and the seattle weather data as CSV (with an id column)."""
    from vega_datasets import data

    tmp = tmp_path_factory.mktemp("model-kinds")
    frame = data.seattle_weather()
    frame.insert(0, "id", range(len(frame)))
    frame["season"] = frame.pop("date").dt.month.map(
        lambda m: ("winter", "spring", "summer", "autumn")[m % 12 // 3]
    )
    path = tmp / "weather.csv"
    frame.to_csv(path, index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
        mp.setenv("MLOPS_HOME", str(tmp))
        yield SimpleNamespace(tmp=tmp, data=path)


def train(store: SimpleNamespace, model: str, estimator: str, params: dict, regression: bool) -> str:
    op = TrainModelOperator(
        task_id="train",
        model_name=model,
        data_uri=str(store.data),
        target="temp_max" if regression else "weather",
        features=REGRESSION_FEATURES if regression else CLASSIFICATION_FEATURES,
        task_type="regression" if regression else "classification",
        estimator=estimator,
        estimator_params=params,
    )
    return str(op.execute(context("train", run_id=uuid.uuid4().hex))["run_id"])


def register(model: str, run_id: str) -> str:
    return str(
        RegisterModelOperator(task_id="register", model_name=model, run_id=run_id).execute(context())[
            "version"
        ]
    )


def promote(model: str, version: str, regression: bool) -> dict[str, Any]:
    gates = (
        {"thresholds": {"r2": {"min": 0.5}}, "vs_champion": {"rmse": {"min_delta": 0.0}}}
        if regression
        else {"thresholds": {"accuracy": {"min": 0.6}}, "vs_champion": {"f1_macro": {"min_delta": 0.0}}}
    )
    op = PromoteModelOperator(task_id="promote", model_name=model, version=version, **gates)
    ctx = context("promote")
    try:
        return dict(op.execute(ctx))
    except AirflowFailException:
        return dict(ctx["ti"].pushed["return_value"])


KINDS = [
    ("xgboost.XGBClassifier", {"n_estimators": 15, "max_depth": 3}, False),
    ("lightgbm.LGBMClassifier", {"n_estimators": 15, "num_leaves": 7}, False),
    ("xgboost.XGBRegressor", {"n_estimators": 15, "max_depth": 3}, True),
    ("lightgbm.LGBMRegressor", {"n_estimators": 15, "num_leaves": 7}, True),
]
WEAK = {"n_estimators": 1, "max_depth": 1}
LIBRARIES = ["xgboost.XGBClassifier", "lightgbm.LGBMClassifier"]


@pytest.mark.parametrize(("estimator", "params", "regression"), KINDS, ids=[k[0] for k in KINDS])
def test_a_library_model_trains_registers_gates_scores_and_loads_safely(store, estimator, params, regression):
    model = estimator.replace(".", "-").lower()
    strong = train(store, model, estimator, params, regression)
    evaluated = EvaluateModelOperator(task_id="evaluate", run_id=strong, compute_importance=False).execute(
        context("evaluate")
    )
    if not regression:  # probabilities too: roc_auc and log_loss are computed
        assert {"accuracy", "f1_macro", "roc_auc", "log_loss"} <= set(evaluated["metrics"])
    champion = register(model, strong)
    first = promote(model, champion, regression)
    assert first["decision"] == "promoted", first
    assert MLflowRegistryHook().alias_version(model, "champion") == champion

    # a weaker challenger of the same kind, judged against the library champion on its holdout
    weak = register(model, train(store, model, estimator, WEAK, regression))
    refused = promote(model, weak, regression)
    assert refused["decision"] == "refused"
    assert refused["old_version"] == champion
    metric = "rmse" if regression else "f1_macro"
    scores = refused["metrics"]
    assert scores["champion"][metric] is not None
    assert scores["challenger"][metric] is not None
    assert MLflowRegistryHook().alias_version(model, "champion") == champion

    out = store.tmp / model / "predictions.parquet"
    scored = BatchScoreOperator(
        task_id="score",
        model_name=model,
        data_uri=str(store.data),
        output_uri=str(out),
        id_columns=["id"],
        probabilities=True,
        chunk_size=500,
    ).execute(context("score"))
    assert (scored["version"], scored["rows"]) == (champion, 1461)
    predictions = pd.read_parquet(out)

    loaded = MLflowRegistryHook().load_verified(f"models:/{model}/{champion}")
    batch = pd.read_csv(store.data)
    features = REGRESSION_FEATURES if regression else CLASSIFICATION_FEATURES
    assert [c.name for c in loaded.inputs or []] == features
    expected = loaded.model.predict(batch[features])
    if regression:
        assert np.allclose(predictions["prediction"], expected)
        return
    # the original labels come back, and the probability columns are named by them
    assert set(predictions["prediction"]) <= LABELS
    assert list(predictions["prediction"]) == list(expected)
    assert list(loaded.model.classes_) == sorted(LABELS)
    proba = predictions[[f"proba_{label}" for label in sorted(LABELS)]].to_numpy()
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert list(np.asarray(sorted(LABELS))[proba.argmax(axis=1)]) == list(predictions["prediction"])


# -- hostile artifacts ---------------------------------------------------------------------------------


class WritesMarker:
    """skops restores it with ``__setstate__``, which writes the file."""

    def __setstate__(self, state: dict) -> None:
        with open(state["path"], "w") as f:
            f.write("code ran")


def stored_dir(model: str, version: str) -> Path:
    from mlflow.utils.file_utils import local_file_uri_to_path

    with MLflowRegistryHook().session() as client:
        model_id = client.get_model_version(model, version).source.removeprefix("models:/")
        return Path(local_file_uri_to_path(client.get_logged_model(model_id).artifact_location))


@pytest.fixture(scope="module")
def trained(store: SimpleNamespace) -> dict[str, tuple[Path, Any, dict[str, str]]]:
    """One small real model per library, trained and registered: its stored folder, the loaded model and
    the version's tags (lineage)."""
    found = {}
    for estimator in LIBRARIES:
        model = f"source-{estimator.split('.')[0]}"
        version = register(model, train(store, model, estimator, {"n_estimators": 2}, regression=False))
        loaded = MLflowRegistryHook().load_model(f"models:/{model}/{version}")
        with MLflowRegistryHook().session() as client:
            tags = dict(client.get_model_version(model, version).tags)
        found[estimator] = (stored_dir(model, version), loaded, tags)
    return found


def replace_model(
    store: SimpleNamespace, trained: dict, estimator: str, fmt: str, craft: Any
) -> tuple[str, str, str]:
    """
    A registered version whose stored model is ``craft(a real fitted model)``, listed as trusted in its
    own MLmodel, with the recorded sha256 set to match (what an attacker with registry write access
    does): (model name, version, the payload's declared types).
    """
    import shutil

    import skops.io as sio

    source, fitted, tags = trained[estimator]
    model = f"hostile-{uuid.uuid4().hex[:8]}"
    folder = store.tmp / model
    shutil.copytree(source, folder)
    payload = craft(copy.deepcopy(fitted))
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    for old in folder.glob("model.*"):
        old.unlink()
    name = "model.skops" if fmt == "skops" else "model.pkl"
    (folder / name).write_bytes(payload)
    declared = sio.get_untrusted_types(data=payload) if fmt == "skops" else []
    meta["flavors"]["sklearn"].update(
        pickled_model=name, serialization_format=fmt, skops_trusted_types=declared
    )
    meta["flavors"]["python_function"]["model_path"] = name
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    with MLflowRegistryHook().session() as client:
        client.create_registered_model(model)
        version = str(client.create_model_version(model, folder.as_uri()).version)
        for key, value in {**tags, SHA256_TAG: model_digest(folder)}.items():
            client.set_model_version_tag(model, version, key, value)
    return model, version, ",".join(declared)


def last_step(model: Any) -> Any:
    """The library estimator inside the provider's Pipeline (and VotingClassifier for XGBoost)."""
    final = model.steps[-1][1]
    return final.estimators_[0] if hasattr(final, "estimators_") else final


def with_marker(marker: Path, inside_booster: bool) -> Any:
    def craft(model: Any) -> bytes:
        import skops.io as sio

        evil = WritesMarker.__new__(WritesMarker)
        evil.__dict__["path"] = str(marker)
        target = last_step(model)
        target = target.get_booster() if inside_booster and hasattr(target, "get_booster") else target
        target = target.booster_ if inside_booster and hasattr(target, "booster_") else target
        target.__dict__["extra"] = evil
        return sio.dumps(model)

    return craft


def with_objective(function: Any) -> Any:
    def craft(model: Any) -> bytes:
        import skops.io as sio

        last_step(model).__dict__["objective"] = function
        return sio.dumps(model)

    return craft


def with_callback(model: Any) -> bytes:
    """A type of the library outside the exact allowlist (an XGBoost callback that writes checkpoints)."""
    import skops.io as sio
    import xgboost

    last_step(model).set_params(callbacks=[xgboost.callback.TrainingCheckPoint(directory="/tmp/x")])
    return sio.dumps(model)


@pytest.mark.parametrize("estimator", LIBRARIES)
@pytest.mark.parametrize("inside_booster", [False, True], ids=["in-wrapper", "in-booster"])
def test_a_foreign_object_inside_a_library_wrapper_is_refused_and_never_runs(
    store, trained, tmp_path, estimator, inside_booster
):
    marker = tmp_path / "pwned"
    model, version, declared = replace_model(
        store, trained, estimator, "skops", with_marker(marker, inside_booster)
    )
    assert f"{WritesMarker.__module__}.WritesMarker" in declared
    uri = f"models:/{model}/{version}"
    match = rf"outside the provider's allowlist.*{WritesMarker.__module__}\.WritesMarker"
    with pytest.raises(InvalidInputError, match=match):
        MLflowRegistryHook().load_model(uri)
    with pytest.raises(InvalidInputError, match=match):
        MLflowRegistryHook().verify_model(uri)
    MLflowRegistryHook().move_alias(
        model_name=model, alias="champion", expected_old=None, new_version=version, why="attacker",
        who="attacker", action="promote", lock_owner="attacker",
    )  # fmt: skip
    output = store.tmp / model / "out" / "predictions.parquet"
    score = BatchScoreOperator(
        task_id="score", model_name=model, data_uri=str(store.data), output_uri=str(output)
    )
    with pytest.raises(AirflowFailException, match=match):
        score.execute(context("score"))
    assert not output.exists()
    assert not marker.exists()
    # control: the payload is live: loading it with its own trusted list (what MLflow does) runs it
    import skops.io as sio

    sio.load(store.tmp / model / "model.skops", trusted=declared.split(","))
    assert marker.exists()


@pytest.mark.parametrize(
    ("estimator", "craft", "refused"),
    [
        ("lightgbm.LGBMClassifier", with_objective(os.system), r"(posix|os)\.system"),
        ("xgboost.XGBClassifier", with_objective(eval), r"builtins\.eval"),
        ("xgboost.XGBClassifier", with_callback, r"xgboost\.callback\.TrainingCheckPoint"),
    ],
    ids=["lightgbm-os.system", "xgboost-eval", "xgboost-callback"],
)
def test_a_dangerous_callable_or_an_unlisted_library_type_in_a_wrapper_is_refused(
    store, trained, estimator, craft, refused
):
    model, version, declared = replace_model(store, trained, estimator, "skops", craft)
    assert declared
    with pytest.raises(InvalidInputError, match=rf"outside the provider's allowlist.*{refused}"):
        MLflowRegistryHook().load_model(f"models:/{model}/{version}")


@pytest.mark.parametrize("estimator", LIBRARIES)
def test_a_pickled_library_model_is_refused_unless_pickle_is_allowed(store, trained, estimator):
    model, version, _ = replace_model(store, trained, estimator, "pickle", pickle.dumps)
    uri = f"models:/{model}/{version}"
    with pytest.raises(InvalidInputError, match="serialised with pickle, which can run arbitrary code"):
        MLflowRegistryHook().load_model(uri)
    assert MLflowRegistryHook(load_policy=ModelLoadPolicy(allow_pickle=True)).load_model(uri) is not None


def test_a_booster_whose_bytes_are_not_a_model_is_refused_with_a_clear_error(store, trained):
    def corrupt(model: Any) -> bytes:
        import io
        import zipfile

        import skops.io as sio

        source = zipfile.ZipFile(io.BytesIO(sio.dumps(model)))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as target:
            for name in source.namelist():  # XGBoost's booster bytes are the zip's .bin member
                target.writestr(name, b"\x00not a model" * 40 if name.endswith(".bin") else source.read(name))
        return out.getvalue()

    model, version, _ = replace_model(store, trained, "xgboost.XGBClassifier", "skops", corrupt)
    with pytest.raises(InvalidInputError, match=r"the skops file does not load \(XGBoostError"):
        MLflowRegistryHook().load_model(f"models:/{model}/{version}")
