"""Trigger Params can only make the generated retrain DAG's gate stricter: real dag.test() runs, real
MLflow on SQLite, real sklearn. A trigger conf goes around the form, so the tasks enforce the rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import import_dag_file
from vega_datasets import data as vega

from mlops_provider.hooks.mlflow import MLflowHook

ROOT = Path(__file__).resolve().parents[2]
MODEL = "weather_tp"
RETRAIN = f"{MODEL}_retrain"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def weather(months: tuple[int, ...]) -> pd.DataFrame:
    frame = vega.seattle_weather()
    dates = pd.to_datetime(frame["date"])
    frame["date"] = dates.dt.strftime("%Y-%m-%d")
    return frame[dates.dt.year.isin((2012, 2013)) & dates.dt.month.isin(months)]


@pytest.fixture
def retrain(dags_folder: Path, mlflow_store: Path):
    """Write the DAG file, data (configured, an allowed extra folder, a sibling, outside) and a loader."""
    configs = dags_folder / "configs"
    for folder in ("data/train", "data/extra", "data/train2"):
        (configs / folder).mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_dags.py", dags_folder / "mlops_dags.py")
    shutil.copy(ROOT / "dags" / "weather_kpis.py", dags_folder / "weather_kpis.py")  # its custom metric
    shutil.copy(ROOT / "dags" / "configs" / "seattle_weather" / "suite.json", configs / "suite.json")
    cold, warm = weather((10, 11, 12, 1, 2, 3, 4)), weather((5, 6, 7, 8, 9))
    cold.to_csv(configs / "data" / "train" / "cold.csv", index=False)
    pd.concat([cold, warm]).to_csv(configs / "data" / "extra" / "all.csv", index=False)
    cold.to_csv(configs / "data" / "train2" / "cold.csv", index=False)
    cold.to_csv(dags_folder / "outside.csv", index=False)

    def load(*, validation: bool = True, **sections: dict) -> object:
        cfg = yaml.safe_load((ROOT / "dags" / "configs" / "seattle_weather.yaml").read_text())
        cfg["model"]["name"] = MODEL
        cfg["data"].update(train="data/train/*.csv", current=None, allowed_training_prefixes=["data/extra"])
        cfg["validation"]["suite"] = "suite.json"
        if not validation:
            cfg.pop("validation")
        cfg["training"]["params"] = {"max_iter": 30}
        cfg["retries"] = 1  # a refusal must still fail at once: no retry
        for section, values in sections.items():
            cfg.setdefault(section, {}).update(values)
        (configs / f"{MODEL}.yaml").write_text(yaml.safe_dump(cfg))
        return import_dag_file(dags_folder / "mlops_dags.py")[RETRAIN]

    load.configs = configs  # type: ignore[attr-defined]
    return load


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def tries(run, task_id: str) -> int:
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == task_id]
    return ti.try_number


def xcom(run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=RETRAIN, run_id=run.run_id, task_id=task_id, key="return_value")
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def champion() -> str | None:
    with MLflowHook().session() as client:
        try:
            return str(client.get_model_version_by_alias(MODEL, "champion").version)
        except Exception:
            return None


def version_tags(version: str) -> dict[str, str]:
    with MLflowHook().session() as client:
        return dict(client.get_model_version(MODEL, version).tags)


def test_approval_auto_under_a_manual_config_is_refused(retrain, capfd):
    dag = retrain(promotion={"approval": "manual"})
    assert dag.params["approval"] == "manual"
    run = dag.test(run_conf={"approval": "auto"})
    got = states(run)
    assert got["promote_model"] == "failed", got
    assert tries(run, "promote_model") == 1  # failed without retry
    assert {got[t] for t in ("validate_data", "train_model", "register_model")} == {"success"}
    assert champion() is None
    assert "mlops.gate.decision" not in version_tags("1")
    out = capfd.readouterr()
    assert "Param 'approval'" in out.out + out.err
    assert "can only make the gate stricter" in out.out + out.err


def test_a_forced_retrain_needs_allow_forced_and_records_who_and_why(retrain, capfd):
    dag = retrain(evaluation={"vs_champion": {"f1_macro": {"min_delta": 0.5}}})
    assert set(states(dag.test()).values()) == {"success"}  # first run: the champion
    assert champion() == "1"

    forced = {"skip_vs_champion": True, "force_reason": "new sensor firmware"}
    run = dag.test(run_conf=forced)
    assert states(run)["promote_model"] == "failed"
    assert tries(run, "promote_model") == 1
    assert champion() == "1"
    out = capfd.readouterr()
    assert "Param 'skip_vs_champion'" in out.out + out.err
    assert "promotion.allow_forced: false" in out.out + out.err

    dag = retrain(
        evaluation={"vs_champion": {"f1_macro": {"min_delta": 0.5}}}, promotion={"allow_forced": True}
    )
    run = dag.test(run_conf=forced)
    assert states(run)["promote_model"] == "success", states(run)
    decision = xcom(run, "promote_model")
    assert (decision["decision"], decision["forced_by"], decision["force_reason"]) == (
        "promoted",
        "dag_test",  # dag.test()'s triggering user; a UI or REST trigger records the user's name
        "new sensor firmware",
    )
    assert champion() == "3"
    tags = version_tags("3")
    assert tags["mlops.gate.forced_by"] == "dag_test"
    assert tags["mlops.gate.force_reason"] == "new sensor firmware"
    assert tags["mlops.trigger.triggered_by"] == "dag_test"
    assert '"reason": "new sensor firmware"' in tags["mlops.trigger.forced"]


@pytest.mark.parametrize(
    "override",
    [
        "{dags}/outside.csv",  # any path
        "../outside.csv",  # relative escape from the config folder
        "data/extra/../../outside.csv",
        "file://{dags}/configs/data/extra/../train2/cold.csv",
        "data/extra2/all.csv",  # a sibling that shares the prefix's name
        "data/train2/cold.csv",
        "s3://some-bucket/any.csv",
    ],
)
def test_a_training_data_override_outside_the_prefixes_is_refused_before_any_read(retrain, override):
    dag = retrain()
    dags = retrain.configs.parent
    run = dag.test(run_conf={"training_data": override.format(dags=dags)})
    got = states(run)
    assert got["validate_data"] == "failed", got  # the override is refused before validation reads it
    assert tries(run, "validate_data") == 1
    assert {got[t] for t in ("train_model", "register_model", "promote_model")} == {"upstream_failed"}
    assert champion() is None


def test_without_validation_the_train_task_refuses_the_override(retrain, capfd):
    dag = retrain(validation=False)
    run = dag.test(run_conf={"training_data": str(retrain.configs.parent / "outside.csv")})
    got = states(run)
    assert got["train_model"] == "failed", got
    assert tries(run, "train_model") == 1
    out = capfd.readouterr()
    assert "Param 'training_data'" in out.out + out.err
    assert "data.allowed_training_prefixes" in out.out + out.err


def test_a_training_data_override_inside_a_prefix_trains_on_it(retrain):
    dag = retrain()
    run = dag.test(run_conf={"training_data": "data/extra/all.csv"})
    assert set(states(run).values()) == {"success"}, states(run)
    trained = xcom(run, "train_model")
    assert trained["training_data_uri"] == str(retrain.configs / "data" / "extra" / "all.csv")
    assert trained["n_train"] + trained["n_holdout"] > len(weather((10, 11, 12, 1, 2, 3, 4)))
    assert version_tags("1")["mlops.training_data_uri"].endswith("data/extra/all.csv")
