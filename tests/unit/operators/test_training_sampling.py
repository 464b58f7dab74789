"""TrainModelOperator with ``max_rows``: above the limit it fails (no retry, naming the URI, the row count
and the limit) or trains on a deterministic sample recorded in the lineage tags of the run and the
version; a retry reuses the run; a drift check against a champion trained on a sample does not cry wolf.
Real scikit-learn, MLflow on SQLite, the breast-cancer data (569 rows)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.core import lineage
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.drift import DriftCheck, DriftCheckHook
from mlops_provider.hooks.models import MLflowModelHook
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.training import TrainModelOperator

ROWS = 569
SAMPLE_TAGS = (lineage.TRAINING_ROWS_TOTAL, lineage.TRAINING_SAMPLE_ROWS, lineage.TRAINING_SAMPLE_SEED)


def operator(folder: Path, **kwargs) -> TrainModelOperator:
    options = {
        "task_id": "train",
        "model_name": "cancer",
        "data_uri": "cancer.csv",
        "target": "target",
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "estimator_params": {"max_depth": 2},
        "base_dir": str(folder),
        "config_hash": "sha256:abc",
        **kwargs,
    }
    return TrainModelOperator(**options)


def run_tags(run_id: str) -> dict[str, str]:
    return MLflowModelHook().get_run(run_id).data.tags


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("sampled")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
        mp.setenv("MLOPS_HOME", str(tmp))
        mp.setenv("MLOPS_REPORTS_URI", str(tmp / "reports"))
        cancer_csv(tmp)
        op = operator(tmp, max_rows=300, over_max_rows="sample", random_state=7)
        result = op.execute(context("train", run_id="scheduled__1"))
        yield SimpleNamespace(tmp=tmp, result=result)


def test_over_the_limit_fails_without_retry_naming_uri_rows_and_limit(
    mlflow_store: Path, tmp_path: Path
) -> None:
    data = cancer_csv(tmp_path)
    with pytest.raises(AirflowFailException) as raised:
        operator(tmp_path, max_rows=300).execute(context())  # over_max_rows defaults to "fail"
    message = str(raised.value)
    assert str(data) in message
    assert f"{ROWS} rows" in message
    assert "300" in message
    assert "training.max_rows" in message
    assert "over_max_rows" in message
    with MLflowModelHook().session() as client:
        assert client.get_experiment_by_name("cancer") is None  # refused before any run


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"max_rows": 0}, "max_rows"),
        ({"max_rows": -3}, "max_rows"),
        ({"max_rows": True}, "max_rows"),
        ({"max_rows": "lots"}, "max_rows"),
        ({"max_rows": 10**12}, "max_rows"),
        ({"max_rows": 300, "over_max_rows": "skip"}, "over_max_rows"),
        ({"max_rows": 300, "over_max_rows": None}, "over_max_rows"),
    ],
)
def test_bad_limits_fail_without_retry_naming_the_argument(mlflow_store, tmp_path, kwargs, argument) -> None:
    cancer_csv(tmp_path)
    with pytest.raises(AirflowFailException, match=argument):
        operator(tmp_path, **kwargs).execute(context())


def test_the_sample_is_trained_on_and_reported(sampled: SimpleNamespace) -> None:
    result = sampled.result
    assert result["n_train"] + result["n_holdout"] == 300
    assert result["sample"] == {"rows": 300, "of": ROWS, "seed": 7}
    assert result["training_rows_total"] == ROWS
    frame, _ = DataHook(base_dir=str(sampled.tmp)).read_sample("cancer.csv", 300, seed=7)
    assert result["training_data_fingerprint"] == DataHook.fingerprint(frame)  # of the rows trained on
    whole = DataHook(base_dir=str(sampled.tmp)).read_frame("cancer.csv")
    assert result["training_data_fingerprint"] != DataHook.fingerprint(whole)
    holdout = MLflowModelHook().load_holdout(result["run_id"])
    assert len(holdout) == result["n_holdout"]


def test_the_sample_is_in_the_run_s_lineage_tags_and_the_version_s(sampled: SimpleNamespace) -> None:
    tags = run_tags(sampled.result["run_id"])
    assert [tags[k] for k in SAMPLE_TAGS] == [str(ROWS), "300", "7"]
    assert tags[lineage.TRAINING_DATA_ROWS] == "300"
    assert tags[lineage.TRAINING_DATA_FINGERPRINT] == sampled.result["training_data_fingerprint"]
    version, _ = MLflowRegistryHook().register_run("cancer", sampled.result["run_id"], {})
    version_tags = MLflowRegistryHook().model_version("cancer", version).tags
    assert [version_tags[k] for k in SAMPLE_TAGS] == [str(ROWS), "300", "7"]


def test_a_retry_reuses_the_sampled_run(sampled: SimpleNamespace) -> None:
    op = operator(sampled.tmp, max_rows="300", over_max_rows="sample", random_state=7)  # a rendered template
    again = op.execute(context("train", run_id="scheduled__1", try_number=2))
    assert again["run_id"] == sampled.result["run_id"]
    assert again["training_data_fingerprint"] == sampled.result["training_data_fingerprint"]


def test_another_seed_is_another_sample_and_another_run(sampled: SimpleNamespace) -> None:
    op = operator(sampled.tmp, max_rows=300, over_max_rows="sample", random_state=8)
    other = op.execute(context("train", run_id="scheduled__1", try_number=3))
    assert other["training_data_fingerprint"] != sampled.result["training_data_fingerprint"]
    assert other["run_id"] != sampled.result["run_id"]


def test_at_the_limit_nothing_is_sampled_and_nothing_changes(sampled: SimpleNamespace) -> None:
    result = operator(sampled.tmp, max_rows=ROWS, over_max_rows="sample").execute(
        context("train", run_id="r2")
    )
    whole = DataHook(base_dir=str(sampled.tmp)).read_frame("cancer.csv")
    assert result["sample"] is None
    assert result["training_rows_total"] == ROWS
    assert result["training_data_fingerprint"] == DataHook.fingerprint(whole)
    tags = run_tags(result["run_id"])
    assert not set(SAMPLE_TAGS) & set(tags)
    assert tags[lineage.TRAINING_DATA_ROWS] == str(ROWS)


def test_drift_against_a_champion_trained_on_a_sample_does_not_cry_wolf(sampled: SimpleNamespace) -> None:
    registry = MLflowRegistryHook()
    version, _ = registry.register_run("cancer", sampled.result["run_id"], {})
    with registry.session() as client:
        client.set_registered_model_alias("cancer", "champion", version)
    check = DriftCheck(model_name="cancer", current_uri="cancer.csv", min_rows=100)
    summary, _ = DriftCheckHook(base_dir=str(sampled.tmp)).run(check, str(sampled.tmp / "reports" / "x"))
    assert summary["champion_version"] == str(version)
    assert summary["reference_changed_since_training"] is None  # a sample's fingerprint: not comparable
    assert summary["status"] == "no_drift"
    assert set(summary["columns"]) == set(json.loads(run_tags(sampled.result["run_id"])[lineage.FEATURES]))
