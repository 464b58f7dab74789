"""BatchScoreOperator: argument checks in execute(), skip without a champion, and real scoring with the
champion version (sklearn, MLflow on SQLite) written atomically with the model version."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from conftest import mlflow_connection
from support import cancer_csv, context, crown

from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.scoring import BatchScoreOperator
from mlops_provider.operators.training import TrainModelOperator

UI = "http://mlflow.example"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("scoring")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp, ui_url=UI))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        frame = pd.read_csv(data)
        frame.insert(0, "patient_id", [f"p{i}" for i in range(len(frame))])
        frame.drop(columns=["target"]).to_csv(tmp / "batch.csv", index=False)
        run_id = TrainModelOperator(
            task_id="train",
            model_name="scored",
            data_uri=str(data),
            target="target",
            estimator="sklearn.tree.DecisionTreeClassifier",
            estimator_params={"max_depth": 2},
        ).execute(context("train"))["run_id"]
        assert crown("scored", run_id, why="first") == "1"
        yield SimpleNamespace(tmp=tmp, run_id=run_id, rows=len(frame))


def operator(store: SimpleNamespace, **kwargs) -> BatchScoreOperator:
    options = {
        "task_id": "score",
        "model_name": "scored",
        "data_uri": "batch.csv",
        "output_uri": f"out/{uuid.uuid4().hex[:6]}/predictions.parquet",
        "base_dir": str(store.tmp),
    }
    options.update(kwargs)
    return BatchScoreOperator(**options)


def test_constructing_with_nonsense_does_not_raise():
    BatchScoreOperator(task_id="s", model_name="", data_uri="", output_uri="", chunk_size=-3, id_columns=7)


@pytest.mark.parametrize("chunk_size", [0, -1, "100", 2.5, None])
def test_bad_chunk_size_fails_naming_it(store, chunk_size):
    with pytest.raises(AirflowFailException, match="chunk_size"):
        operator(store, chunk_size=chunk_size).execute(context("score"))


def test_no_champion_skips(store):
    output = "skipped/predictions.parquet"
    with pytest.raises(AirflowSkipException, match="no champion"):
        operator(store, model_name="never-registered", output_uri=output).execute(context("score"))
    with pytest.raises(AirflowSkipException, match="scored@staging"):
        operator(store, alias="staging", output_uri=output).execute(context("score"))
    assert not (store.tmp / "skipped").exists()


def test_scoring_writes_predictions_with_the_model_version(store):
    ctx = context("score")
    op = operator(store, id_columns=["patient_id"], chunk_size=100)
    result = op.execute(ctx)
    assert result["model_name"] == "scored"
    assert result["version"] == "1"
    assert result["rows"] == store.rows
    out = pd.read_parquet(result["output_uri"])
    assert list(out.columns) == [
        "patient_id",
        "row",
        "prediction",
        "model_version",
        "alias",
        "scored_at",
        "scoring_date",
    ]
    assert set(out["alias"]) == {"champion"}
    assert out["scoring_date"].iloc[0] == out["scored_at"].iloc[0]  # no logical date: when it was scored
    assert list(out["row"]) == list(range(store.rows))
    assert list(out["patient_id"]) == [f"p{i}" for i in range(store.rows)]
    assert set(out["model_version"]) == {"1"}
    assert set(out["prediction"]) <= {"malignant", "benign"}
    assert os.listdir(os.path.dirname(result["output_uri"])) == ["predictions.parquet"]
    assert ctx["ti"].pushed["mlflow_model_version_url"] == f"{UI}/#/models/scored/versions/1"


def test_chunking_does_not_change_predictions(store):
    small = pd.read_parquet(operator(store, chunk_size=7).execute(context("score"))["output_uri"])
    whole = pd.read_parquet(operator(store, chunk_size=10_000).execute(context("score"))["output_uri"])
    when = ["scored_at", "scoring_date"]  # the clock may tick between the two runs (no logical date)
    assert small[when].notna().all().all()
    assert whole[when].notna().all().all()
    pd.testing.assert_frame_equal(small.drop(columns=when), whole.drop(columns=when))


def test_missing_column_fails_naming_it(store):
    with pytest.raises(AirflowFailException, match="'customer_id'"):
        operator(store, id_columns=["customer_id"]).execute(context("score"))


# -- the batch checked against the model (signature, encoders), empty batches -----------------------
@pytest.fixture(scope="module")
def mixed(store: SimpleNamespace) -> SimpleNamespace:
    """A champion with a one-hot encoded text column and an imputed numeric one."""
    import numpy as np

    rows = 90
    frame = pd.DataFrame(
        {
            "amount": [float(i % 17) if i % 11 else np.nan for i in range(rows)],
            "city": [("north", "south", "east")[i % 3] for i in range(rows)],
            "label": [("yes", "no")[(i // 3) % 2] for i in range(rows)],
        }
    )
    frame.to_csv(store.tmp / "mixed.csv", index=False)
    run_id = TrainModelOperator(
        task_id="train",
        model_name="mixed",
        data_uri=str(store.tmp / "mixed.csv"),
        target="label",
        estimator="sklearn.linear_model.LogisticRegression",
    ).execute(context("train", run_id="mixed"))["run_id"]
    hook = MLflowRegistryHook()
    version, _ = hook.register_run("mixed", run_id, {})
    hook.move_alias(
        model_name="mixed",
        alias="champion",
        expected_old=None,
        new_version=version,
        why="first",
        who="test",
        action="promote",
        lock_owner="test",
    )
    return store


def score_batch(store: SimpleNamespace, csv: str, **kwargs) -> dict:
    name = f"batch-{uuid.uuid4().hex[:6]}.csv"
    (store.tmp / name).write_text(csv)
    return operator(store, model_name="mixed", data_uri=name, **kwargs).execute(context("score"))


def test_a_clean_batch_records_zero_unseen_and_takes_missing_amounts(mixed):
    result = score_batch(mixed, "amount,city\n1.0,north\n,south\n3.5,east\n")
    assert result["rows"] == 3
    assert result["unseen_share"] == {"city": 0.0}


@pytest.mark.parametrize(
    ("csv", "match"),
    [
        ("amount,city\n1.0,north\nabc,south\n", r"'amount' holds text \(e.g. 'abc'\)"),
        ("amount,city\n1.0,north\ninf,south\n", "'amount' holds 1 infinite value"),
        ("amount\n1.0\n", r"missing column\(s\) 'city'"),
    ],
    ids=["text-in-numeric", "inf", "missing-column"],
)
def test_bad_input_fails_once_naming_the_column_without_writing(mixed, csv, match):
    output = f"bad/{uuid.uuid4().hex[:6]}/predictions.parquet"
    with pytest.raises(AirflowFailException, match=match) as raised:
        score_batch(mixed, csv, output_uri=output)
    assert isinstance(raised.value, AirflowFailException)  # never retried
    assert not (mixed.tmp / output).parent.exists()


def test_numbers_in_a_typed_text_column_are_refused_naming_it(mixed):
    name = f"batch-{uuid.uuid4().hex[:6]}.parquet"
    pd.DataFrame({"amount": [1.0, 2.0], "city": [1, 2]}).to_parquet(mixed.tmp / name)
    output = f"bad/{uuid.uuid4().hex[:6]}/predictions.parquet"
    with pytest.raises(
        AirflowFailException, match=r"'city' holds int64 values \(e.g. 1, 2\), the model takes text"
    ):
        operator(mixed, model_name="mixed", data_uri=name, output_uri=output).execute(context("score"))
    assert not (mixed.tmp / output).parent.exists()


def test_digit_codes_in_a_csv_text_column_are_text_in_every_chunk(mixed):
    # CSV carries no types: a column the model takes as text is read as text, whatever a chunk holds
    result = score_batch(mixed, "amount,city\n1.0,7\n2.0,8\n3.0,north\n", chunk_size=2)
    assert result["rows"] == 3
    assert result["unseen_share"] == {"city": round(2 / 3, 6)}


def test_unseen_categories_are_recorded_and_warn_by_default(mixed, capsys):
    csv = "amount,city\n1.0,north\n2.0,west\n3.0,west\n4.0,south\n"
    result = score_batch(mixed, csv, max_unseen_share=0.25)
    assert result["unseen_share"] == {"city": 0.5}
    assert "above max_unseen_share 0.25: 'city' 50.0%" in capsys.readouterr().out


def test_unseen_categories_above_the_maximum_fail_when_configured(mixed):
    csv = "amount,city\n1.0,north\n2.0,west\n"
    with pytest.raises(AirflowFailException, match=r"above max_unseen_share 0.4: 'city' 50.0%"):
        score_batch(mixed, csv, max_unseen_share="0.4", on_unseen="fail")
    assert score_batch(mixed, csv, max_unseen_share=0.5, on_unseen="fail")["unseen_share"] == {"city": 0.5}


@pytest.mark.parametrize(
    ("kwargs", "named"), [({"max_unseen_share": 2}, "max_unseen_share"), ({"on_unseen": "x"}, "on_unseen")]
)
def test_bad_unseen_options_fail_naming_them(mixed, kwargs, named):
    with pytest.raises(AirflowFailException, match=named):
        score_batch(mixed, "amount,city\n1.0,north\n", **kwargs)


def test_an_empty_batch_skips_with_its_reason_and_writes_nothing(mixed):
    output = f"empty/{uuid.uuid4().hex[:6]}/predictions.parquet"
    with pytest.raises(AirflowSkipException, match="has no rows: nothing to score"):
        score_batch(mixed, "amount,city\n", output_uri=output)
    assert not (mixed.tmp / output).parent.exists()


def test_a_predict_error_is_not_retried(mixed):
    from unittest import mock

    with (
        mock.patch("sklearn.pipeline.Pipeline.predict", side_effect=ValueError("boom")),
        pytest.raises(AirflowFailException, match="the model refused the batch: boom"),
    ):
        score_batch(mixed, "amount,city\n1.0,north\n")
