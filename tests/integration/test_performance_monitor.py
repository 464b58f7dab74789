"""The closed loop at operator level, on real MLflow (SQLite) and scikit-learn: batches scored with the
champion and, in shadow, the previous champion; late labels; the performance monitor's judgement."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException
from support import cancer_csv, context, train

from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.performance import PerformanceMonitorOperator
from mlops_provider.operators.scoring import BatchScoreOperator

DAY = datetime(2026, 11, 1, tzinfo=UTC)
GOOD = ("sklearn.tree.DecisionTreeClassifier", {"max_depth": 3, "random_state": 0})
BAD = ("sklearn.dummy.DummyClassifier", {"strategy": "constant", "constant": "malignant"})


def run_context(task_id: str, run_id: str, when: datetime) -> dict[str, Any]:
    ctx = context(task_id, run_id=run_id)
    ctx["logical_date"] = when
    ctx["outlet_events"] = defaultdict(lambda: SimpleNamespace(extra=None))
    return ctx


def promote(name: str, version: str, old: str | None) -> None:
    MLflowRegistryHook().move_alias(
        model_name=name,
        alias="champion",
        expected_old=old,
        new_version=version,
        why="test",
        who="test",
        action="promote",
        lock_owner="test",
    )


@pytest.fixture
def loop(mlflow_store: Path, tmp_path: Path) -> SimpleNamespace:
    data = cancer_csv(tmp_path)
    frame = pd.read_csv(data)
    frame.insert(0, "patient_id", [f"p{i}" for i in range(len(frame))])
    frame.drop(columns=["target"]).to_csv(tmp_path / "batch.csv", index=False)
    hook = MLflowRegistryHook()
    for i, (estimator, params) in enumerate((GOOD, BAD), start=1):
        run_id = train("live", data, estimator, params, run_id=f"manual__{i}")["run_id"]
        hook.register_run("live", run_id, {})
    promote("live", "1", None)
    promote("live", "2", "1")  # a bad champion slipped through; v1 is @previous_champion
    labels = tmp_path / "labels"
    labels.mkdir()
    return SimpleNamespace(tmp=tmp_path, frame=frame, labels=labels)


def score(loop: SimpleNamespace, when: datetime, run: str) -> dict[str, Any]:
    op = BatchScoreOperator(
        task_id="score_batch",
        model_name="live",
        data_uri=str(loop.tmp / "batch.csv"),
        output_uri=str(loop.tmp / "predictions" / f"{run}.parquet"),
        id_columns=["patient_id"],
        probabilities=True,
        shadow_aliases=["previous_champion", "challenger"],
        record_batch=True,
    )
    return op.execute(run_context("score_batch", run, when))


def monitor(loop: SimpleNamespace, when: datetime, **overrides: Any) -> tuple[dict[str, Any], dict]:
    options: dict[str, Any] = {
        "task_id": "check_performance",
        "model_name": "live",
        "labels_uri": str(loop.labels / "*.csv"),
        "id_column": "patient_id",
        "label_column": "target",
        "task_type": "classification",
        "primary_metric": "accuracy",
        "degrade": {"accuracy": {"max_drop": 0.05}},
        "vs_champion": {"accuracy": {"min_delta": 0.0}},
        "min_labels": 100,
        "rollback": "auto",
        **overrides,
    }
    ctx = run_context("check_performance", f"scheduled__{when.date()}", when)
    return PerformanceMonitorOperator(**options).execute(ctx), ctx


def land_labels(loop: SimpleNamespace, rows: slice, name: str) -> None:
    loop.frame.iloc[rows][["patient_id", "target"]].to_csv(loop.labels / f"{name}.csv", index=False)


def test_scoring_writes_served_and_shadow_predictions_and_records_the_batch(loop: SimpleNamespace) -> None:
    result = score(loop, DAY, "scheduled__1")
    assert (result["version"], result["shadow"]) == ("2", {"previous_champion": "1"})
    served = pd.read_parquet(result["output_uri"])
    shadow = pd.read_parquet(result["shadow_output_uri"])
    assert list(served.columns[:3]) == ["patient_id", "row", "prediction"]
    assert {"proba_benign", "proba_malignant", "model_version", "alias", "scored_at", "scoring_date"} <= set(
        served.columns
    )
    assert set(served["alias"]) == {"champion"}
    assert set(shadow["alias"]) == {"previous_champion"}
    assert served["scoring_date"].iloc[0] == "2026-11-01T00:00:00Z"
    assert result["monitoring_run_id"]


def test_no_labels_yet_is_insufficient_and_moves_nothing(loop: SimpleNamespace) -> None:
    score(loop, DAY, "scheduled__1")
    summary, ctx = monitor(loop, DAY + timedelta(days=1))
    assert (summary["status"], summary["action"], summary["labels"]) == ("insufficient_labels", "none", 0)
    assert MLflowRegistryHook().alias_version("live", "champion") == "2"


def test_a_bad_champion_is_rolled_back_once_labels_show_it(loop: SimpleNamespace) -> None:
    score(loop, DAY, "scheduled__1")
    land_labels(loop, slice(0, 300), "part1")
    summary, _ = monitor(loop, DAY + timedelta(days=1))
    # the constant model is as bad live as on its holdout (not degraded), but v1 beats it on the same rows
    assert summary["status"] == "ok", summary["reason"]
    assert summary["action"] == "rollback", summary["reason"]
    assert MLflowRegistryHook().alias_version("live", "champion") == "1"
    assert "previous_champion" in summary["reason"]
    assert summary["labels"] == 300


def test_the_window_counts_scoring_dates(loop: SimpleNamespace) -> None:
    score(loop, DAY, "scheduled__1")
    land_labels(loop, slice(0, 300), "part1")
    summary, _ = monitor(loop, DAY + timedelta(days=40), rollback="off")  # the batch is out of the window
    assert (summary["status"], summary["window"]["batches"]) == ("insufficient_labels", 0)


def test_without_a_champion_the_monitor_skips(loop: SimpleNamespace) -> None:
    with pytest.raises(AirflowSkipException):
        monitor(loop, DAY, model_name="live", alias="nobody")
