"""The closed loop at operator level, on real MLflow (SQLite) and scikit-learn: batches scored with the
champion and, in shadow, the previous champion; late labels; the performance monitor's judgement."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowSkipException
from support import cancer_csv, context, monitor_options, move_alias, run_context, train

from mlops_provider.core.catalog_rows import live_check
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.performance import PerformanceMonitorOperator
from mlops_provider.operators.scoring import BatchScoreOperator

DAY = datetime(2026, 11, 1, tzinfo=UTC)
GOOD = ("sklearn.tree.DecisionTreeClassifier", {"max_depth": 3, "random_state": 0})
BAD = ("sklearn.dummy.DummyClassifier", {"strategy": "constant", "constant": "malignant"})


def promote(name: str, version: str, old: str | None, alias: str = "champion") -> None:
    move_alias(name, version, old, alias)


@pytest.fixture
def loop(mlflow_store: Path, tmp_path: Path) -> SimpleNamespace:
    data = cancer_csv(tmp_path)
    frame = pd.read_csv(data)
    frame.insert(0, "patient_id", [f"p{i}" for i in range(len(frame))])
    frame.drop(columns=["target"]).to_csv(tmp_path / "batch.csv", index=False)
    hook = MLflowRegistryHook()
    for i, (estimator, params) in enumerate((GOOD, BAD), start=1):
        run_id = train("live", data, estimator, params, run_id=f"manual__{i}")["run_id"]
        EvaluateModelOperator(task_id="evaluate", run_id=run_id).execute(
            context("evaluate")
        )  # holdout numbers
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
    options = monitor_options("live", loop.labels, **{"rollback": "auto", **overrides})
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
    (degrade,) = summary["degrade"]
    assert degrade["value"] is not None  # the drop was computed from its holdout number, not skipped
    assert degrade["passed"]
    assert summary["action"] == "rollback", summary["reason"]
    assert MLflowRegistryHook().alias_version("live", "champion") == "1"
    assert "previous_champion" in summary["reason"]
    with MLflowRegistryHook().session() as client:
        model = client.get_registered_model("live")
        version = client.get_model_version("live", "1")
    history = json.loads(model.tags["mlops.alias_history.champion"])
    assert (history[-1]["action"], history[-1]["who"], history[-1]["to"]) == (
        "rollback",
        "live-performance",
        "1",
    )
    live = live_check(model.tags["mlops.last_check.performance"])  # what the Models page shows
    assert (live["metric"], live["status"], live["action"], live["labels"]) == (
        "accuracy",
        "ok",
        "rollback",
        300,
    )
    assert version.tags["mlops.rollback.by"] == "live-performance"
    judged = MLflowRegistryHook().model_version("live", "2").tags  # the reason on the version it judged
    assert (judged["mlops.live.action"], judged["mlops.live.labels"]) == ("rollback", "300")
    assert judged["mlops.live.reason"] == summary["reason"]
    again, _ = monitor(loop, DAY + timedelta(days=1))  # the same run again: no flip back to version 2
    # version 1's live numbers now come from its shadow rows; @previous_champion (2) has none of its own
    assert (again["action"], again["status"], again["labels"]) == ("none", "ok", 300)
    assert MLflowRegistryHook().alias_version("live", "champion") == "1"
    assert summary["labels"] == 300


def test_the_window_counts_scoring_dates(loop: SimpleNamespace) -> None:
    score(loop, DAY, "scheduled__1")
    land_labels(loop, slice(0, 300), "part1")
    summary, _ = monitor(loop, DAY + timedelta(days=40), rollback="off")  # the batch is out of the window
    assert (summary["status"], summary["window"]["batches"]) == ("insufficient_labels", 0)


def test_without_a_champion_the_monitor_skips(loop: SimpleNamespace) -> None:
    with pytest.raises(AirflowSkipException):
        monitor(loop, DAY, model_name="live", alias="nobody")


def test_a_planted_batch_record_outside_the_predictions_folder_is_left_out(loop: SimpleNamespace) -> None:
    from mlops_provider.core.performance import scoring_record
    from mlops_provider.hooks.monitoring import MonitoringHook

    planted = loop.tmp / "elsewhere" / "fake.parquet"  # "predictions" a registry writer made up
    planted.parent.mkdir()
    fake = loop.frame[["patient_id", "target"]].rename(columns={"target": "prediction"})
    fake.assign(model_version="1", alias="previous_champion", scoring_date="2026-11-01T00:00:00Z").to_parquet(
        planted
    )
    identity = {"dag_id": "live_batch_score", "dag_run_id": "planted", "task_id": "score_batch"}
    record = scoring_record(
        model="live",
        versions={"previous_champion": "1"},
        outputs={"served": str(planted), "shadow": None},
        rows=len(fake),
        identity=identity,
        scoring_date=DAY,
        scored_at=DAY,
    )
    MonitoringHook().record_check(record)
    land_labels(loop, slice(0, 300), "part1")
    guarded, _ = monitor(loop, DAY + timedelta(days=1), predictions_prefix=str(loop.tmp / "predictions"))
    assert guarded["aliases"] == {}  # nothing read
    assert guarded["window"]["batches"] == 1
    open_, _ = monitor(loop, DAY + timedelta(days=2))  # without the folder rule the file would count
    assert open_["aliases"]["previous_champion"]["labels"] == 300


def shadow_setup(loop: SimpleNamespace, champion: str, challenger: str) -> None:
    """``champion`` serves, ``challenger`` waits in shadow (sent there by the gate); no @previous_champion."""
    with MLflowRegistryHook().session() as client:
        client.delete_registered_model_alias("live", "previous_champion")
        client.set_registered_model_alias("live", "champion", champion)
    promote("live", challenger, None, alias="challenger")
    MLflowRegistryHook().set_version_tags(
        "live", challenger, {"mlops.gate.decision": "shadow"}
    )  # as the gate


def test_a_shadow_challenger_better_live_is_promoted(loop: SimpleNamespace) -> None:
    shadow_setup(loop, champion="2", challenger="1")
    assert score(loop, DAY, "scheduled__1")["shadow"] == {"challenger": "1"}
    land_labels(loop, slice(0, 150), "part1")
    waiting, _ = monitor(loop, DAY + timedelta(days=1), mode="shadow", shadow_min_labels=200, rollback="off")
    assert waiting["action"] == "none"
    assert "stays in shadow: 150 of 200" in waiting["reason"]
    land_labels(loop, slice(150, 400), "part2")
    summary, _ = monitor(loop, DAY + timedelta(days=2), mode="shadow", shadow_min_labels=200, rollback="off")
    assert summary["action"] == "promote", summary["reason"]
    hook = MLflowRegistryHook()
    assert (hook.alias_version("live", "champion"), hook.alias_version("live", "challenger")) == ("1", None)
    assert hook.alias_version("live", "previous_champion") == "2"
    tags = hook.model_version("live", "1").tags
    assert (tags["mlops.gate.decision"], tags["mlops.gate.decided_by"]) == ("promoted", "live-performance")
    assert "400 labelled live rows" in tags["mlops.gate.reason"]


def test_a_shadow_challenger_worse_live_is_refused_and_leaves_shadow(loop: SimpleNamespace) -> None:
    shadow_setup(loop, champion="1", challenger="2")
    score(loop, DAY, "scheduled__1")
    land_labels(loop, slice(0, 400), "part1")
    summary, _ = monitor(loop, DAY + timedelta(days=1), mode="shadow", shadow_min_labels=200, rollback="off")
    assert summary["action"] == "refuse_challenger", summary["reason"]
    hook = MLflowRegistryHook()
    assert (hook.alias_version("live", "champion"), hook.alias_version("live", "challenger")) == ("1", None)
    tags = hook.model_version("live", "2").tags
    assert tags["mlops.gate.decision"] == "refused"
    assert json.loads(tags["mlops.gate.gates"])[0]["gate"] == "vs_champion"
    again, _ = monitor(loop, DAY + timedelta(days=1), mode="shadow", shadow_min_labels=200, rollback="off")
    assert again["action"] == "none"  # nothing left in shadow: no second refusal


def test_moving_the_challenger_alias_keeps_previous_champion_and_a_retry_records_once(
    loop: SimpleNamespace,
) -> None:
    hook = MLflowRegistryHook()
    assert hook.alias_version("live", "previous_champion") == "1"
    promote("live", "1", None, alias="challenger")
    promote("live", "1", "1", alias="challenger")  # a retry of the same move
    with hook.session() as client:
        history = json.loads(client.get_registered_model("live").tags["mlops.alias_history.challenger"])
    assert len(history) == 1
    assert hook.alias_version("live", "previous_champion") == "1"  # not the challenger's old version
