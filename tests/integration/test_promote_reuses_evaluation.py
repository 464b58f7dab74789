"""PromoteModelOperator reuses EvaluateModelOperator's challenger numbers only when they provably match.

Real MLflow (SQLite) and sklearn; operators run through ``execute()``. ``load_model`` is wrapped to
record which models each promote loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput
from support import cancer_csv, context, train

from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.models import HOLDOUT_RECORD_ARTIFACT, MLflowModelHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator

MODEL = "cancer"
SLICE = "mean radius"
GATES = {
    "thresholds": {"f1_macro": {"min": 0.5}},
    "vs_champion": {"f1_macro": {"min_delta": 0.0}, "log_loss": {"min_delta": -0.05}},
    "slices": {"column": SLICE, "max_gap": {"f1_macro": 1.0}},
}


@pytest.fixture
def data(tmp_path: Path, mlflow_store: Path) -> Path:
    return cancer_csv(tmp_path)


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model URIs loaded (by evaluate, promote and the champion scoring), in order."""
    uris: list[str] = []
    real = MLflowModelHook.load_model

    def spy(hook: MLflowModelHook, model_uri: str) -> Any:
        uris.append(model_uri)
        return real(hook, model_uri)

    monkeypatch.setattr(MLflowModelHook, "load_model", spy)
    return uris


def train_run(data: Path, estimator: str, params: dict) -> str:
    return str(train(MODEL, data, estimator, params, f"run-{estimator}-{params}")["run_id"])


def evaluate(run_id: str, slice_column: str | None = SLICE) -> dict:
    op = EvaluateModelOperator(
        task_id="evaluate", run_id=run_id, slice_column=slice_column, compute_importance=False
    )
    return op.execute(context("evaluate"))


def register(run_id: str) -> str:
    op = RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run_id)
    return op.execute(context("register"))["version"]


def promote(version: str, **kw: Any) -> dict:
    op = PromoteModelOperator(task_id="promote", model_name=MODEL, version=version, **{**GATES, **kw})
    return op.execute(context("promote"))


def gate_summary(version: str, **kw: Any) -> dict:
    """The gate's summary (scores, gates, source) without moving the alias: refused, or awaiting approval."""
    ctx = context("promote")
    op = PromoteModelOperator(
        task_id="promote", model_name=MODEL, version=version, approval="manual", **{**GATES, **kw}
    )
    with mock.patch("airflow.sdk.execution_time.hitl.upsert_hitl_detail"):
        try:
            op.execute(ctx)
        except TaskAwaitingInput as parked:
            return parked.kwargs["summary"]
        except AirflowFailException:
            return ctx["ti"].pushed["return_value"]
    raise AssertionError("the gate neither refused nor waited for an approval")


def read_record(run_id: str, tmp_path: Path) -> dict:
    with MLflowHook().session() as client:
        return json.loads(
            Path(client.download_artifacts(run_id, HOLDOUT_RECORD_ARTIFACT, str(tmp_path))).read_text()
        )


def write_record(run_id: str, record: Any) -> None:
    with MLflowHook().session() as client:
        if isinstance(record, str):
            client.log_text(run_id, record, HOLDOUT_RECORD_ARTIFACT)
        else:
            client.log_dict(run_id, record, HOLDOUT_RECORD_ARTIFACT)


def version_tags(version: str) -> dict:
    with MLflowHook().session() as client:
        return client.get_model_version(MODEL, version).tags


def test_promote_takes_the_challenger_numbers_from_evaluate(data: Path, tmp_path: Path, loaded: list[str]):
    weak = train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1})
    evaluate(weak)
    v1 = register(weak)
    loaded.clear()
    first = promote(v1)
    assert first["decision"] == "promoted"
    assert first["challenger_metrics_source"] == "evaluation"
    assert loaded == []  # no champion yet, and the challenger's numbers came from evaluate

    forest = train_run(data, "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 30})
    evaluated = evaluate(forest)
    v2 = register(forest)
    record = read_record(forest, tmp_path)
    with MLflowHook().session() as client:
        source = client.get_model_version(MODEL, v2).source
    assert source == f"models:/{record['model_id']}"
    assert record["model_uri"] == f"runs:/{forest}/model"
    assert (record["rows"], record["metrics"], record["slice_column"]) == (
        evaluated["rows"],
        evaluated["metrics"],
        SLICE,
    )
    assert {label: s["metrics"] for label, s in record["slices"].items()} == evaluated["slices"]

    # what recomputation gives: the same gate scored without the record (and without moving the alias)
    loaded.clear()
    recomputed = gate_summary(v2, reuse_evaluation=False)
    assert recomputed["challenger_metrics_source"] == "computed"
    assert loaded == [f"models:/{MODEL}/{v2}", f"models:/{MODEL}/{v1}"]

    loaded.clear()
    better = promote(v2)
    assert loaded == [f"models:/{MODEL}/{v1}"]  # only the champion is loaded and scored
    assert better["decision"] == "promoted"
    assert better["challenger_metrics_source"] == "evaluation"
    assert better["metrics"] == recomputed["metrics"]
    assert better["gates"] == recomputed["gates"]
    assert {g["gate"] for g in better["gates"]} == {"threshold_min", "vs_champion", "slice_gap"}
    assert version_tags(v2)["mlops.gate.challenger_metrics_source"] == "evaluation"


def test_without_a_record_promote_scores_the_challenger(data: Path, loaded: list[str]):
    run = train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    version = register(run)  # no evaluate step
    result = promote(version)
    assert result["decision"] == "promoted"
    assert result["challenger_metrics_source"] == "computed"
    assert loaded == [f"models:/{MODEL}/{version}"]
    assert result["metrics"]["challenger"]["f1_macro"] > 0.5
    assert version_tags(version)["mlops.gate.challenger_metrics_source"] == "computed"


def test_reuse_evaluation_false_recomputes(data: Path, loaded: list[str]):
    run = train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    evaluate(run)
    version = register(run)
    loaded.clear()
    result = promote(version, reuse_evaluation=False)
    assert result["challenger_metrics_source"] == "computed"
    assert loaded == [f"models:/{MODEL}/{version}"]


def _tampered(record: dict, key: str, value: Any) -> dict:
    changed = json.loads(json.dumps(record))
    if value is DROP:
        changed.pop(key)
    else:
        changed[key] = value
    return changed


DROP = object()
BAD_METRICS = {
    "accuracy": 0.1,
    "precision_macro": 0.1,
    "recall_macro": 0.1,
    "f1_macro": 0.1,
    "roc_auc": 0.1,
    "log_loss": 9.0,
}


def test_a_record_that_does_not_match_is_not_trusted(data: Path, tmp_path: Path, loaded: list[str]):
    champion = train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1})
    assert promote(register(champion))["decision"] == "promoted"
    forest = train_run(data, "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 30})
    evaluate(forest)
    version = register(forest)
    honest = read_record(forest, tmp_path)
    lying = {**honest, "metrics": BAD_METRICS}  # if trusted, the gates would refuse

    # control: with everything matching, promote does read the record (so the cases below can fail)
    write_record(forest, lying)
    trusted = gate_summary(version)
    assert trusted["challenger_metrics_source"] == "evaluation"
    assert trusted["metrics"]["challenger"] == BAD_METRICS
    assert not all(g["passed"] for g in trusted["gates"])

    cases = {
        "rows": lying["rows"] + 1,
        "features": lying["features"][:-1],
        "target": "mean area",
        "task_type": "regression",
        "model_uri": f"runs:/{champion}/model",
        "model_id": "m-0123456789abcdef",
        "holdout_fingerprint": "sha256:0",
        "code_version": "0.0.0",
        "format": 2,
        "slice_column": "mean texture",
        "slices": None,
        "non_finite": ["f1_macro"],
        "metrics": {k: v for k, v in BAD_METRICS.items() if k != "log_loss"},  # a gated metric missing
        "holdout_artifact": DROP,
    }
    for key, value in cases.items():
        write_record(forest, _tampered(lying, key, value))
        loaded.clear()
        summary = gate_summary(version)
        assert summary["challenger_metrics_source"] == "computed", key
        assert f"models:/{MODEL}/{version}" in loaded, key
        assert all(g["passed"] for g in summary["gates"]), key
        assert summary["metrics"]["challenger"] == honest["metrics"], key

    write_record(forest, "{not json")
    assert gate_summary(version)["challenger_metrics_source"] == "computed"

    # the honest record is reused again, and the decision is the recomputed one
    write_record(forest, honest)
    loaded.clear()
    result = promote(version)
    assert result["decision"] == "promoted"
    assert result["challenger_metrics_source"] == "evaluation"
    assert f"models:/{MODEL}/{version}" not in loaded


def test_a_record_without_the_gated_slices_is_not_used(data: Path, loaded: list[str]):
    run = train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    evaluate(run, slice_column=None)
    version = register(run)
    loaded.clear()
    assert promote(version)["challenger_metrics_source"] == "computed"  # the gate needs slices
    assert loaded == [f"models:/{MODEL}/{version}"]


def test_mlflow_errors_reading_the_record_fail_the_task(data: Path):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    from mlops_provider.exceptions import MLflowUnavailableError

    run = train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    evaluate(run)
    version = register(run)
    real = LocalArtifactRepository.download_artifacts

    def failing_record(self, artifact_path, dst_path=None):
        if artifact_path == HOLDOUT_RECORD_ARTIFACT:
            raise MlflowException("database is locked", error_code=INTERNAL_ERROR)
        return real(self, artifact_path, dst_path)

    with (
        mock.patch.object(LocalArtifactRepository, "download_artifacts", failing_record),
        pytest.raises(MLflowUnavailableError, match="database is locked"),
    ):
        promote(version)
