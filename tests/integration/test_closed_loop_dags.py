"""The closed loop end to end through dag.test(), on real data: scoring, late labels, live metrics, and
what the performance monitor does about them (a performance-triggered retrain, a shadow challenger
decided on live rows, an automatic rollback).

Seattle weather (vega_datasets) has a real label shift: in 2012-2013 a wet day is mostly "rain", in
2014-2015 mostly "fog" (2012-2013: 251 rain, 87 fog; 2015: 5 rain, 173 fog). With max_iter 50, a model
trained on 2012-2013 scores f1_macro 0.411 on its holdout and 0.160 on January-March 2015; one trained on
2014 scores 0.494 on its holdout, 0.447 on January-March 2015 and 0.211 on the 2012-2013 holdout.
Batches carry no label column: labels land later, in files of their own.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import yaml
from support import (
    dag_test_existing_run,
    import_dag_file,
    return_value,
    scheduler_creates_run,
    task_states,
)
from vega_datasets import data as vega

from mlops_provider.assets import performance_asset
from mlops_provider.hooks.mlflow import MLflowHook

ROOT = Path(__file__).resolve().parents[2]
MODEL = "weather_cl"
RETRAIN, SCORE, MONITOR = f"{MODEL}_retrain", f"{MODEL}_batch_score", f"{MODEL}_performance_monitor"
FEATURES = ["precipitation", "temp_max", "temp_min", "wind"]
BATCH_DAYS = [datetime(2015, m, d, tzinfo=UTC) for m, d in ((1, 31), (2, 28), (3, 31))]  # one a month
MONITOR_DAY = datetime(2015, 4, 1, tzinfo=UTC)
EARLY, RECENT = (2012, 2013), (2014,)  # two label relations
CRIPPLED = {"max_iter": 1, "learning_rate": 0.01}  # a model that predicts about the majority class

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


def weather() -> pd.DataFrame:
    frame = vega.seattle_weather()
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
    return frame


def rows(frame: pd.DataFrame, years: tuple[int, ...], months: tuple[int, ...] = tuple(range(1, 13))):
    dates = pd.to_datetime(frame["date"])
    return frame[dates.dt.year.isin(years) & dates.dt.month.isin(months)]


def merged(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def config(changes: dict) -> dict:
    cfg = yaml.safe_load((ROOT / "dags" / "configs" / "seattle_weather.yaml").read_text())
    base = {
        "model": {"name": MODEL},
        "data": {"train": "data/train/*.csv", "current": "data/batches/{{ ds }}.csv"},
        "validation": {"suite": "suite.json"},
        "training": {"params": {"max_iter": 50}},
        "retries": 0,
        "scoring": {"id_column": "date"},
        "feedback": {
            "labels": "data/labels/*.csv",
            "window_days": 90,
            "min_labels": 60,
            "degrade": {"f1_macro": {"max_drop": 0.05}},
            "rollback": "off",
        },
    }
    return merged(merged(cfg, base), changes)


def forget_earlier_runs() -> None:
    """The Airflow DB lives for the test session: drop this model's DAG runs, queued runs and performance
    events left by an earlier test (an active run would block the scheduler's next one)."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    set_paused(RETRAIN, True)
    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id.in_([RETRAIN, SCORE, MONITOR])):
            session.delete(run)
        session.query(AssetDagRunQueue).filter_by(target_dag_id=RETRAIN).delete()
        asset = session.query(AssetModel).filter_by(uri=performance_asset(MODEL).uri).one_or_none()
        if asset is not None:
            session.query(AssetEvent).filter_by(asset_id=asset.id).delete()


@pytest.fixture
def loop(dags_folder: Path, mlflow_store: Path) -> SimpleNamespace:
    """A DAGs folder with the factory's DAG file and a model folder; ``load(changes)`` writes the config
    (the repo's Seattle config with ``changes``) and returns the DAGs."""
    forget_earlier_runs()
    configs = dags_folder / "configs"
    for sub in ("train", "batches", "labels"):
        (configs / "data" / sub).mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_dags.py", dags_folder / "mlops_dags.py")
    shutil.copy(ROOT / "dags" / "weather_kpis.py", dags_folder / "weather_kpis.py")  # its custom metric
    # the repo's suite as it is: batches lack the label, so validate_current leaves its label checks out
    shutil.copy(ROOT / "dags" / "configs" / "seattle_weather" / "suite.json", configs / "suite.json")
    frame = weather()
    for day in BATCH_DAYS:  # a month's measurements, without the label
        month = rows(frame, (2015,), (day.month,))
        month[["date", *FEATURES]].to_csv(configs / "data" / "batches" / f"{day:%Y-%m-%d}.csv", index=False)

    def load(changes: dict | None = None) -> dict:
        (configs / f"{MODEL}.yaml").write_text(yaml.safe_dump(config(changes or {})))
        dags = import_dag_file(dags_folder / "mlops_dags.py")
        assert {RETRAIN, SCORE, MONITOR} <= set(dags)
        return dags

    def train_on(years: tuple[int, ...]) -> None:
        for old in (configs / "data" / "train").glob("*.csv"):
            old.unlink()
        rows(frame, years).to_csv(configs / "data" / "train" / f"{min(years)}-{max(years)}.csv", index=False)

    def land_labels(name: str, months: tuple[int, ...]) -> None:
        labelled = rows(frame, (2015,), months)[["date", "weather"]]
        labelled.to_csv(configs / "data" / "labels" / f"{name}.csv", index=False)

    return SimpleNamespace(
        load=load, train_on=train_on, land_labels=land_labels, configs=configs, frame=frame
    )


def champion(alias: str = "champion") -> str | None:
    with MLflowHook().session() as client:
        try:
            return str(client.get_model_version_by_alias(MODEL, alias).version)
        except Exception:
            return None


def version_tags(version: str) -> dict[str, str]:
    with MLflowHook().session() as client:
        return dict(client.get_model_version(MODEL, version).tags)


def model_tags() -> dict[str, str]:
    with MLflowHook().session() as client:
        return dict(client.get_registered_model(MODEL).tags)


def history(alias: str = "champion") -> list[dict[str, Any]]:
    return json.loads(model_tags().get(f"mlops.alias_history.{alias}", "[]"))


def retrain(dags: dict, **run_conf: Any) -> Any:
    run = dags[RETRAIN].test(run_conf=run_conf or None)
    got = task_states(run)
    assert got["promote_model"] == "success", got
    return run


def score_batches(dags: dict) -> list[dict[str, Any]]:
    scored = []
    for day in BATCH_DAYS:
        run = dags[SCORE].test(logical_date=day)
        assert task_states(run) == {"validate_current": "success", "score_batch": "success"}, task_states(run)
        skipped = return_value(run, "validate_current")["skipped_expectations"]
        assert any("'weather'" in s for s in skipped), skipped  # the label comes later
        scored.append(return_value(run, "score_batch"))
    return scored


def check(dags: dict, day: datetime) -> dict[str, Any]:
    run = dags[MONITOR].test(logical_date=day)
    assert task_states(run) == {"check_performance": "success"}, task_states(run)
    return return_value(run, "check_performance")


def performance_queue() -> list[str]:
    """The DAGs queued to run on the model's performance Asset (the scheduler's AssetDagRunQueue)."""
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri=performance_asset(MODEL).uri).one_or_none()
        if asset is None:
            return []
        return [q.target_dag_id for q in session.query(AssetDagRunQueue).filter_by(asset_id=asset.id)]


def performance_events() -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri=performance_asset(MODEL).uri).one_or_none()
        return 0 if asset is None else session.query(AssetEvent).filter_by(asset_id=asset.id).count()


def set_paused(dag_id: str, paused: bool) -> None:
    """The scheduler queues Asset-triggered runs for active (unpaused) DAGs only."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter_by(dag_id=dag_id).update({"is_paused": paused})


def training_run(run: Any) -> Any:
    """The MLflow run the DAG run's train_model task logged."""
    with MLflowHook().session() as client:
        return client.get_run(return_value(run, "train_model")["run_id"])


def labels_arrive_and_the_champion_degrades(loop: SimpleNamespace, dags: dict, holdout_f1: float) -> dict:
    """January's labels (too few), then February's and March's: the champion is degraded; its summary."""
    loop.land_labels("january", (1,))  # the first labels: 31 rows, fewer than min_labels (60)
    summary = check(dags, MONITOR_DAY)
    assert (summary["status"], summary["labels"], summary["event"]) == ("insufficient_labels", 31, False)
    assert summary["window"]["batches"] == 3
    assert performance_queue() == []
    assert performance_events() == 0

    loop.land_labels("february-march", (2, 3))  # the rest of the quarter: 90 labelled rows
    summary = check(dags, MONITOR_DAY + timedelta(days=1))
    assert (summary["status"], summary["action"], summary["labels"]) == ("degraded", "performance_event", 90)
    assert "f1_macro" in summary["reason"], summary["reason"]
    (dropped,) = [g for g in summary["degrade"] if not g["passed"]]
    assert dropped["metric"] == "f1_macro"
    assert f"vs holdout {holdout_f1:.6g}" in dropped["detail"], dropped["detail"]
    assert holdout_f1 - summary["live"]["f1_macro"] > 0.15, (holdout_f1, summary["live"])
    assert summary["event"] is True
    assert performance_queue() == [RETRAIN]
    assert performance_events() == 1
    return summary


def test_live_metric_falls_and_the_performance_event_starts_a_retrain_recorded_as_performance(loop):
    dags = loop.load()
    loop.train_on(EARLY)
    holdout_f1 = training_run(retrain(dags)).data.metrics["holdout_f1_macro"]
    assert champion() == "1"

    scored = score_batches(dags)
    assert [(s["version"], s["shadow"]) for s in scored] == [("1", {})] * 3  # nothing to shadow yet
    out = pd.read_parquet(scored[0]["output_uri"])
    assert len(out) == 31
    assert "weather" not in out
    assert {"date", "prediction", "proba_rain", "proba_fog", "model_version", "alias", "scoring_date"} <= set(
        out
    )

    set_paused(RETRAIN, False)
    summary = labels_arrive_and_the_champion_degrades(loop, dags, holdout_f1)
    again = check(dags, MONITOR_DAY + timedelta(days=1))  # same logical date and labels: same numbers
    for key in ("status", "labels", "live", "window", "degrade"):
        assert again[key] == summary[key], key
    later = check(dags, MONITOR_DAY + timedelta(days=120))  # windows count logical dates, not the clock
    assert (later["status"], later["window"]["batches"]) == ("insufficient_labels", 0)

    # the labelled live rows join the training data; the retrain runs as the scheduler starts it
    rows(loop.frame, (2015,), (1, 2, 3)).to_csv(loop.configs / "data" / "train" / "2015-q1.csv", index=False)
    run_id = scheduler_creates_run(RETRAIN, "asset_triggered")
    assert performance_queue() == []  # consumed by the run
    run = dag_test_existing_run(dags[RETRAIN], run_id)
    assert (run.run_id, str(run.run_type)) == (run_id, "asset_triggered")
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    trigger = return_value(run, "train_model")["trigger"]
    assert trigger["cause"] == "performance", trigger
    (event,) = trigger["drift_events"]  # the event that queued the run (the re-check's came later)
    assert (event["kind"], event["source_dag_id"]) == ("performance", MONITOR)
    assert (event["extra"]["status"], event["extra"]["labels"]) == ("degraded", 90)
    assert training_run(run).data.tags["mlops.trigger.cause"] == "performance"
    assert return_value(run, "promote_model")["decision"] == "promoted"
    assert champion() == "2"
    assert version_tags("2")["mlops.trigger.cause"] == "performance"


@pytest.mark.parametrize(
    ("champion_years", "challenger_years", "decision"),
    [
        pytest.param(RECENT, EARLY, "refused", id="better-on-holdout-worse-live"),
        pytest.param(EARLY, RECENT, "promoted", id="better-live"),
    ],
)
def test_a_shadow_challenger_is_promoted_only_when_better_on_live_rows(
    loop, champion_years, challenger_years, decision
):
    dags = loop.load({"promotion": {"mode": "shadow", "shadow_min_labels": 60}})
    loop.train_on(champion_years)
    retrain(dags)
    assert champion() == "1"  # the first model is promoted directly: there is no champion to shadow

    # the challenger wins on its own holdout (drawn from its training data) and waits in shadow
    loop.train_on(challenger_years)
    gate = return_value(retrain(dags), "promote_model")
    assert gate["decision"] == "shadow", gate["reason"]
    assert all(g["passed"] for g in gate["gates"]), gate["gates"]
    assert (champion(), champion("challenger")) == ("1", "2")

    scored = score_batches(dags)
    assert [(s["version"], s["shadow"]) for s in scored] == [("1", {"challenger": "2"})] * 3
    assert set(pd.read_parquet(scored[0]["shadow_output_uri"])["alias"]) == {"challenger"}

    loop.land_labels("q1", (1, 2, 3))
    summary = check(dags, MONITOR_DAY)
    live = {alias: entry["metrics"]["f1_macro"] for alias, entry in summary["aliases"].items()}
    assert summary["aliases"]["challenger"]["labels"] == 90
    assert champion("challenger") is None  # decided either way: no longer scored in shadow
    tags = version_tags("2")
    assert tags["mlops.gate.decision"] == decision
    assert tags["mlops.gate.decided_by"] == "live-performance"
    assert "90 labelled live rows" in tags["mlops.gate.reason"]
    (rule,) = json.loads(tags["mlops.gate.gates"])
    assert rule["metric"] == "f1_macro"
    assert rule["value"] == pytest.approx(live["challenger"] - live["champion"])  # on the same rows
    last = json.loads(model_tags()["mlops.last_decision"])
    assert (last["version"], last["decision"]) == ("2", decision)
    if decision == "refused":
        assert live["challenger"] < live["champion"] - 0.1, live
        assert summary["action"] == "refuse_challenger"
        assert champion() == "1"
    else:
        assert live["challenger"] > live["champion"] + 0.1, live
        assert summary["action"] == "promote"
        assert champion() == "2"
        moved = history()[-1]
        assert (moved["from"], moved["to"], moved["who"]) == ("1", "2", "live-performance")


def test_a_bad_champion_promoted_by_a_forced_retrain_is_rolled_back_once_labels_show_it(loop):
    lax = {"evaluation": {"thresholds": {"accuracy": {"min": 0.5}, "f1_macro": {"min": 0.2}}}}
    base = merged(lax, {"promotion": {"allow_forced": True}, "feedback": {"rollback": "auto"}})
    dags = loop.load(base)
    loop.train_on(RECENT)
    retrain(dags)
    assert champion() == "1"

    dags = loop.load(merged(base, {"training": {"params": CRIPPLED}}))  # same data, a crippled model
    run = dags[RETRAIN].test()
    refused = return_value(run, "promote_model")
    assert (task_states(run)["promote_model"], refused["decision"]) == ("failed", "refused")
    assert "vs_champion" in refused["reason"]
    run = retrain(dags, skip_vs_champion=True, force_reason="new estimator settings")
    assert return_value(run, "promote_model")["decision"] == "promoted"
    assert (champion(), champion("previous_champion")) == ("3", "1")

    scored = score_batches(dags)
    assert [(s["version"], s["shadow"]) for s in scored] == [("3", {"previous_champion": "1"})] * 3

    loop.land_labels("q1", (1, 2, 3))
    summary = check(dags, MONITOR_DAY)
    assert summary["action"] == "rollback", summary["reason"]
    assert summary["target_version"] == "1"
    assert "@previous_champion (version 1) beats it on the same 90 labelled rows" in summary["reason"]
    live = {alias: entry["metrics"]["f1_macro"] for alias, entry in summary["aliases"].items()}
    assert live["previous_champion"] > live["champion"] + 0.1, live
    assert summary["event"] is False  # the rollback answers it; no retrain is asked for
    assert champion() == "1"
    moved = history()[-1]
    assert (moved["action"], moved["from"], moved["to"], moved["who"]) == (
        "rollback",
        "3",
        "1",
        "live-performance",
    )
    last = json.loads(model_tags()["mlops.last_decision"])
    assert (last["version"], last["decision"], last["decided_by"]) == ("1", "rolled_back", "live-performance")


def test_a_nightly_retrain_is_recorded_with_cause_schedule(loop):
    """The retrain's cron run as the scheduler creates it: cause ``schedule``, run type ``scheduled``."""
    dags = loop.load()
    loop.train_on(EARLY)
    run = dags[MONITOR].test(logical_date=MONITOR_DAY)  # no champion yet: nothing to watch
    assert task_states(run) == {"check_performance": "skipped"}
    run = dag_test_existing_run(dags[RETRAIN], scheduler_creates_run(RETRAIN, "scheduled"))
    assert str(run.run_type) == "scheduled"
    trigger = return_value(run, "train_model")["trigger"]
    assert (trigger["cause"], trigger["run_type"]) == ("schedule", "scheduled"), trigger
    assert training_run(run).data.tags["mlops.trigger.cause"] == "schedule"
