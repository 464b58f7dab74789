"""A registry artifact whose load would run code is refused by every provider load, and the code never
runs: hook.load_model, EvaluateModelOperator (runs:/), BatchScoreOperator and PromoteModelOperator.

Real MLflow (SQLite, local artifact store) and sklearn. The attacker has write access to the registry
and the artifact store: a trained model's stored files are replaced by a pickle (``__reduce__`` opens a
marker file for writing) or a skops file holding a class whose ``__setstate__`` writes it, listed in
the model's own ``skops_trusted_types``; the sha256 tags are then set to match (or left stale). A
control load with the unsafe setting proves each artifact really writes the marker.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.exceptions import InvalidInputError
from mlops_provider.hooks.model_safety import SHA256_TAG, ModelLoadPolicy, model_digest
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import PromoteModelOperator
from mlops_provider.operators.scoring import BatchScoreOperator
from mlops_provider.operators.training import TrainModelOperator

MODEL = "victim"


class OpensMarker:
    """Unpickling calls ``open(path, "w")``: the file appears."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class WritesMarker:
    """skops restores it with ``__setstate__``, which writes the file."""

    def __setstate__(self, state: dict) -> None:
        with open(state["path"], "w") as f:
            f.write("code ran")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("loading-security")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        data.with_name("batch.csv").write_text(data.read_text())
        yield SimpleNamespace(tmp=tmp, data=data)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


def trained_version(store: SimpleNamespace) -> tuple[str, str]:
    """A real model, trained and registered as the provider does: (run id, version)."""
    op = TrainModelOperator(
        task_id="train",
        model_name=MODEL,
        data_uri=str(store.data),
        target="target",
        estimator="sklearn.tree.DecisionTreeClassifier",
        estimator_params={"max_depth": 2},
    )
    run_id = op.execute(context("train", run_id=uuid.uuid4().hex))["run_id"]
    version, _ = MLflowRegistryHook().register_run(MODEL, run_id, {})
    return run_id, version


def stored_dir(version: str) -> Path:
    from mlflow.utils.file_utils import local_file_uri_to_path

    with MLflowRegistryHook().session() as client:
        model_id = client.get_model_version(MODEL, version).source.removeprefix("models:/")
        return Path(local_file_uri_to_path(client.get_logged_model(model_id).artifact_location))


def craft(folder: Path, fmt: str, payload: bytes, trusted: list[str] | None = None) -> None:
    """Replace the stored model by ``payload`` and make MLmodel describe it."""
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    name = "model.skops" if fmt == "skops" else "model.pkl"
    for old in folder.glob("model.*"):
        old.unlink()
    (folder / name).write_bytes(payload)
    meta["flavors"]["sklearn"].update(pickled_model=name, serialization_format=fmt)
    meta["flavors"]["python_function"]["model_path"] = name
    if trusted is not None:
        meta["flavors"]["sklearn"]["skops_trusted_types"] = trusted
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))


def record_matching_hash(run_id: str, version: str) -> None:
    """What an attacker with registry write access does: make the recorded sha256 match the craft."""
    digest = model_digest(stored_dir(version))
    with MLflowRegistryHook().session() as client:
        client.set_model_version_tag(MODEL, version, SHA256_TAG, digest)
        client.set_tag(run_id, SHA256_TAG, digest)


def pickle_craft(store: SimpleNamespace, marker: Path, *, matching: bool) -> tuple[str, str]:
    run_id, version = trained_version(store)
    craft(stored_dir(version), "pickle", pickle.dumps(OpensMarker(str(marker))))
    if matching:
        record_matching_hash(run_id, version)
    return run_id, version


def skops_craft(store: SimpleNamespace, marker: Path, obj: object) -> tuple[str, str, list[str]]:
    import skops.io as sio

    run_id, version = trained_version(store)
    payload = sio.dumps(obj)
    declared = sio.get_untrusted_types(data=payload)
    craft(stored_dir(version), "skops", payload, trusted=declared)
    record_matching_hash(run_id, version)
    return run_id, version, declared


def every_provider_load(store: SimpleNamespace, run_id: str, version: str, match: str) -> None:
    """Each path a worker loads a registry model through refuses, with ``match`` in the message."""
    uri = f"models:/{MODEL}/{version}"
    with pytest.raises(InvalidInputError, match=match):
        MLflowRegistryHook().load_model(uri)
    with pytest.raises(InvalidInputError, match=match):
        MLflowRegistryHook().verify_model(uri)
    with pytest.raises(AirflowFailException, match=match):
        EvaluateModelOperator(task_id="evaluate", run_id=run_id, compute_importance=False).execute(
            context("evaluate")
        )
    alias = f"crafted{version}"
    MLflowRegistryHook().move_alias(
        model_name=MODEL,
        alias=alias,
        expected_old=None,
        new_version=version,
        why="attacker",
        who="attacker",
        action="promote",
        lock_owner="attacker",
    )
    output = store.tmp / f"out-{version}" / "predictions.parquet"
    score = BatchScoreOperator(
        task_id="score",
        model_name=MODEL,
        alias=alias,
        data_uri="batch.csv",
        output_uri=str(output),
        base_dir=str(store.tmp),
    )
    with pytest.raises(AirflowFailException, match=match):
        score.execute(context("score"))
    assert not output.parent.exists()
    promote = PromoteModelOperator(
        task_id="promote", model_name=MODEL, version=version, thresholds={"f1_macro": {"min": 0.0}}
    )
    with pytest.raises(AirflowFailException, match=match):
        promote.execute(context("promote"))


def test_a_pickle_with_a_matching_hash_is_refused_and_never_runs(store, marker):
    run_id, version = pickle_craft(store, marker, matching=True)
    every_provider_load(store, run_id, version, "serialised with pickle, which can run arbitrary code")
    assert not marker.exists()
    # control: the artifact is live, the opt-in really deserialises it
    MLflowRegistryHook(load_policy=ModelLoadPolicy(allow_pickle=True)).load_model(
        f"models:/{MODEL}/{version}"
    )
    assert marker.exists()


def test_a_tampered_artifact_is_refused_before_any_load_even_with_pickle_allowed(store, marker):
    run_id, version = pickle_craft(store, marker, matching=False)
    every_provider_load(
        store, run_id, version, r"changed after it was logged: expected sha256 [0-9a-f]{64}, found"
    )
    opted = MLflowRegistryHook(load_policy=ModelLoadPolicy(allow_pickle=True))
    with pytest.raises(InvalidInputError, match=f"{MODEL} version {version}: the model artifact was changed"):
        opted.load_model(f"models:/{MODEL}/{version}")
    assert not marker.exists()


def test_a_skops_file_trusting_its_own_custom_type_is_refused(store, marker):
    evil = WritesMarker.__new__(WritesMarker)
    evil.__dict__["path"] = str(marker)
    run_id, version, declared = skops_craft(store, marker, evil)
    assert declared == [f"{WritesMarker.__module__}.WritesMarker"]
    every_provider_load(store, run_id, version, rf"outside the provider's allowlist.*{declared[0]}")
    assert not marker.exists()
    # control: loading with the model's own trusted list (what MLflow does) runs the code
    import skops.io as sio

    sio.load(stored_dir(version) / "model.skops", trusted=declared)
    assert marker.exists()


@pytest.mark.parametrize("callable_", [eval, os.system], ids=["builtins.eval", "os.system"])
def test_a_skops_file_declaring_a_dangerous_callable_is_refused(store, marker, callable_):
    run_id, version, declared = skops_craft(store, marker, {"predict": callable_})
    assert declared
    assert not any(t.startswith(("sklearn.", "numpy.", "scipy.")) for t in declared)
    with pytest.raises(InvalidInputError, match=rf"outside the provider's allowlist.*{declared[0]}"):
        MLflowRegistryHook().load_model(f"models:/{MODEL}/{version}")


def test_promote_verifies_the_challenger_even_when_it_reuses_the_evaluation(store, marker):
    run_id, version = trained_version(store)
    EvaluateModelOperator(task_id="evaluate", run_id=run_id, compute_importance=False).execute(
        context("evaluate")
    )
    craft(stored_dir(version), "pickle", pickle.dumps(OpensMarker(str(marker))))
    promote = PromoteModelOperator(
        task_id="promote", model_name=MODEL, version=version, thresholds={"f1_macro": {"min": 0.0}}
    )
    with pytest.raises(AirflowFailException, match="changed after it was logged"):
        promote.execute(context("promote"))
    assert not marker.exists()


@pytest.mark.parametrize(
    "named",
    ["../planted.pkl", "../../planted.pkl", "sub/../../planted.pkl", "{outside}", "file://{outside}"],
)
def test_a_registered_version_naming_a_model_file_outside_its_folder_is_refused_and_not_fetched(
    store, marker, tmp_path, monkeypatch, named
):
    """Only ``MLmodel`` and the model file are fetched for a ``models:/`` load: a model file named outside
    the model's folder is never downloaded (a ``../`` name would land outside the download folder)."""
    import tempfile

    run_id, version = trained_version(store)
    folder = stored_dir(version)
    outside = folder.parents[1] / "planted.pkl"
    payload = pickle.dumps(OpensMarker(str(marker)))
    for planted in (outside, folder.parent / "planted.pkl"):
        planted.write_bytes(payload)
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    meta["flavors"]["sklearn"]["pickled_model"] = named.format(outside=outside)
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(downloads / "tmp"))
    (downloads / "tmp").mkdir()
    with pytest.raises(InvalidInputError, match="not a file of the model"):
        MLflowRegistryHook(load_policy=ModelLoadPolicy(allow_cloudpickle_fallback=True)).load_model(
            f"models:/{MODEL}/{version}"
        )
    assert not marker.exists()
    assert sorted(p.name for p in downloads.rglob("*.pkl")) == []


def test_a_registered_version_loads_from_mlmodel_and_its_model_file_alone(store):
    """A registered version's load fetches MLmodel and the model file only: MLflow's environment files and
    examples are neither fetched nor needed."""
    run_id, version = trained_version(store)
    folder = stored_dir(version)
    kept = {"MLmodel", *(p.name for p in folder.glob("model.*"))}
    for extra in folder.iterdir():
        if extra.name not in kept and extra.is_file():
            extra.unlink()
    import pandas as pd
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    fetched: list[str] = []
    real = LocalArtifactRepository.download_artifacts

    def observed(repo, artifact_path, dst_path=None):  # the real download; what it took from the store
        if Path(repo.artifact_dir).resolve() == folder.resolve():
            fetched.append(artifact_path)
        return real(repo, artifact_path, dst_path)

    with mock.patch.object(LocalArtifactRepository, "download_artifacts", observed):
        loaded = MLflowRegistryHook().load_verified(f"models:/{MODEL}/{version}")
    assert fetched == ["MLmodel", *sorted(kept - {"MLmodel"})]
    assert loaded.model.predict(pd.read_csv(store.data).drop(columns="target").head(5)).shape == (5,)
    assert loaded.digest == model_digest(folder)
