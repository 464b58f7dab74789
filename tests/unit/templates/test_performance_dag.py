"""With a ``feedback`` section the factory adds ``<name>_performance_monitor``, scores with ids,
probabilities and shadow versions, records each batch, and retrains on the performance Asset too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mlops_provider.templates.builder import build_dags

ROOT = Path(__file__).resolve().parents[3]
FEEDBACK = {
    "labels": "seattle_weather/data/labels/*.csv",
    "window_days": 14,
    "min_labels": 50,
    "degrade": {"f1_macro": {"max_drop": 0.05}},
    "rollback": "auto",
}


def write_config(folder: Path, change) -> Path:
    """A copy of dags/configs with the seattle config changed by ``change(config_dict)``."""
    shutil.copytree(ROOT / "dags" / "configs", folder)
    path = folder / "seattle_weather.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))
    return folder


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    def closed_loop(config: dict) -> None:
        config["scoring"] = {"id_column": "date"}
        config["feedback"] = dict(FEEDBACK)
        config["promotion"]["mode"] = "shadow"

    return write_config(tmp_path / "configs", closed_loop)


def test_five_dags_and_the_monitor_task(configs: Path) -> None:
    dags = {d.dag_id: d for d in build_dags(configs, only_dag_id=None)}
    assert set(dags) == {
        f"seattle_weather_{kind}"
        for kind in ("retrain", "drift_monitor", "batch_score", "rollback", "performance_monitor")
    }
    monitor = dags["seattle_weather_performance_monitor"]
    (task,) = monitor.tasks
    assert (task.labels_uri, task.id_column, task.label_column) == (
        str(configs / "seattle_weather/data/labels/*.csv"),
        "date",
        "weather",
    )
    assert (task.window_days, task.min_labels, task.rollback, task.mode) == (14, 50, "auto", "shadow")
    assert task.degrade == {"f1_macro": {"max_drop": 0.05}}
    assert [o.uri for o in task.outlets] == ["x-mlops://performance/seattle_weather"]
    score = dags["seattle_weather_batch_score"].get_task("score_batch")
    assert score.output_uri.startswith(task.predictions_prefix + "/")  # the monitor reads only there
    assert task.predictions_prefix.endswith("/.mlops/predictions/seattle_weather")
    assert "performance" in monitor.tags


def test_scoring_keeps_ids_and_scores_shadow_versions(configs: Path) -> None:
    dags = {d.dag_id: d for d in build_dags(configs, only_dag_id="seattle_weather_batch_score")}
    score = dags["seattle_weather_batch_score"].get_task("score_batch")
    assert score.id_columns == ["date"]
    assert (score.probabilities, score.record_batch) == (True, True)
    assert score.shadow_aliases == ["previous_champion", "challenger"]


def test_retrain_runs_on_drift_or_performance_and_promotes_in_shadow(configs: Path) -> None:
    dags = {d.dag_id: d for d in build_dags(configs, only_dag_id="seattle_weather_retrain")}
    retrain = dags["seattle_weather_retrain"]
    uris = {asset.uri for asset in retrain.timetable.asset_condition.objects}
    assert uris == {"x-mlops://drift/seattle_weather", "x-mlops://performance/seattle_weather"}
    assert retrain.get_task("promote_model").mode == "shadow"


def test_without_feedback_nothing_changes(tmp_path: Path) -> None:
    def open_loop(config: dict) -> None:
        config.pop("feedback", None)
        config.pop("scoring", None)

    dags = {d.dag_id: d for d in build_dags(write_config(tmp_path / "configs", open_loop), only_dag_id=None)}
    assert "seattle_weather_performance_monitor" not in dags
    score = dags["seattle_weather_batch_score"].get_task("score_batch")
    assert (score.shadow_aliases, score.record_batch, score.probabilities) == (None, False, False)


def test_the_monitor_dag_serializes(configs: Path) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    dags = {d.dag_id: d for d in build_dags(configs, only_dag_id="seattle_weather_performance_monitor")}
    restored = DagSerialization.from_dict(
        DagSerialization.to_dict(dags["seattle_weather_performance_monitor"])
    )
    assert [t.task_id for t in restored.tasks] == ["check_performance"]
