"""Train -> evaluate -> register -> promote -> rollback -> score, with real MLflow (SQLite) and sklearn.

Operators are called through ``execute()`` with a minimal context here (fast); the Airflow path is
proven once in test_lifecycle_dag.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from support import cancer_csv, context

from mlops_provider.core import lineage
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import (
    PromoteModelOperator,
    RegisterModelOperator,
    RollbackModelOperator,
)
from mlops_provider.operators.scoring import BatchScoreOperator
from mlops_provider.operators.training import TrainModelOperator

MODEL = "cancer"
THRESHOLDS = {"f1_macro": {"min": 0.5}}
VS_CHAMPION = {"f1_macro": {"min_delta": 0.0}, "log_loss": {"min_delta": -0.05}}


def train(data: Path, estimator: str, params: dict | None = None, task_id: str = "train", **kw) -> dict:
    op = TrainModelOperator(
        task_id=task_id,
        model_name=MODEL,
        data_uri=str(data),
        target="target",
        estimator=estimator,
        estimator_params=params,
        **kw,
    )
    return op.execute(context(task_id, run_id=kw.pop("dag_run", f"run-{estimator}-{params}")))


def register(run_id: str) -> dict:
    return RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run_id).execute(
        context("register")
    )


def promote(version: str, ctx: dict | None = None, **kw) -> dict:
    op = PromoteModelOperator(
        task_id="promote",
        model_name=MODEL,
        version=version,
        thresholds=THRESHOLDS,
        vs_champion=VS_CHAMPION,
        **kw,
    )
    return op.execute(ctx or context("promote"))


def alias(name: str, which: str = "champion") -> str | None:
    return MLflowRegistryHook().alias_version(name, which)


def history(name: str = MODEL) -> list[dict]:
    with MLflowHook().session() as client:
        return json.loads(client.get_registered_model(name).tags.get("mlops.alias_history.champion", "[]"))


def version_tags(version: str, name: str = MODEL) -> dict:
    with MLflowHook().session() as client:
        return client.get_model_version(name, version).tags


@pytest.fixture
def data(tmp_path: Path, mlflow_store: Path) -> Path:
    return cancer_csv(tmp_path)


def test_champion_challenger_lifecycle(data: Path, tmp_path: Path):
    # first run: no champion, absolute gates pass -> promoted
    weak = train(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1})
    assert weak["n_train"] + weak["n_holdout"] == 569
    evaluation = EvaluateModelOperator(
        task_id="evaluate", run_id=weak["run_id"], slice_column="mean radius"
    ).execute(context("evaluate"))
    assert set(evaluation["metrics"]) == {
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "roc_auc",
        "log_loss",
    }
    assert len(evaluation["slices"]) == 4
    assert evaluation["non_finite"] == []
    with MLflowHook().session() as client:
        run = client.get_run(weak["run_id"])
        assert run.data.metrics["holdout_f1_macro"] == pytest.approx(evaluation["metrics"]["f1_macro"])
        assert run.data.tags[lineage.TRAINING_DATA_FINGERPRINT] == weak["training_data_fingerprint"]
        assert run.data.tags[lineage.CODE_VERSION]
        assert run.data.tags[lineage.DAG_ID] == "lifecycle_test"
        importance = client.download_artifacts(
            weak["run_id"], "evaluation/permutation_importance.json", str(tmp_path)
        )
        assert len(json.loads(Path(importance).read_text())["features"]) == 30
    v1 = register(weak["run_id"])
    assert v1 == {"model_name": MODEL, "version": "1", "run_id": weak["run_id"], "created": True}
    assert version_tags("1")[lineage.TRAINING_DATA_URI] == str(data)
    first = promote("1")
    assert first["decision"] == "promoted"
    assert first["old_version"] is None
    assert alias(MODEL) == "1"

    # a worse challenger is refused, the champion is unchanged, the decision recorded, XCom pushed first
    dummy = train(data, "sklearn.dummy.DummyClassifier", {"strategy": "most_frequent"})
    v2 = register(dummy["run_id"])["version"]
    ctx = context("promote")
    with pytest.raises(AirflowFailException, match="refused"):
        promote(v2, ctx)
    refused = ctx["ti"].pushed["return_value"]
    assert refused["decision"] == "refused"
    assert refused["old_version"] == "1"
    failed = {(g["gate"], g["metric"]) for g in refused["gates"] if not g["passed"]}
    assert ("threshold_min", "f1_macro") in failed
    assert ("vs_champion", "f1_macro") in failed
    assert alias(MODEL) == "1"
    assert version_tags(v2)["mlops.gate.decision"] == "refused"

    # a better one is promoted; the old champion keeps previous_champion; both scored on v3's holdout
    forest = train(data, "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 30})
    v3 = register(forest["run_id"])["version"]
    better = promote(v3)
    assert better["decision"] == "promoted"
    assert better["metrics"]["challenger"]["f1_macro"] > better["metrics"]["champion"]["f1_macro"]
    assert (alias(MODEL), alias(MODEL, "previous_champion")) == (v3, "1")
    assert version_tags(v3)["mlops.gate.old_version"] == "1"

    # promoting the champion again is a no-op
    assert promote(v3)["decision"] == "skipped"

    # scoring pins the champion's version
    out = tmp_path / "out" / "predictions.parquet"
    scored = BatchScoreOperator(
        task_id="score", model_name=MODEL, data_uri=str(data), output_uri=str(out), chunk_size=100
    ).execute(context("score"))
    predictions = pd.read_parquet(out)
    assert scored == {
        "model_name": MODEL,
        "version": v3,
        "rows": 569,
        "output_uri": str(out),
        "unseen_share": {},  # no categorical feature: nothing unseen
        "shadow": {},  # no shadow aliases asked for
        "shadow_output_uri": None,
    }
    assert set(predictions["model_version"]) == {v3}
    assert list(predictions["row"]) == list(range(569))
    assert set(predictions["prediction"]) <= {"benign", "malignant"}

    # rollback restores the previous champion, recorded in the history
    rolled = RollbackModelOperator(task_id="rollback", model_name=MODEL, reason="bad outputs").execute(
        context("rollback")
    )
    assert rolled["decision"] == "rolled_back"
    assert (alias(MODEL), alias(MODEL, "previous_champion")) == ("1", v3)
    moves = [(h["action"], h["from"], h["to"]) for h in history()]
    assert moves == [("promote", None, "1"), ("promote", "1", v3), ("rollback", v3, "1")]
    assert history()[-1]["why"] == "bad outputs"
    with MLflowHook().session() as client:  # the promotion lock is released
        assert not client.search_registered_models(f"name = '{MODEL}.mlops-lock'")


def test_retried_register_yields_one_version_and_races_are_deduplicated(data: Path):
    run = train(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    first = register(run["run_id"])
    again = register(run["run_id"])
    assert again == {**first, "created": False}
    # a concurrent try that did not see the first version (its search ran before the create) creates a
    # second one, then finds two and deletes its own
    racing = RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run["run_id"])
    real = MLflowRegistryHook._versions_of_run
    calls = []

    def stale_first_search(self, name, run_id):
        calls.append(1)
        return [] if len(calls) == 1 else real(self, name, run_id)

    with mock.patch.object(MLflowRegistryHook, "_versions_of_run", stale_first_search):
        raced = racing.execute(context("register"))
    assert raced == {**first, "created": False}
    with MLflowHook().session() as client:
        versions = client.search_model_versions(f"name = '{MODEL}'")
    assert [v.version for v in versions] == [int(first["version"])]


def test_train_retry_reuses_its_finished_run_and_kills_orphans(data: Path):
    op = TrainModelOperator(
        task_id="train",
        model_name=MODEL,
        data_uri=str(data),
        target="target",
        estimator="sklearn.tree.DecisionTreeClassifier",
    )
    first = op.execute(context("train", run_id="r1", try_number=1))
    with MLflowHook().session() as client:
        orphan = client.create_run(
            first["experiment_id"],
            tags={lineage.DAG_ID: "lifecycle_test", lineage.RUN_ID: "r1", lineage.TASK_ID: "train"},
        )
    second = op.execute(context("train", run_id="r1", try_number=2))
    assert second == first
    with MLflowHook().session() as client:
        assert client.get_run(orphan.info.run_id).info.status == "KILLED"
        assert len(client.search_runs([first["experiment_id"]])) == 2
    other_run = op.execute(context("train", run_id="r2"))
    assert other_run["run_id"] != first["run_id"]


def _registry_is_empty() -> bool:
    with MLflowHook().session() as client:
        experiment = client.get_experiment_by_name(MODEL)
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        return not runs and not client.search_registered_models()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "diagnosis"}, "target column 'diagnosis' not found"),
        ({"estimator": "sklearn.ensemble.RandomForrest"}, "has no attribute 'RandomForrest'"),
        ({"estimator": "sklearn.preprocessing.StandardScaler"}, "not a scikit-learn estimator"),
        ({"estimator_params": {"n_estimator": 10}}, "unknown param(s) 'n_estimator'"),
        ({"task_type": "regression"}, "regression needs a numeric target"),
        ({"features": ["mean radius", "colour"]}, "'colour' not found"),
    ],
)
def test_bad_training_input_fails_clearly_and_logs_nothing(data: Path, kwargs: dict, message: str):
    args = {"target": "target", "estimator": "sklearn.ensemble.RandomForestClassifier", **kwargs}
    op = TrainModelOperator(task_id="train", model_name=MODEL, data_uri=str(data), **args)
    with pytest.raises(AirflowFailException) as err:
        op.execute(context("train"))
    assert message in str(err.value)
    assert _registry_is_empty()


def test_empty_data_and_holdout_only_class_fail(tmp_path: Path, mlflow_store: Path):
    from palmerpenguins import load_penguins

    penguins = load_penguins()
    header_only = tmp_path / "empty.csv"
    penguins.iloc[0:0].to_csv(header_only, index=False)
    odd = tmp_path / "odd.csv"
    pd.concat([penguins, penguins.iloc[[5]].assign(species="Emperor")]).to_csv(odd, index=False)
    for path, message in ((header_only, "empty"), (odd, "'Emperor'")):
        op = TrainModelOperator(
            task_id="train",
            model_name=MODEL,
            data_uri=str(path),
            target="species",
            estimator="sklearn.tree.DecisionTreeClassifier",
        )
        with pytest.raises(AirflowFailException, match=message):
            op.execute(context("train"))
    assert _registry_is_empty()


def test_a_model_name_mlflow_refuses(data: Path):
    run = train(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1})
    with pytest.raises(AirflowFailException, match="refuses the model name 'team/cancer'"):
        RegisterModelOperator(task_id="register", model_name="team/cancer", run_id=run["run_id"]).execute(
            context()
        )
    with MLflowHook().session() as client:
        assert client.search_registered_models() == []


def test_nan_metrics_refuse(data: Path):
    run = train(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    version = register(run["run_id"])["version"]
    from mlops_provider.core import metrics

    real = metrics.compute_metrics

    def nan_f1(*args, **kwargs):  # fault injection: the challenger's f1 comes out NaN
        report = real(*args, **kwargs)
        report.values["f1_macro"] = None
        report.non_finite.append("f1_macro")
        return report

    ctx = context("promote")
    with (
        mock.patch.object(metrics, "compute_metrics", nan_f1),
        pytest.raises(AirflowFailException, match="not finite"),
    ):
        promote(version, ctx)
    assert ctx["ti"].pushed["return_value"]["decision"] == "refused"
    assert alias(MODEL) is None


def test_champion_lookup_error_is_not_no_champion(data: Path):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

    from mlops_provider.exceptions import MLflowUnavailableError

    run = train(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    version = register(run["run_id"])["version"]
    fault = MlflowException("database is locked", error_code=INTERNAL_ERROR)
    with (
        mock.patch("mlflow.MlflowClient.get_model_version_by_alias", side_effect=fault),
        pytest.raises(MLflowUnavailableError, match="database is locked"),
    ):
        promote(version)
    with (
        mock.patch(
            "mlflow.MlflowClient.get_model_version_by_alias", side_effect=ConnectionResetError("reset")
        ),
        pytest.raises(MLflowUnavailableError, match="reset"),  # translated: retried, never "no champion"
    ):
        promote(version)
    assert alias(MODEL) is None  # never promoted as if there were no champion


def test_manual_approval_waits_for_a_human_and_records_who(data: Path):
    from airflow.sdk.exceptions import TaskAwaitingInput

    run = train(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2})
    version = register(run["run_id"])["version"]
    op = PromoteModelOperator(
        task_id="promote", model_name=MODEL, version=version, thresholds=THRESHOLDS, approval="manual"
    )
    ctx = context("promote")
    # upsert_hitl_detail talks to the task supervisor, absent outside a task process: record the request
    with (
        mock.patch("airflow.sdk.execution_time.hitl.upsert_hitl_detail") as upsert,
        pytest.raises(TaskAwaitingInput) as parked,
    ):
        op.execute(ctx)
    request = upsert.call_args.kwargs
    assert request["options"] == ["Approve", "Reject"]
    assert request["defaults"] == ["Reject"]
    assert f"version {version}" in request["subject"]
    assert parked.value.method_name == "execute_complete"
    assert alias(MODEL) is None
    summary = parked.value.kwargs["summary"]
    json.dumps(summary)  # resumption kwargs are stored as JSON

    with pytest.raises(AirflowFailException, match="rejected by bob"):
        op.execute_complete(
            ctx,
            event={"chosen_options": ["Reject"], "responded_by_user": {"id": "2", "name": "bob"}},
            summary=summary,
        )
    assert alias(MODEL) is None
    done = op.execute_complete(
        ctx,
        event={"chosen_options": ["Approve"], "responded_by_user": {"id": "1", "name": "alice"}},
        summary=summary,
    )
    assert done["decision"] == "promoted"
    assert alias(MODEL) == version
    assert version_tags(version)["mlops.gate.decided_by"] == "human:alice"
    assert history()[-1]["who"] == "human:alice"
    with pytest.raises(AirflowFailException, match="without a human decision"):
        op.execute_complete(ctx, event=None, summary=summary)


def test_batch_score_skips_without_champion(data: Path, tmp_path: Path):
    op = BatchScoreOperator(
        task_id="score", model_name=MODEL, data_uri=str(data), output_uri=str(tmp_path / "p.csv")
    )
    with pytest.raises(AirflowSkipException, match="no champion"):
        op.execute(context("score"))
    assert not (tmp_path / "p.csv").exists()
