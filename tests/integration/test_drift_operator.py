"""DriftCheckOperator under Airflow's dag.test(): asset event only on confirmed drift, report and link.

dag.test() in Airflow 3.3 syncs the DAG bundle ("dags-folder", i.e. ``settings.DAGS_FOLDER``) to the DB
and looks the DAG up there, so the DAG must come from a file inside the DAGs folder. The fixture below
writes the DAG file into tmp_path and points both ``AIRFLOW__CORE__DAGS_FOLDER`` and
``airflow.settings.DAGS_FOLDER`` (read once at import) at it; the test imports that file and calls
``dag.test()`` on the DAG it defines. Only this file is parsed, not the project's dags/.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from vega_datasets import data as vega

from mlops_provider.core import lineage

FEATURES = ["precipitation", "temp_max", "temp_min", "wind", "weather"]

DAG_FILE = """
from __future__ import annotations

import datetime

from airflow.sdk import DAG

from mlops_provider.operators.drift import DriftCheckOperator
from mlops_provider.sensors.drift import DriftSensor

with DAG(dag_id="drift_asset_events", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    # reference = the champion's training data, found through its lineage tags in MLflow
    DriftCheckOperator(
        task_id="winter_vs_champion",
        model_name="weather_drifting",
        current_uri="winter.csv",
        base_dir={base_dir!r},
        reports_uri={reports!r},
    )
    DriftCheckOperator(
        task_id="calm",
        model_name="weather_calm",
        reference_uri="half_a.csv",
        current_uri="half_b.csv",
        columns=["temp_max", "temp_min", "wind", "weather"],
        drift_share=0.5,
        base_dir={base_dir!r},
        reports_uri={reports!r},
    )
    DriftCheckOperator(
        task_id="too_few_rows",
        model_name="weather_small",
        reference_uri="summer.csv",
        current_uri="winter_head.csv",
        base_dir={base_dir!r},
        reports_uri={reports!r},
    )
    DriftSensor(
        task_id="sensor_poke",
        model_name="weather_drifting",
        current_uri="winter.csv",
        base_dir={base_dir!r},
        reports_uri={reports!r},
        poke_interval=1,
        timeout=30,
    )
    # no drift on this data: defers to DriftTrigger until the data changes; it never does -> timeout
    DriftSensor(
        task_id="sensor_deferred",
        model_name="weather_calm",
        reference_uri="half_a.csv",
        current_uri="half_b.csv",
        columns=["temp_max", "temp_min", "wind", "weather"],
        drift_share=0.5,
        base_dir={base_dir!r},
        reports_uri={reports!r},
        deferrable=True,
        poke_interval=0.2,
        timeout=2,
    )
    DriftCheckOperator(
        task_id="no_champion",
        model_name="weather_unknown",
        current_uri="winter.csv",
        base_dir={base_dir!r},
        reports_uri={reports!r},
    )
"""


@pytest.fixture
def dags_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Path:
    """A private DAGs folder holding only the test's DAG file (see the module docstring)."""
    import airflow.settings

    folder = tmp_path / "dags"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(folder))
    return folder


def _register_champion(training_uri: str) -> str:
    """A model version as engineer L's RegisterModelOperator leaves it: the training-data URI on the
    version, features and target on the source run (the operator falls back to the run's tags)."""
    from mlops_provider.hooks.mlflow import MLflowHook

    hook = MLflowHook()
    with hook.session() as client:
        experiment = hook.ensure_experiment("weather_drifting")
        run = client.create_run(
            experiment,
            tags={lineage.FEATURES: json.dumps(FEATURES), lineage.TARGET: "weather"},
        )
        client.set_terminated(run.info.run_id)
        client.create_registered_model("weather_drifting")
        version = client.create_model_version(
            "weather_drifting",
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags={lineage.TRAINING_DATA_URI: training_uri},
        )
        client.set_registered_model_alias("weather_drifting", "champion", version.version)
        return str(version.version)


def _asset_events(uri: str, run_id: str) -> list:
    """Events on the asset from this DAG run (the metadata DB outlives one test run)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri, AssetEvent.source_run_id == run_id)
        )
        return [(event.extra, event.source_task_id) for event in rows]


def test_asset_event_only_when_drift_is_confirmed(dags_folder: Path, mlflow_store: Path, tmp_path: Path):
    weather = vega.seattle_weather()
    month = pd.to_datetime(weather["date"]).dt.month
    base = tmp_path / "data"
    base.mkdir()
    summer = weather[month.isin([6, 7, 8])]
    winter = weather[month.isin([12, 1, 2])]
    summer.to_csv(base / "summer.csv", index=False)
    winter.to_csv(base / "winter.csv", index=False)
    winter.head(120).to_csv(base / "winter_head.csv", index=False)
    shuffled = weather.sample(frac=1.0, random_state=7)
    shuffled.iloc[:730].to_csv(base / "half_a.csv", index=False)
    shuffled.iloc[730:].to_csv(base / "half_b.csv", index=False)
    champion_version = _register_champion(str(base / "summer.csv"))

    reports = tmp_path / "reports"
    dag_file = dags_folder / "drift_asset_events.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE).format(base_dir=str(base), reports=str(reports)))
    spec = importlib.util.spec_from_file_location("drift_asset_events", dag_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    run = module.dag.test()

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {
        "winter_vs_champion": "success",
        "calm": "success",
        "too_few_rows": "success",
        "no_champion": "skipped",
        "sensor_poke": "success",
        "sensor_deferred": "failed",
    }
    sensed = run.get_task_instance("sensor_poke").xcom_pull(task_ids="sensor_poke")
    assert sensed["status"] == "drift"
    assert sensed["champion_version"] == champion_version
    drifting = run.get_task_instance("winter_vs_champion").xcom_pull(task_ids="winter_vs_champion")
    assert drifting["status"] == "drift"
    assert drifting["champion_version"] == champion_version
    assert drifting["reference_uri"] == str(base / "summer.csv")
    assert set(drifting["columns"]) == set(FEATURES)  # the champion's features, not `date`
    assert Path(drifting["report_uri"]).is_file()
    assert Path(drifting["summary_uri"]).is_file()
    assert "Drift decision for weather_drifting: drift" in Path(drifting["report_uri"]).read_text()
    assert str(reports / "drift_asset_events") in drifting["report_uri"]
    calm = run.get_task_instance("calm").xcom_pull(task_ids="calm")
    assert calm["status"] == "no_drift"
    assert calm["champion_version"] is None
    small = run.get_task_instance("too_few_rows").xcom_pull(task_ids="too_few_rows")
    assert small["status"] == "insufficient_data"

    events = _asset_events("x-mlops://drift/weather_drifting", run.run_id)
    assert len(events) == 1
    extra, source_task = events[0]
    assert source_task == "winter_vs_champion"
    assert extra["status"] == "drift"
    assert extra["champion_version"] == champion_version
    assert extra["current_uri"] == str(base / "winter.csv")
    assert _asset_events("x-mlops://drift/weather_calm", run.run_id) == []
    assert _asset_events("x-mlops://drift/weather_small", run.run_id) == []
    assert _asset_events("x-mlops://drift/weather_unknown", run.run_id) == []
