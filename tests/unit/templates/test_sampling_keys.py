"""The row limits and the training pool in the config: ``drift.max_rows``, ``training.max_rows``,
``training.over_max_rows``, ``training.pool``, ``training.pool_slots``: hostile values refused naming the key,
and what the factory passes to the tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_provider.core.drift import DEFAULT_MAX_ROWS
from mlops_provider.templates.builder import build_dags
from mlops_provider.templates.loader import load_configs


def config(training: dict[str, Any] | None = None, drift: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": {"name": "wine", "task": "classification"},
        "data": {"train": "data/train.csv", "current": "data/batch.csv", "target": "target"},
        "training": {"estimator": "sklearn.linear_model.LogisticRegression", **(training or {})},
        "evaluation": {"primary_metric": "f1_macro"},
    }
    if drift is not None:
        cfg["drift"] = drift
    return cfg


def write(folder: Path, cfg: dict[str, Any]) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "train.csv").write_text("a,target\n1,0\n")
    path = folder / "wine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def problems(folder: Path) -> list[str]:
    return [f"{p.key}: {p.message}" for item in load_configs(folder) for p in item.problems]


HOSTILE_COUNTS = [-1, 0, True, "1000", 1.5, 10**12, [5], {"rows": 5}]


@pytest.mark.parametrize("value", HOSTILE_COUNTS)
@pytest.mark.parametrize("key", ["drift.max_rows", "training.max_rows", "training.pool_slots"])
def test_hostile_counts_are_refused_naming_the_key(tmp_path: Path, key: str, value: Any) -> None:
    section, name = key.split(".")
    if key == "training.pool_slots" and value == 10**12:
        value = 10**5  # more slots than any pool
    write(tmp_path, config(**{section: {name: value}}))
    found = problems(tmp_path)
    assert found, value
    assert all(p.startswith(f"{key}:") for p in found), found


@pytest.mark.parametrize(
    "value", ["", "has space", "quote'd", "x" * 300, "-leading", "a/b", 5, True, ["training"]]
)
def test_hostile_pool_names_are_refused_naming_the_key(tmp_path: Path, value: Any) -> None:
    write(tmp_path, config(training={"pool": value}))
    found = problems(tmp_path)
    assert found, value
    assert all(p.startswith("training.pool:") for p in found), found


@pytest.mark.parametrize("value", ["sometimes", "", True, None])
def test_over_max_rows_is_fail_or_sample(tmp_path: Path, value: Any) -> None:
    write(tmp_path, config(training={"max_rows": 10, "over_max_rows": value}))
    found = problems(tmp_path)
    assert found
    assert all(p.startswith("training.over_max_rows:") for p in found), found


def test_limits_that_contradict_other_keys_are_refused_naming_the_key(tmp_path: Path) -> None:
    write(tmp_path, config(drift={"min_rows": 500, "max_rows": 400}))
    assert problems(tmp_path) == [
        "drift.max_rows: 400 is below drift.min_rows (500): a sample that small is never judged"
    ]
    write(tmp_path, config(training={"over_max_rows": "sample"}))
    assert problems(tmp_path) == [
        "training.over_max_rows: 'sample' needs training.max_rows (the sample's size)"
    ]


def test_defaults_and_null(tmp_path: Path) -> None:
    write(tmp_path, config(drift={"max_rows": None}))
    (item,) = load_configs(tmp_path)
    assert item.ok, item.problems
    assert item.config is not None
    assert item.config.drift.max_rows is None
    training = item.config.training
    assert (training.max_rows, training.over_max_rows, training.pool, training.pool_slots) == (
        None,
        "fail",
        None,
        1,
    )
    write(tmp_path, config())
    (item,) = load_configs(tmp_path)
    assert item.config is not None
    assert item.config.drift.max_rows == DEFAULT_MAX_ROWS


def tasks(folder: Path) -> dict[str, Any]:
    dags = {d.dag_id: d for d in build_dags(folder, strict=True, only_dag_id=None)}
    return {
        "train": dags["wine_retrain"].get_task("train_model"),
        "evaluate": dags["wine_retrain"].get_task("evaluate_model"),
        "drift": dags["wine_drift_monitor"].get_task("check_drift"),
    }


def test_the_factory_passes_limits_and_the_pool_to_the_train_task(tmp_path: Path) -> None:
    training = {
        "max_rows": 50_000,
        "over_max_rows": "sample",
        "pool": "training",
        "pool_slots": 2,
        "queue": "gpu",
    }
    write(tmp_path, config(training=training, drift={"max_rows": 200_000}))
    found = tasks(tmp_path)
    train = found["train"]
    assert (train.max_rows, train.over_max_rows) == (50_000, "sample")
    assert (train.pool, train.pool_slots, train.queue) == ("training", 2, "gpu")
    assert found["drift"].max_rows == 200_000
    assert found["evaluate"].pool == "default_pool"  # only training is bounded by the pool


def test_without_a_pool_the_train_task_keeps_airflow_s_defaults(tmp_path: Path) -> None:
    write(tmp_path, config())
    found = tasks(tmp_path)
    train = found["train"]
    assert (train.pool, train.pool_slots) == ("default_pool", 1)
    assert (train.max_rows, train.over_max_rows) == (None, "fail")
    assert found["drift"].max_rows == DEFAULT_MAX_ROWS
