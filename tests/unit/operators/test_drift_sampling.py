"""Drift above ``max_rows``: each frame read as a deterministic sample, the decision on the samples (the same
as on all rows for clear drift and no drift), and every output saying so (XCom summary, drift_summary.json,
the report's banner, the monitoring record); ``min_rows`` against the true row counts; the champion's
training-data check never crying wolf on a sample. Real Evidently, real files, MLflow on SQLite."""

from __future__ import annotations

import inspect
import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException
from support import context

from mlops_provider.core import drift as core_drift
from mlops_provider.core import lineage
from mlops_provider.hooks.drift import SAMPLE_TAG, DriftCheck, DriftCheckHook
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.operators.drift import DriftCheckOperator
from mlops_provider.sensors.drift import DriftSensor

ROWS = 3000
LIMIT = 1500  # above the 1,000 rows where "auto" switches methods: both sides use the distances


def batch(shift: float, seed: int, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, rows),
            "y": rng.lognormal(shift, 0.5, rows),
            "c": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2] if shift == 0 else [0.2, 0.3, 0.5]),
        }
    )


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: Path) -> Path:
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    folder = tmp_path / "data"
    folder.mkdir()
    batch(0.0, 1).to_parquet(folder / "ref.parquet")
    batch(1.0, 2).to_csv(folder / "drifted.csv", index=False)
    batch(0.0, 3).to_csv(folder / "calm.csv", index=False)
    batch(0.0, 4, rows=250).to_csv(folder / "small.csv", index=False)
    return folder


def check(folder: Path, current: str, run_id: str = "manual__1", **kwargs) -> dict:
    arguments = {
        "task_id": "check",
        "model_name": "m",
        "current_uri": current,
        "reference_uri": "ref.parquet",
        "columns": ["x", "y", "c"],
        "base_dir": str(folder),
        "emit_asset": False,
        **kwargs,
    }
    ctx = context(task_id="check", run_id=run_id)
    ctx["outlet_events"] = defaultdict(SimpleNamespace)
    summary: dict = DriftCheckOperator(**arguments).execute(ctx)
    return summary


def test_the_default_limit_is_core_s_on_the_operator_and_the_sensor() -> None:
    for cls in (DriftCheckOperator, DriftSensor):
        assert inspect.signature(cls.__init__).parameters["max_rows"].default == core_drift.DEFAULT_MAX_ROWS
    assert core_drift.DEFAULT_MAX_ROWS == 1_000_000
    sensor = DriftSensor(task_id="w", model_name="m", current_uri="b.csv", max_rows=5000)
    assert sensor.drift_check().max_rows == 5000


@pytest.mark.parametrize(("current", "status"), [("drifted.csv", "drift"), ("calm.csv", "no_drift")])
def test_a_sampled_check_decides_as_the_full_one_and_says_so(data: Path, current: str, status: str) -> None:
    full = check(data, current, "manual__full", max_rows=None)
    sampled = check(data, current, "manual__sampled", max_rows=LIMIT)
    assert full["status"] == sampled["status"] == status
    assert full["drifted_columns"] == sampled["drifted_columns"]
    assert full["sample"] is None
    assert sampled["sample"] == {
        "reference": {"rows": LIMIT, "of": ROWS},
        "current": {"rows": LIMIT, "of": ROWS},
        "seed": 0,
    }
    assert (sampled["n_reference"], sampled["n_current"]) == (ROWS, ROWS)  # the true counts
    assert sampled["numeric_method"] == full["numeric_method"] == "wasserstein"
    assert json.loads(json.dumps(sampled)) == sampled  # XCom: small JSON
    saved = json.loads(Path(sampled["summary_uri"]).read_text())
    assert saved["sample"] == sampled["sample"]
    assert all(c["n_reference"] == LIMIT for c in saved["columns"])  # each column scored on the sample
    html = Path(sampled["report_uri"]).read_text()
    note = f"computed on a deterministic sample (seed 0) of {LIMIT} of {ROWS} reference rows"
    assert note in html
    assert note in sampled["report_sample"]
    assert "deterministic sample" not in Path(full["report_uri"]).read_text()
    with MLflowHook().session() as client:
        tags = client.get_run(sampled["monitoring_run_id"]).data.tags
        assert json.loads(tags[SAMPLE_TAG]) == sampled["sample"]
        assert json.loads(client.get_run(full["monitoring_run_id"]).data.tags[SAMPLE_TAG]) is None


def test_the_same_data_gives_the_same_sample_and_scores(data: Path) -> None:
    first = check(data, "drifted.csv", "manual__1", max_rows=LIMIT)
    second = check(data, "drifted.csv", "manual__2", max_rows=LIMIT)
    assert first["columns"] == second["columns"]


def test_min_rows_is_checked_against_the_true_row_count(data: Path) -> None:
    """250 current rows sampled to 200: the check is judged (min_rows 200), not insufficient_data."""
    summary = check(data, "small.csv", max_rows=200, min_rows=200)
    assert summary["status"] in ("drift", "no_drift")
    assert summary["n_current"] == 250
    assert summary["sample"]["current"] == {"rows": 200, "of": 250}


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "lots", 10**10])
def test_a_bad_limit_fails_without_retry_naming_it(data: Path, value: object) -> None:
    with pytest.raises(AirflowFailException, match="max_rows must be a whole number"):
        check(data, "calm.csv", max_rows=value)


def test_a_limit_below_min_rows_fails_naming_both(data: Path) -> None:
    with pytest.raises(AirflowFailException, match=r"max_rows \(150\) must be at least min_rows \(200\)"):
        check(data, "calm.csv", max_rows=150)


# -- the champion's training data, when a sample was read -------------------------------------------
def champion(folder: Path, **tags: str) -> None:
    with MLflowHook().session() as client:
        client.create_registered_model("watched")
        version = client.create_model_version(
            "watched",
            source="file:///nowhere/model",
            tags={
                lineage.TRAINING_DATA_URI: "ref.parquet",
                lineage.FEATURES: json.dumps(["x", "y", "c"]),
                lineage.TRAINING_DATA_FINGERPRINT: "sha256:of-the-rows-trained-on",
                **tags,
            },
        )
        client.set_registered_model_alias("watched", "champion", version.version)


def changed(folder: Path, max_rows: int | None) -> object:
    summary, _ = DriftCheckHook(base_dir=str(folder)).run(
        DriftCheck(model_name="watched", current_uri="calm.csv", max_rows=max_rows),
        str(folder / "reports"),
    )
    return summary["reference_changed_since_training"]


def test_a_sampled_reference_is_not_called_changed_when_its_row_count_is_the_same(data: Path) -> None:
    champion(data, **{lineage.TRAINING_DATA_ROWS: str(ROWS)})
    assert changed(data, LIMIT) is None  # a sample's fingerprint says nothing: not verified
    assert changed(data, None) is True  # read whole: the fingerprints differ, nothing was sampled


def test_a_sampled_reference_whose_row_count_changed_is_called_changed(data: Path) -> None:
    champion(data, **{lineage.TRAINING_DATA_ROWS: "2500"})
    assert changed(data, LIMIT) is True


def test_a_champion_trained_on_a_sample_is_not_called_changed_when_read_whole(data: Path) -> None:
    champion(
        data,
        **{
            lineage.TRAINING_DATA_ROWS: "1000",
            lineage.TRAINING_ROWS_TOTAL: str(ROWS),
            lineage.TRAINING_SAMPLE_ROWS: "1000",
            lineage.TRAINING_SAMPLE_SEED: "42",
        },
    )
    assert changed(data, None) is None
