"""The generated DAGs on real data, through dag.test(): one YAML -> retrain, drift monitor, batch score.

Seattle weather (vega_datasets): the cold months train the first model; a summer batch drifts.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from support import import_dag_file, return_value
from vega_datasets import data as vega

from mlops_provider.assets import drift_asset
from mlops_provider.hooks.mlflow import MLflowHook

ROOT = Path(__file__).resolve().parents[2]
MODEL = "weather_t"
BATCH_DAY = datetime(2014, 8, 31, tzinfo=UTC)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def weather() -> pd.DataFrame:
    frame = vega.seattle_weather()
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
    return frame


def months(frame: pd.DataFrame, years: tuple[int, ...], months: tuple[int, ...]) -> pd.DataFrame:
    dates = pd.to_datetime(frame["date"])
    return frame[dates.dt.year.isin(years) & dates.dt.month.isin(months)]


def config(sections: dict | None = None, **evaluation: object) -> dict:
    text = (ROOT / "dags" / "configs" / "seattle_weather.yaml").read_text()
    cfg = yaml.safe_load(text)
    cfg["model"]["name"] = MODEL
    cfg["data"]["train"] = "data/train/*.csv"
    cfg["data"]["current"] = "data/batches/{{ ds }}.csv"
    cfg["validation"]["suite"] = "suite.json"
    cfg["training"]["params"] = {"max_iter": 50}
    cfg["retries"] = 0
    cfg["evaluation"].update(evaluation)
    for section, values in (sections or {}).items():
        cfg.setdefault(section, {}).update(values)
    return cfg


@pytest.fixture
def model_dags(dags_folder: Path, mlflow_store: Path):
    """Write the DAG file, a config, its suite and the cold-month training data; return a loader."""
    configs = dags_folder / "configs"
    (configs / "data" / "train").mkdir(parents=True)
    (configs / "data" / "batches").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_dags.py", dags_folder / "mlops_dags.py")
    shutil.copy(ROOT / "dags" / "weather_kpis.py", dags_folder / "weather_kpis.py")  # its custom metric
    shutil.copy(ROOT / "dags" / "configs" / "seattle_weather" / "suite.json", configs / "suite.json")
    frame = weather()
    months(frame, (2012, 2013), (10, 11, 12, 1, 2, 3, 4)).to_csv(
        configs / "data" / "train" / "cold.csv", index=False
    )
    months(frame, (2014,), (6, 7, 8)).to_csv(configs / "data" / "batches" / "2014-08-31.csv", index=False)

    def load(sections: dict | None = None, **evaluation: object) -> dict:
        (configs / f"{MODEL}.yaml").write_text(yaml.safe_dump(config(sections, **evaluation)))
        dags = import_dag_file(dags_folder / "mlops_dags.py")
        assert {f"{MODEL}_retrain", f"{MODEL}_drift_monitor", f"{MODEL}_batch_score"} <= set(dags)
        return dags

    load.configs = configs  # type: ignore[attr-defined]
    return load


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def xcom(run, task_id: str):
    return return_value(run, task_id)


def champion() -> str | None:
    with MLflowHook().session() as client:
        try:
            return str(client.get_model_version_by_alias(MODEL, "champion").version)
        except Exception:
            return None


def test_retrain_runs_the_loop_and_batch_score_uses_the_champion(model_dags):
    dags = model_dags()
    retrain = dags[f"{MODEL}_retrain"]
    assert retrain.max_active_runs == 1
    assert "model:" + MODEL in retrain.tags
    assert retrain.params["approval"] == "auto"

    score = dags[f"{MODEL}_batch_score"].test(logical_date=BATCH_DAY)
    assert states(score)["score_batch"] == "skipped"  # no champion yet

    run = retrain.test()
    assert set(states(run).values()) == {"success"}, states(run)
    assert xcom(run, "train_model")["trigger"]["cause"] == "manual"
    assert xcom(run, "promote_model")["decision"] == "promoted"
    assert champion() == "1"
    with MLflowHook().session() as client:
        tags = client.get_model_version(MODEL, "1").tags
    assert tags["mlops.validation_result"] == "passed"
    assert tags["mlops.trigger.cause"] == "manual"
    assert tags["mlops.dag_id"] == f"{MODEL}_retrain"
    assert tags["mlops.training_data_fingerprint"].startswith("sha256:")

    score = dags[f"{MODEL}_batch_score"].test(logical_date=BATCH_DAY)
    assert states(score) == {"validate_current": "success", "score_batch": "success"}
    scored = xcom(score, "score_batch")
    assert scored["version"] in ("1", 1)
    out = pd.read_parquet(scored["output_uri"])
    assert len(out) == 92
    assert set(out["model_version"].astype(str)) == {"1"}


def test_drift_event_queues_the_retrain_dag(model_dags):
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session

    dags = model_dags()
    assert retrain_schedule_mentions_asset(dags[f"{MODEL}_retrain"])
    assert set(states(dags[f"{MODEL}_retrain"].test()).values()) == {"success"}
    from airflow.models.dag import DagModel

    with create_session() as session:  # the scheduler queues asset-triggered runs for active DAGs only
        session.query(DagModel).filter_by(dag_id=f"{MODEL}_retrain").update({"is_paused": False})
        session.query(AssetDagRunQueue).filter_by(target_dag_id=f"{MODEL}_retrain").delete()
    run = dags[f"{MODEL}_drift_monitor"].test(logical_date=BATCH_DAY)
    assert states(run) == {"validate_current": "success", "check_drift": "success"}
    summary = xcom(run, "check_drift")
    assert summary["status"] == "drift"
    assert summary["reference_changed_since_training"] is False
    with create_session() as session:
        asset = session.query(AssetModel).filter_by(uri=drift_asset(MODEL).uri).one()
        queued = session.query(AssetDagRunQueue).filter_by(asset_id=asset.id).all()
        assert [q.target_dag_id for q in queued] == [f"{MODEL}_retrain"]
        session.query(DagModel).filter_by(dag_id=f"{MODEL}_retrain").update({"is_paused": True})

    # labels landing in the training folder change what the champion's lineage URI reads: said, not hidden
    shutil.copy(
        model_dags.configs / "data" / "batches" / "2014-08-31.csv",
        model_dags.configs / "data" / "train" / "summer.csv",
    )
    run = dags[f"{MODEL}_drift_monitor"].test(logical_date=BATCH_DAY)
    assert xcom(run, "check_drift")["reference_changed_since_training"] is True


def retrain_schedule_mentions_asset(dag) -> bool:
    from airflow.sdk import AssetOrTimeSchedule

    timetable = dag.timetable
    return isinstance(timetable, AssetOrTimeSchedule) and drift_asset(MODEL).name in repr(
        timetable.asset_condition
    )


def test_refused_gate_keeps_the_champion_and_a_forced_retrain_skips_the_comparison(model_dags):
    dags = model_dags()
    assert set(states(dags[f"{MODEL}_retrain"].test()).values()) == {"success"}
    assert champion() == "1"

    shutil.copy(
        model_dags.configs / "data" / "batches" / "2014-08-31.csv",
        model_dags.configs / "data" / "train" / "summer.csv",
    )
    dags = model_dags({"promotion": {"allow_forced": True}}, vs_champion={"f1_macro": {"min_delta": 0.5}})
    run = dags[f"{MODEL}_retrain"].test()
    assert states(run)["promote_model"] == "failed"
    decision = xcom(run, "promote_model")
    assert decision["decision"] == "refused"
    assert "vs_champion" in decision["reason"]
    assert champion() == "1"

    run = dags[f"{MODEL}_retrain"].test(run_conf={"skip_vs_champion": True, "force_reason": "new sensor"})
    assert states(run)["promote_model"] == "success", states(run)
    assert xcom(run, "promote_model")["decision"] == "promoted"
    trigger = xcom(run, "train_model")["trigger"]
    assert trigger["forced"] == {"skip_vs_champion": True, "reason": "new sensor", "by": "dag_test"}
    assert xcom(run, "promote_model")["forced_by"] == "dag_test"  # dag.test()'s triggering user
    assert champion() == "3"


def test_validation_failure_stops_the_loop_and_keeps_the_champion(model_dags):
    dags = model_dags()
    assert set(states(dags[f"{MODEL}_retrain"].test()).values()) == {"success"}
    bad = months(weather(), (2015,), (1,)).copy()
    bad.loc[bad.index[:5], "weather"] = "hail"
    bad.to_csv(model_dags.configs / "data" / "train" / "bad.csv", index=False)
    run = dags[f"{MODEL}_retrain"].test()
    got = states(run)
    assert got["validate_data"] == "failed"
    assert {got[t] for t in ("train_model", "evaluate_model", "register_model", "promote_model")} == {
        "upstream_failed"
    }
    failed = xcom(run, "validate_data")["failed_expectations"]
    assert any(f["column"] == "weather" and "hail" in f["unexpected_values"] for f in failed)
    assert champion() == "1"


def test_templates_render_for_runs_without_a_logical_date(model_dags):
    dags = model_dags()
    check = dags[f"{MODEL}_drift_monitor"].get_task("check_drift")
    env = dags[f"{MODEL}_drift_monitor"].get_template_env()
    ui_run = {
        "dag_run": SimpleNamespace(run_after=datetime(2014, 8, 31, 9, tzinfo=UTC)),
        "logical_date": None,
    }
    assert env.from_string(check.current_uri).render(**ui_run).endswith("data/batches/2014-08-31.csv")
    scheduled = {"ds": "2014-07-01", "logical_date": datetime(2014, 7, 1, tzinfo=UTC)}
    assert env.from_string(check.current_uri).render(**scheduled).endswith("data/batches/2014-07-01.csv")
    dags = model_dags({"data": {"allowed_training_prefixes": ["s3://b/weather", "data"]}})
    train = dags[f"{MODEL}_retrain"].get_task("train_model")
    retrain_env = dags[f"{MODEL}_retrain"].get_template_env()
    override = retrain_env.from_string(train.data_uri).render(
        params={"training_data": "s3://b/weather/x.csv"}
    )
    assert override == "s3://b/weather/x.csv"
    default = retrain_env.from_string(train.data_uri).render(params={"training_data": None})
    assert default.endswith("data/train/*.csv")
    from mlops_provider.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="Param 'training_data'"):
        retrain_env.from_string(train.data_uri).render(params={"training_data": "s3://b/x.csv"})
