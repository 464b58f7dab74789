"""Hostile input against the closed loop, on real MLflow (SQLite), pandas and scikit-learn: label files
that land from outside, scored-batch records anyone with MLflow write access can plant, prediction files
whose columns lie, templated arguments, retries and concurrent monitors, and what reaches XCom, MLflow
and the Models API. Each test is a regression test for an attack; those that once got through (forged
prediction rows, records naming files or rows outside the window or folder, label links pointing out,
NUL bytes, nested cells, a hand-set challenger, huge integers) say so in their names.

One MLflow store is built per module (v1 a decision tree, v2 a constant model that slipped through as
@champion, v1 @previous_champion, both evaluated on their holdout, one batch scored at ``DAY``); every
test works on its own copy.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import cancer_csv, context, monitor_options, move_alias, run_context, train

try:  # the Models list's shaping moved to core.catalog_rows
    from mlops_provider.core.catalog_rows import live_check
except ImportError:  # pragma: no cover - before the move
    from mlops_provider.core.catalog import live_check  # type: ignore[attr-defined,no-redef]
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.performance import PerformanceMonitorOperator
from mlops_provider.operators.scoring import BatchScoreOperator

DAY = datetime(2026, 11, 1, tzinfo=UTC)
NEXT = DAY + timedelta(days=1)
GOOD = ("sklearn.tree.DecisionTreeClassifier", {"max_depth": 3, "random_state": 0})
BAD = ("sklearn.dummy.DummyClassifier", {"strategy": "constant", "constant": "malignant"})
MODEL = "live"


# -- the store, built once and copied per test ------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("hostile-base")
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(root))
    mp.setenv("MLOPS_HOME", str(root))
    try:
        data = cancer_csv(root)
        frame = pd.read_csv(data)
        frame.insert(0, "patient_id", [f"p{i}" for i in range(len(frame))])
        frame.drop(columns=["target"]).to_csv(root / "batch.csv", index=False)
        hook = MLflowRegistryHook()
        for i, (estimator, params) in enumerate((GOOD, BAD), start=1):
            run_id = train(MODEL, data, estimator, params, run_id=f"manual__{i}")["run_id"]
            EvaluateModelOperator(task_id="evaluate", run_id=run_id).execute(context("evaluate"))
            hook.register_run(MODEL, run_id, {})
        promote("1", None)
        promote("2", "1")  # a bad champion slipped through; v1 is @previous_champion
        scored = score_batch(root, DAY, "scheduled__1")
    finally:
        mp.undo()
    return SimpleNamespace(root=root, frame=frame, scored=scored, predictions=root / "predictions")


@pytest.fixture
def loop(base: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A private copy of the module's MLflow store (the artifacts, read only, are shared)."""
    store = tmp_path / "mlflow"
    store.mkdir()
    for name in os.listdir(base.root / "mlflow"):
        if name.startswith("mlflow.db"):
            shutil.copy2(base.root / "mlflow" / name, store / name)
    conn = {
        "conn_type": "mlflow",
        "host": f"sqlite:///{store / 'mlflow.db'}",
        "extra": {"artifact_location": (base.root / "mlflow" / "artifacts").as_uri()},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    labels = tmp_path / "labels"
    labels.mkdir()
    own = base.predictions / uuid.uuid4().hex  # this test's files inside the predictions folder
    own.mkdir()
    return SimpleNamespace(
        tmp=tmp_path,
        frame=base.frame,
        labels=labels,
        predictions=base.predictions,
        own=own,
        served=Path(base.scored["output_uri"]),
        shadow=Path(base.scored["shadow_output_uri"]),
        root=base.root,
    )


# -- helpers -----------------------------------------------------------------------------------------


def promote(version: str, old: str | None, alias: str = "champion") -> None:
    move_alias(MODEL, version, old, alias)


def score_batch(root: Path, when: datetime, run: str) -> dict[str, Any]:
    op = BatchScoreOperator(
        task_id="score_batch",
        model_name=MODEL,
        data_uri=str(root / "batch.csv"),
        output_uri=str(root / "predictions" / f"{run}.parquet"),
        id_columns=["patient_id"],
        probabilities=True,
        shadow_aliases=["previous_champion", "challenger"],
        record_batch=True,
    )
    return op.execute(run_context("score_batch", run, when))


def operator(loop: SimpleNamespace, **overrides: Any) -> PerformanceMonitorOperator:
    # the predictions folder as the DAG factory sets it
    defaults = {"rollback": "off", "predictions_prefix": str(loop.predictions)}
    options = monitor_options(MODEL, loop.labels, **{**defaults, **overrides})
    return PerformanceMonitorOperator(**options)


def monitor(
    loop: SimpleNamespace,
    when: datetime = NEXT,
    run: str | None = None,
    try_number: int = 1,
    **overrides: Any,
) -> dict[str, Any]:
    ctx = run_context("check_performance", run or f"scheduled__{when.date()}", when, try_number)
    return operator(loop, **overrides).execute(ctx)


def land(loop: SimpleNamespace, rows: slice, name: str, frame: pd.DataFrame | None = None) -> Path:
    path = loop.labels / f"{name}.csv"
    (loop.frame.iloc[rows][["patient_id", "target"]] if frame is None else frame).to_csv(path, index=False)
    return path


def plant(
    outputs: dict[str, Any], versions: dict[str, str] | None = None, when: datetime = DAY, run: str = ""
) -> str:
    """A scored-batch record as anyone with MLflow write access can write it."""
    from mlops_provider.core.performance import scoring_record
    from mlops_provider.hooks.monitoring import MonitoringHook

    identity = {"dag_id": "live_batch_score", "dag_run_id": run or uuid.uuid4().hex, "task_id": "score_batch"}
    record = scoring_record(
        model=MODEL,
        versions=versions or {"champion": "2"},
        outputs=outputs,
        rows=1,
        identity=identity,
        scoring_date=when,
        scored_at=when,
    )
    return MonitoringHook().record_check(record)


def champion() -> str | None:
    return MLflowRegistryHook().alias_version(MODEL, "champion")


def performance_runs() -> list[Any]:
    from mlops_provider.core.monitoring import CHECK_TAG, monitoring_experiment

    with MLflowRegistryHook().session() as client:
        experiment = client.get_experiment_by_name(monitoring_experiment(MODEL))
        return client.search_runs([experiment.experiment_id], f"tags.`{CHECK_TAG}` = 'performance'")


def model_tags() -> dict[str, str]:
    with MLflowRegistryHook().session() as client:
        return dict(client.get_registered_model(MODEL).tags)


def alias_history(alias: str = "champion") -> list[dict[str, Any]]:
    return json.loads(model_tags().get(f"mlops.alias_history.{alias}", "[]"))


def assert_refused_cleanly(err: pytest.ExceptionInfo[BaseException], *names: str) -> None:
    """Failed without a retry, naming what is at fault; nothing moved and nothing recorded."""
    assert isinstance(err.value, AirflowFailException), repr(err.value)
    for name in names:
        assert name in str(err.value), (name, str(err.value))
    assert champion() == "2"
    assert performance_runs() == []


def attempt(loop: SimpleNamespace, **overrides: Any) -> tuple[dict[str, Any] | None, str]:
    """The monitor's summary, or the message of the task failure it raised instead."""
    try:
        return monitor(loop, **overrides), ""
    except AirflowFailException as err:
        return None, str(err)


def served_frame(loop: SimpleNamespace) -> pd.DataFrame:
    return pd.read_parquet(loop.served)


def shadow_frame(loop: SimpleNamespace) -> pd.DataFrame:
    return pd.read_parquet(loop.shadow)


# == label files ======================================================================================


@pytest.mark.parametrize("missing", ["patient_id", "target"])
def test_a_label_file_without_the_id_or_label_column_fails_naming_file_and_column(
    loop: SimpleNamespace, missing: str
) -> None:
    land(loop, slice(0, 300), "good")
    bad = loop.frame.iloc[300:350][["patient_id", "target"]].drop(columns=[missing])
    bad["comment"] = "x"
    land(loop, slice(0, 0), "bad", frame=bad)
    with pytest.raises(AirflowFailException) as err:
        monitor(loop)
    assert_refused_cleanly(err, "bad.csv", repr(missing))


def test_integer_ids_against_text_ids_fail_showing_both_sides(loop: SimpleNamespace) -> None:
    frame = pd.DataFrame({"patient_id": range(300), "target": loop.frame["target"].iloc[:300]})
    land(loop, slice(0, 0), "ints", frame=frame)
    with pytest.raises(AirflowFailException) as err:
        monitor(loop)
    assert_refused_cleanly(err, "no label id matches", "'p0'", "int64")


def test_mixed_id_kinds_join_what_matches_and_count_the_rest(loop: SimpleNamespace) -> None:
    good = loop.frame.iloc[:200][["patient_id", "target"]]
    strange = pd.DataFrame({"patient_id": [12, 13.0, True, "2026-01-01"], "target": ["benign"] * 4})
    land(loop, slice(0, 0), "mixed", frame=pd.concat([good, strange]))
    summary = monitor(loop)
    assert summary["labels"] == 200
    assert summary["label_issues"]["unscored_ids"] == 4


def numeric_batch(loop: SimpleNamespace, ids: list[Any], name: str) -> Path:
    """A real prediction file with other ids, recorded as a batch (inside the predictions folder)."""
    frame = served_frame(loop).iloc[: len(ids)].copy()
    frame["patient_id"] = ids
    path = loop.own / f"{name}.parquet"
    frame.to_parquet(path)
    plant({"served": str(path), "shadow": None}, when=DAY + timedelta(hours=1))
    return path


@pytest.mark.parametrize(
    ("label_ids", "joined"),
    [
        ([float(i) for i in range(150)], 150),  # 12.0 is 12
        ([str(i) for i in range(150)], 150),  # "12" is 12 (text against numbers)
        ([f"{i:03d}" for i in range(150)], 150),  # "012" reads as 12 too
    ],
)
def test_number_ids_normalise_across_kinds(loop: SimpleNamespace, label_ids: list[Any], joined: int) -> None:
    numeric_batch(loop, list(range(150)), "ints")
    targets = loop.frame["target"].iloc[:150].to_numpy()
    land(loop, slice(0, 0), "labels", frame=pd.DataFrame({"patient_id": label_ids, "target": targets}))
    summary = monitor(loop, labels_uri=str(loop.labels / "*.csv"))
    assert summary["labels"] == joined


def test_date_ids_match_as_iso_text_from_parquet_timestamps(loop: SimpleNamespace) -> None:
    days = pd.date_range("2025-01-01", periods=150, freq="D")
    numeric_batch(loop, [d.date().isoformat() for d in days], "dates")
    targets = loop.frame["target"].iloc[:150].to_numpy()
    pd.DataFrame({"patient_id": days, "target": targets}).to_parquet(loop.labels / "dates.parquet")
    summary = monitor(loop, labels_uri=str(loop.labels / "*.parquet"))
    assert summary["labels"] == 150


def test_a_huge_unsigned_label_id_does_not_wrap_onto_another_id(loop: SimpleNamespace) -> None:
    numeric_batch(loop, [-1, *range(1, 150)], "signed")
    text = "patient_id,target\n18446744073709551615,benign\n"
    (loop.labels / "huge.csv").write_text(text)
    # it matches no scored id (it once wrapped onto id -1): the data cannot be joined at all
    with pytest.raises(AirflowFailException, match="no label id matches"):
        monitor(loop)


def test_duplicate_ids_count_once_and_conflicting_ids_are_left_out(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 200), "part1")
    land(loop, slice(0, 50), "again")  # the same labels twice
    flipped = loop.frame.iloc[50:80][["patient_id", "target"]].copy()
    flipped["target"] = flipped["target"].map({"benign": "malignant", "malignant": "benign"})
    land(loop, slice(0, 0), "flipped", frame=flipped)
    summary = monitor(loop)
    issues = summary["label_issues"]
    assert (issues["duplicate_ids"], issues["conflicting_ids"]) == (50, 30)
    assert summary["labels"] == 170
    assert any("different labels" in note for note in summary["label_notes"])


def test_ids_never_scored_are_counted_not_joined(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 150), "part1")
    ghosts = pd.DataFrame({"patient_id": [f"ghost{i}" for i in range(40)], "target": "benign"})
    land(loop, slice(0, 0), "ghosts", frame=ghosts)
    summary = monitor(loop)
    assert (summary["labels"], summary["label_issues"]["unscored_ids"]) == (150, 40)


def test_number_labels_for_a_text_class_model_are_type_mismatches_never_an_alarm(
    loop: SimpleNamespace,
) -> None:
    frame = loop.frame.iloc[:300][["patient_id"]].assign(
        target=(loop.frame["target"].iloc[:300] == "benign") * 1
    )
    land(loop, slice(0, 0), "codes", frame=frame)
    summary = monitor(loop, rollback="auto")
    assert (summary["status"], summary["action"], summary["labels"]) == ("insufficient_labels", "none", 0)
    assert summary["label_issues"]["type_mismatch"] == 300
    assert champion() == "2"


def test_a_class_the_model_never_saw_counts_as_its_error(loop: SimpleNamespace) -> None:
    frame = loop.frame.iloc[:200][["patient_id", "target"]].copy()
    frame.loc[frame.index[:20], "target"] = "unheard-of"
    land(loop, slice(0, 0), "novel", frame=frame)
    summary = monitor(loop)
    assert summary["labels"] == 200
    assert summary["label_issues"]["unknown_class"] == 20


def test_regression_labels_that_are_no_finite_numbers_are_left_out() -> None:
    from mlops_provider.core.feedback import prepare_labels
    from mlops_provider.core.feedback_join import join_labels

    ids = [f"p{i}" for i in range(6)]
    predictions = pd.DataFrame(
        {
            "pid": ids,
            "prediction": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "model_version": "1",
            "alias": "champion",
            "scoring_date": "2026-11-01T00:00:00Z",
        }
    )
    raw = pd.DataFrame({"pid": ids, "y": ["NaN", "inf", "", "-Infinity", "1e999", "2.5"]})
    labels = prepare_labels(raw, id_column="pid", label_column="y", source="r.csv")
    joined, issues = join_labels(predictions, labels, id_column="pid", task_type="regression", where="r.csv")
    assert joined["label"].tolist() == [2.5]
    assert issues.type_mismatch == 5


HOSTILE_LABELS = [
    "x" * 1_000_000,
    "line\nbreak",
    "<script>alert(1)</script>",
    "=cmd|' /C calc'!A0",
    "+SUM(1,2)",
    "\u202etxt.exe",
]


def test_hostile_label_values_stay_bounded_and_inert_in_xcom_and_mlflow(loop: SimpleNamespace) -> None:
    frame = loop.frame.iloc[:200][["patient_id", "target"]].copy()
    for i, value in enumerate(HOSTILE_LABELS):
        frame.loc[frame.index[i], "target"] = value
    ghosts = pd.DataFrame({"patient_id": HOSTILE_LABELS, "target": HOSTILE_LABELS})
    land(loop, slice(0, 0), "hostile", frame=pd.concat([frame, ghosts]))
    summary = monitor(loop)
    assert summary["labels"] == 200
    assert summary["label_issues"]["unknown_class"] == len(HOSTILE_LABELS)
    text = json.dumps(summary)
    assert len(text) < 20_000
    assert "x" * 100 not in text
    assert "\n" not in "".join(summary["label_notes"])
    assert "\u202e" not in text
    (run,) = performance_runs()
    for key, value in run.data.tags.items():
        assert len(value) <= 8000, key
        assert "<script" not in value, key
    assert "<script" not in model_tags()["mlops.last_check.performance"]


def test_nul_bytes_in_a_label_csv_do_not_silently_turn_into_another_label(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 200), "good")
    # "malignant\0" + garbage, for a benign patient: read as the valid label "malignant"?
    row = loop.frame.iloc[200:][loop.frame["target"].iloc[200:] == "benign"].iloc[0]
    (loop.labels / "nul.csv").write_bytes(
        f"patient_id,target\n{row['patient_id']},malignant\0oops\n".encode()
    )
    summary, error = attempt(loop)  # refusing the file is fine too, if it names it
    assert "nul.csv" in error if summary is None else summary["labels"] == 200, "a cut label was joined"


def test_non_utf8_bytes_fail_naming_file_and_offset(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 200), "good")
    (loop.labels / "latin1.csv").write_bytes("patient_id,target\np1,b\xe9nin\n".encode("latin-1"))
    with pytest.raises(AirflowFailException) as err:
        monitor(loop)
    assert_refused_cleanly(err, "latin1.csv", "0xe9", "UTF-8")


def test_a_header_only_csv_beside_real_labels_adds_nothing(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 200), "good")
    (loop.labels / "empty.csv").write_text("patient_id,target\n")
    assert monitor(loop)["labels"] == 200


@pytest.mark.parametrize("content", ["patient_id,target\n", "patient_id,target\np1,\np2,\np3,\n"])
def test_label_files_with_no_usable_row_yet_are_insufficient_labels(
    loop: SimpleNamespace, content: str
) -> None:
    (loop.labels / "pending.csv").write_text(content)
    summary = monitor(loop)
    assert (summary["status"], summary["action"], summary["labels"]) == ("insufficient_labels", "none", 0)


def test_a_zero_byte_label_file_fails_naming_it(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 200), "good")
    (loop.labels / "zero.csv").write_bytes(b"")
    with pytest.raises(AirflowFailException) as err:
        monitor(loop)
    assert_refused_cleanly(err, "zero.csv", "empty")


@pytest.mark.parametrize("nested", ["label", "id"])
def test_a_parquet_label_file_with_nested_cells_fails_naming_file_and_column(
    loop: SimpleNamespace, nested: str
) -> None:
    frame = loop.frame.iloc[:200][["patient_id", "target"]].copy()
    if nested == "label":
        frame["target"] = [[value] for value in frame["target"]]
    else:
        frame["patient_id"] = [{"id": value} for value in frame["patient_id"]]
    frame.to_parquet(loop.labels / "nested.parquet")
    with pytest.raises(AirflowFailException) as err:
        monitor(loop, labels_uri=str(loop.labels / "*.parquet"))
    assert_refused_cleanly(err, "nested.parquet", "patient_id" if nested == "id" else "target")


def test_a_thousand_columns_are_read_and_an_error_lists_only_a_few(loop: SimpleNamespace) -> None:
    wide = loop.frame.iloc[:200][["patient_id", "target"]].copy()
    extra = pd.DataFrame({f"c{i}": 0 for i in range(1000)}, index=wide.index)
    land(loop, slice(0, 0), "wide", frame=pd.concat([wide, extra], axis=1))
    assert monitor(loop)["labels"] == 200
    land(loop, slice(0, 0), "wide2", frame=extra)
    with pytest.raises(AirflowFailException) as err:
        monitor(loop, when=NEXT + timedelta(hours=1))
    assert "wide2.csv" in str(err.value)
    assert "and 990 more" in str(err.value)
    assert len(str(err.value)) < 1500


def test_thousands_of_tiny_label_files_are_read_in_reasonable_time(loop: SimpleNamespace) -> None:
    rows = loop.frame[["patient_id", "target"]]
    for i in range(2000):
        rows.iloc[[i % len(rows)]].to_csv(loop.labels / f"tiny-{i:05d}.csv", index=False)
    started = time.monotonic()
    summary = monitor(loop)
    took = time.monotonic() - started
    assert summary["labels"] == len(rows)
    assert summary["label_issues"]["duplicate_ids"] == len(rows)  # every id came more than once
    assert took < 60, f"2000 one-row label files took {took:.1f}s"


def test_a_label_symlink_to_etc_passwd_is_left_out(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 200), "good")
    os.symlink("/etc/passwd", loop.labels / "passwd.csv")
    assert monitor(loop)["labels"] == 200


def test_a_label_symlink_does_not_echo_a_file_of_the_worker(loop: SimpleNamespace) -> None:
    secret = loop.tmp / "elsewhere" / "worker.env"
    secret.parent.mkdir()
    secret.write_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\n")
    land(loop, slice(0, 200), "good")
    os.symlink(secret, loop.labels / "leak.csv")
    summary, error = attempt(loop)
    assert "wJalr" not in error, error
    assert summary is not None
    assert summary["labels"] == 200


def test_a_label_symlink_out_of_the_labels_folder_is_left_out(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 200), "good")
    outside = loop.tmp / "elsewhere"
    outside.mkdir()
    loop.frame.iloc[200:400][["patient_id", "target"]].to_csv(outside / "theirs.csv", index=False)
    os.symlink(outside / "theirs.csv", loop.labels / "theirs.csv")
    assert monitor(loop)["labels"] == 200


def test_a_label_file_with_a_repeated_column_fails_naming_it(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 200), "good")
    (loop.labels / "twice.csv").write_text("patient_id,target,target\np1,benign,malignant\n")
    with pytest.raises(AirflowFailException) as err:
        monitor(loop)
    assert_refused_cleanly(err, "twice.csv", "'target'")


# == scored-batch records and prediction files ========================================================


def fake_predictions(
    loop: SimpleNamespace, path: Path, alias: str = "previous_champion", version: str = "1"
) -> Path:
    """Perfect 'predictions' (the truth itself) under an alias and version of the attacker's choosing."""
    fake = loop.frame[["patient_id"]].assign(
        row=range(len(loop.frame)),
        prediction=loop.frame["target"],
        model_version=version,
        alias=alias,
        scored_at="2026-11-01T00:00:00Z",
        scoring_date="2026-11-01T00:00:00Z",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fake.to_parquet(path)
    return path


def previous_rows(summary: dict[str, Any]) -> int:
    return int(summary["aliases"].get("previous_champion", {}).get("labels", 0))


@pytest.mark.parametrize(
    "form",
    [
        "{predictions}/../elsewhere/fake.parquet",
        "{predictions}/./../elsewhere/fake.parquet",
        "file://{predictions}/../elsewhere/fake.parquet",
        "file://{elsewhere}/fake.parquet",
        "{predictions}/%2e%2e/elsewhere/fake.parquet",
        "{predictions}/*/../../elsewhere/fake.parquet",
        "s3://bucket/{predictions}/fake.parquet",
        "S3://bucket/../fake.parquet",
        "{elsewhere}/fake.parquet\x00.parquet",
    ],
)
def test_a_planted_record_pointing_out_of_the_predictions_folder_is_left_out(
    loop: SimpleNamespace, form: str
) -> None:
    elsewhere = loop.root / "elsewhere"
    fake_predictions(loop, elsewhere / "fake.parquet")
    uri = form.format(predictions=loop.predictions, elsewhere=elsewhere)
    plant({"served": uri, "shadow": None}, versions={"previous_champion": "1"})
    land(loop, slice(0, 300), "part1")
    summary = monitor(loop)
    assert summary["window"]["batches"] == 2
    assert previous_rows(summary) == 300  # the real shadow rows only: the fake ones would double nothing,
    assert summary["label_issues"]["rescored"] == 0  # but they would show up as rows scored again


def test_a_symlink_inside_the_predictions_folder_pointing_out_is_left_out(loop: SimpleNamespace) -> None:
    elsewhere = fake_predictions(loop, loop.root / "elsewhere" / f"{uuid.uuid4().hex}.parquet")
    link = loop.own / "innocent.parquet"
    os.symlink(elsewhere, link)
    plant({"served": str(link), "shadow": None}, versions={"previous_champion": "1"})
    land(loop, slice(0, 300), "part1")
    summary = monitor(loop)
    assert summary["label_issues"]["rescored"] == 0


def test_a_glob_in_a_planted_record_cannot_open_a_symlink_pointing_out(loop: SimpleNamespace) -> None:
    elsewhere = fake_predictions(loop, loop.root / "elsewhere" / f"{uuid.uuid4().hex}.parquet")
    os.symlink(elsewhere, loop.own / "innocent.parquet")
    plant({"served": str(loop.own / "inn?cent.parquet"), "shadow": None}, versions={"previous_champion": "1"})
    land(loop, slice(0, 300), "part1")
    summary = monitor(loop)
    assert summary["label_issues"]["rescored"] == 0, "the file outside the folder was read"


def test_a_record_naming_an_old_batch_does_not_bring_rows_from_outside_the_window(
    loop: SimpleNamespace,
) -> None:
    old = shadow_frame(loop).assign(scoring_date="2026-06-01T00:00:00Z")  # scored months ago
    old_served = served_frame(loop).assign(scoring_date="2026-06-01T00:00:00Z")
    pd.concat([old, old_served]).to_parquet(loop.own / "june.parquet")
    land(loop, slice(0, 300), "part1")
    # the real batch of DAY is out of this window; only the planted record is in it
    later = DAY + timedelta(days=40)
    plant({"served": str(loop.own / "june.parquet"), "shadow": None}, when=later - timedelta(days=1))
    summary = monitor(loop, when=later, rollback="auto")
    assert summary["aliases"] == {}
    assert champion() == "2"


@pytest.mark.parametrize(
    ("tags", "metric"),
    [
        ({"mlops.scoring.outputs": "{not json"}, None),
        ({"mlops.scoring.outputs": json.dumps(["/etc/passwd"])}, None),
        ({"mlops.scoring.outputs": json.dumps({"served": 5, "shadow": ["x"]})}, None),
        ({"mlops.scoring.outputs": json.dumps({"served": {"a": 1}})}, None),
        ({"mlops.scoring.versions": "{" * 5000}, None),
        ({"mlops.scoring.versions": json.dumps({"champion": ["1"] * 1000})}, None),
        ({}, math.nan),
        ({}, math.inf),
        ({}, -math.inf),
        ({}, -1.0),
    ],
)
def test_malformed_scoring_records_are_left_out_or_harmless(
    loop: SimpleNamespace, tags: dict[str, str], metric: float | None
) -> None:
    run_id = plant({"served": str(loop.served), "shadow": str(loop.shadow)}, when=DAY + timedelta(hours=2))
    with MLflowRegistryHook().session() as client:
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        if metric is not None:
            client.log_metric(run_id, "scoring_ts", metric)
    land(loop, slice(0, 300), "part1")
    summary = monitor(loop)
    assert summary["labels"] == 300
    assert previous_rows(summary) == 300


def test_hundreds_of_records_naming_the_same_files_count_each_row_once(loop: SimpleNamespace) -> None:
    from mlflow.entities import Metric, RunTag

    from mlops_provider.core.monitoring import monitoring_experiment

    outputs = json.dumps({"served": str(loop.served), "shadow": str(loop.shadow)})
    with MLflowRegistryHook().session() as client:
        experiment = client.get_experiment_by_name(monitoring_experiment(MODEL)).experiment_id
        for i in range(300):
            run = client.create_run(experiment)
            tags = {"mlops.check": "scoring", "mlops.scoring.outputs": outputs, "mlops.check_key": f"k{i}"}
            metric = Metric("scoring_ts", DAY.timestamp() + i, 0, 0)
            client.log_batch(run.info.run_id, metrics=[metric], tags=[RunTag(k, v) for k, v in tags.items()])
    land(loop, slice(0, 300), "part1")
    started = time.monotonic()
    summary = monitor(loop, rollback="auto")
    took = time.monotonic() - started
    assert summary["window"]["batches"] == 301
    assert (summary["labels"], previous_rows(summary)) == (300, 300)
    assert summary["action"] == "rollback"  # the honest verdict, unchanged by the copies
    assert took < 60, f"301 batch records took {took:.1f}s"


def shadow_champion_1_challenger_2() -> None:
    """v1 (good) serves; v2 (the constant model) waits as @challenger; no @previous_champion."""
    with MLflowRegistryHook().session() as client:
        client.delete_registered_model_alias(MODEL, "previous_champion")
        client.set_registered_model_alias(MODEL, "champion", "1")
        client.set_registered_model_alias(MODEL, "challenger", "2")


def test_a_prediction_file_claiming_challenger_rows_its_record_does_not_list_promotes_nothing(
    loop: SimpleNamespace,
) -> None:
    shadow_champion_1_challenger_2()
    when = DAY + timedelta(hours=3)
    stamp = when.isoformat().replace("+00:00", "Z")
    champion_rows = shadow_frame(loop).assign(alias="champion", scoring_date=stamp)  # v1's real predictions
    forged = fake_predictions(loop, loop.own / "forged-part.parquet", alias="challenger", version="2")
    rows = pd.concat([champion_rows, pd.read_parquet(forged).assign(scoring_date=stamp)], ignore_index=True)
    rows.to_parquet(loop.own / "batch.parquet")
    forged.unlink()
    plant({"served": str(loop.own / "batch.parquet"), "shadow": None}, versions={"champion": "1"}, when=when)
    land(loop, slice(0, 400), "part1")
    summary = monitor(loop, mode="shadow", shadow_min_labels=200)
    assert summary["action"] != "promote", summary["reason"]
    assert champion() == "1"


def test_a_prediction_file_with_hundreds_of_made_up_aliases_keeps_the_summary_small(
    loop: SimpleNamespace,
) -> None:
    rows = served_frame(loop).iloc[:300].copy()
    rows["alias"] = [f"a{i:03d}-" + "y" * 2000 for i in range(100)] * 3
    rows.to_parquet(loop.own / "aliases.parquet")
    plant({"served": str(loop.own / "aliases.parquet"), "shadow": None}, when=DAY + timedelta(hours=1))
    land(loop, slice(0, 300), "part1")
    summary = monitor(loop)
    wrong = []
    if len(json.dumps(summary)) > 64_000:
        wrong.append(f"XCom summary of {len(json.dumps(summary))} characters")
    (run,) = performance_runs()
    try:
        json.loads(run.data.tags["mlops.performance.aliases"])
    except ValueError:
        wrong.append("mlops.performance.aliases is not JSON")
    assert not wrong, wrong


def test_a_prediction_file_without_the_prediction_columns_is_not_counted_as_an_alias_nan(
    loop: SimpleNamespace,
) -> None:
    loop.frame[["patient_id", "target"]].to_parquet(loop.own / "not-predictions.parquet")
    plant({"served": str(loop.own / "not-predictions.parquet"), "shadow": None})
    land(loop, slice(0, 300), "part1")
    summary, error = attempt(loop)
    if summary is None:
        assert "not-predictions.parquet" in error
    else:
        assert set(summary["aliases"]) == {"champion", "previous_champion"}


def test_a_prediction_file_with_a_bad_scoring_date_is_named_in_the_error(loop: SimpleNamespace) -> None:
    served_frame(loop).assign(scoring_date="yesterday").to_parquet(loop.own / "undated.parquet")
    plant({"served": str(loop.own / "undated.parquet"), "shadow": None}, when=DAY + timedelta(hours=1))
    land(loop, slice(0, 300), "part1")
    with pytest.raises(AirflowFailException) as err:
        monitor(loop)
    assert "undated.parquet" in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("when", "batches"), [(DAY, 1), (DAY + timedelta(days=28), 0), (DAY - timedelta(seconds=1), 0)]
)
def test_the_window_is_start_exclusive_end_inclusive(
    loop: SimpleNamespace, when: datetime, batches: int
) -> None:
    land(loop, slice(0, 300), "part1")
    summary = monitor(loop, when=when, window_days=28)
    assert summary["window"]["batches"] == batches


def test_a_degraded_champion_that_stays_emits_one_bounded_event(loop: SimpleNamespace) -> None:
    benign = loop.frame[loop.frame["target"] == "benign"]  # the constant "malignant" model: 0% right here
    land(loop, slice(0, 0), "benign", frame=benign[["patient_id", "target"]])
    op = operator(loop, rollback="off")
    ctx = run_context("check_performance", "scheduled__x", NEXT)
    summary = op.execute(ctx)
    assert (summary["status"], summary["action"], summary["event"]) == ("degraded", "performance_event", True)
    (asset,) = [o for o in op.outlets if "performance" in str(getattr(o, "uri", o))]
    extra = ctx["outlet_events"][asset].extra
    assert set(extra) == {"status", "reason", "champion_version", "labels", "live"}
    assert len(json.dumps(extra)) < 4000
    assert champion() == "2"
    few = operator(loop, rollback="off", min_labels=10_000)
    assert few.execute(run_context("check_performance", "scheduled__y", NEXT))["event"] is False


# == operator arguments ===============================================================================


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("window_days", 0),
        ("window_days", -1),
        ("window_days", "28; x"),
        ("window_days", 10**12),
        ("window_days", True),
        ("window_days", 28.5),
        ("min_labels", 0),
        ("min_labels", "-5"),
        ("shadow_min_labels", None),
        ("degrade", {"accuracy": {"max_drop": math.nan}}),
        ("degrade", {"accuracy": {"max_drop": -0.1}}),
        ("degrade", {"accuracy": {"max_drop": math.inf}}),
        ("degrade", {"auc": {"max_drop": 0.1}}),
        ("degrade", {"accuracy": 0.05}),
        ("degrade", "{'accuracy': {'max_drop': 0.05}}"),
        ("vs_champion", {"rmse": {"min_delta": 0.0}}),
        ("rollback", "AUTO"),
        ("rollback", "yes"),
        ("mode", "Shadow"),
        ("metrics", ["accuracy", "bogus"]),
        ("primary_metric", "rmse"),
        ("task_type", "Classification"),
    ],
)
def test_bad_arguments_fail_before_anything_is_read_or_moved(
    loop: SimpleNamespace, argument: str, value: Any
) -> None:
    land(loop, slice(0, 300), "part1")
    with pytest.raises(AirflowFailException) as err:
        monitor(loop, **{"rollback": "auto", argument: value})
    assert_refused_cleanly(err, argument)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("window_days", "28"),
        ("window_days", " 28 "),
        ("min_labels", "100"),
        ("degrade", '{"accuracy": {"max_drop": 0.05}}'),
    ],
)
def test_templated_arguments_rendered_as_text_are_accepted(
    loop: SimpleNamespace, argument: str, value: Any
) -> None:
    land(loop, slice(0, 300), "part1")
    assert monitor(loop, **{argument: value})["labels"] == 300


def test_a_huge_integer_max_drop_is_refused_naming_the_argument(loop: SimpleNamespace) -> None:
    with pytest.raises(AirflowFailException) as err:
        monitor(loop, degrade={"accuracy": {"max_drop": 10**400}})
    assert "degrade" in str(err.value)


def test_metrics_given_as_one_string_is_refused(loop: SimpleNamespace) -> None:
    # a template rendering a list to text: refused, though the message lists its characters
    with pytest.raises(AirflowFailException) as err:
        monitor(loop, metrics="accuracy")
    assert "metrics" in str(err.value)


# == idempotency and concurrency ======================================================================


def test_a_retry_of_the_monitor_after_its_rollback_neither_rolls_back_again_nor_flips(
    loop: SimpleNamespace,
) -> None:
    land(loop, slice(0, 300), "part1")
    first = monitor(loop, rollback="auto")
    assert (first["action"], champion()) == ("rollback", "1")
    retry = monitor(loop, rollback="auto", try_number=2)  # the same task instance, second try
    assert retry["action"] == "none", retry["reason"]
    assert champion() == "1"
    rollbacks = [h for h in alias_history() if h["action"] == "rollback"]
    assert len(rollbacks) == 1
    assert len(performance_runs()) == 1  # the retry updated its record


def test_a_retry_after_a_crash_between_the_rollback_and_its_record_does_not_move_again(
    loop: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_provider.hooks.monitoring import MonitoringHook

    land(loop, slice(0, 300), "part1")
    real = MonitoringHook.record_check

    def down(self: MonitoringHook, record: Any) -> str:  # MLflow gone right after the alias moved
        raise ConnectionError("MLflow went away")

    monkeypatch.setattr(MonitoringHook, "record_check", down)
    with pytest.raises(ConnectionError):
        monitor(loop, rollback="auto")
    assert champion() == "1"
    monkeypatch.setattr(MonitoringHook, "record_check", real)
    retry = monitor(loop, rollback="auto", try_number=2)
    assert retry["action"] == "none", retry["reason"]
    assert champion() == "1"
    assert len([h for h in alias_history() if h["action"] == "rollback"]) == 1
    assert model_tags()["mlops.last_decision"]  # the rollback itself stays on record


def test_two_monitors_judging_the_same_champion_move_it_once(
    loop: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_provider.hooks.performance import PerformanceHook

    land(loop, slice(0, 300), "part1")
    real = PerformanceHook.holdout_metrics
    other: dict[str, Any] = {}

    def meanwhile(self: PerformanceHook, model_name: str, version: str) -> dict[str, float]:
        if not other:  # a second monitor (another DAG run) finishes between our judgement and our move
            other["summary"] = "running"
            other["summary"] = monitor(loop, run="manual__other", rollback="auto")
        return real(self, model_name, version)

    monkeypatch.setattr(PerformanceHook, "holdout_metrics", meanwhile)
    first = monitor(loop, rollback="auto")
    assert other["summary"]["action"] == "rollback"
    assert first["action"] == "none"
    assert "not done" in first["reason"]
    assert first["event"] is False
    assert champion() == "1"
    assert len([h for h in alias_history() if h["action"] == "rollback"]) == 1


def test_a_past_monitor_run_never_rolls_a_newer_champion_back(loop: SimpleNamespace) -> None:
    land(loop, slice(0, 300), "part1")
    promote("1", "2")  # a person put v1 back since; v2 is now @previous_champion
    summary = monitor(loop, rollback="auto")  # the monitor run of that day, re-run now
    assert summary["action"] == "none", summary["reason"]
    assert champion() == "1"
    with MLflowRegistryHook().session() as client:
        v1 = client.get_model_version(MODEL, "1")
        client.create_model_version(MODEL, v1.source, run_id=v1.run_id)  # version 3, never scored
    promote("3", "1")
    summary = monitor(loop, rollback="auto")
    assert (summary["status"], summary["action"]) == ("insufficient_labels", "none")
    assert champion() == "3"


def test_a_challenger_that_never_passed_the_gate_is_not_promoted_by_live_rows(loop: SimpleNamespace) -> None:
    with MLflowRegistryHook().session() as client:
        client.delete_registered_model_alias(MODEL, "previous_champion")
        client.set_registered_model_alias(MODEL, "challenger", "1")  # by hand: no gate decision
        assert "mlops.gate.decision" not in client.get_model_version(MODEL, "1").tags
    score_batch(loop.root, DAY + timedelta(hours=5), f"scheduled__{uuid.uuid4().hex[:8]}")
    land(loop, slice(0, 300), "part1")
    summary = monitor(loop, mode="shadow", shadow_min_labels=200)
    assert summary["action"] != "promote", summary["reason"]
    assert champion() == "2"


# == the Models API ===================================================================================


@pytest.mark.parametrize(
    "raw",
    [
        "x" * 10_000,
        json.dumps({"metrics": ["accuracy"], "status": {"a": 1}, "labels": "12", "reason": "r" * 9000}),
        json.dumps({"primary_metric": ["x"], "metrics": {"accuracy": "nan"}, "labels": True}),
        json.dumps({"primary_metric": "<img src=x onerror=alert(1)>", "status": "<b>degraded</b>"}),
        json.dumps({"metrics": {"accuracy": 1e308 * 10}, "labels": -1e400}),
        json.dumps([1, 2, 3]),
        "null",
    ],
)
def test_live_check_shapes_a_hostile_tag_into_bounded_plain_values(raw: str) -> None:
    live = live_check(raw)
    if live is None:
        return
    assert len(json.dumps(live, allow_nan=False)) < 1200
    assert live["value"] is None or math.isfinite(live["value"])
    assert live["status"] != "degraded"


def test_a_huge_integer_in_the_performance_tag_does_not_break_the_models_api(loop: SimpleNamespace) -> None:
    from mlops_provider.hooks.catalog import ModelCatalogHook
    from mlops_provider.plugins import models_api

    huge = json.dumps({"status": "ok", "primary_metric": "accuracy", "labels": 10**400})
    with MLflowRegistryHook().session() as client:
        client.set_registered_model_tag(MODEL, "mlops.last_check.performance", huge)
    models_api.reset_catalog()
    try:
        catalog = ModelCatalogHook()
        info = catalog.registered_model(MODEL)
        row = models_api.safe_summary(MODEL, "live_retrain", True, info, {}, 0)
        wrong = ["list row unreadable"] if "unreadable" in row["problems"] else []
        try:
            models_api.build_mlflow_part(catalog.model(MODEL, info))  # GET /api/models/{name}
        except OverflowError:
            wrong.append("model detail raises OverflowError")
    finally:
        models_api.reset_catalog()
    assert not wrong, wrong


def test_after_a_rollback_the_new_champion_is_not_shown_as_degraded(loop: SimpleNamespace) -> None:
    from mlops_provider.hooks.catalog import ModelCatalogHook
    from mlops_provider.plugins import models_api

    benign = loop.frame[loop.frame["target"] == "benign"]  # labels so far: the constant model is 0% right
    land(loop, slice(0, 0), "benign", frame=benign[["patient_id", "target"]])
    summary = monitor(loop, rollback="auto")
    assert (summary["status"], summary["action"], champion()) == ("degraded", "rollback", "1")
    assert summary["event"] is False  # rolled back: no retrain event
    models_api.reset_catalog()
    try:
        info = ModelCatalogHook().registered_model(MODEL)
        row = models_api.model_summary(MODEL, "live_retrain", True, info, {}, 0)
    finally:
        models_api.reset_catalog()
    assert row["champion"]["version"] == "1"
    assert "degraded" not in row["problems"], row["live_metric"]
