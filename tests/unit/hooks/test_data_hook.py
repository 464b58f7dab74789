"""DataHook on local files: resolution, reads (CSV, Parquet, globs), atomic writes, signatures and
fingerprints, and data errors as Airflow outcomes (fail, no retry)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.exceptions import DataError
from mlops_provider.hooks.data import DataHook


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "x": [0.5, 1.5, 2.5], "label": ["a", "b", "a"]})


def test_resolve_relative_against_base_dir(tmp_path):
    hook = DataHook(base_dir=str(tmp_path))
    assert hook.resolve("batches/a.csv") == str(tmp_path / "batches" / "a.csv")
    assert hook.resolve("/abs/a.csv") == "/abs/a.csv"
    assert hook.resolve("s3://bucket/a.csv") == "s3://bucket/a.csv"
    assert DataHook().resolve("rel/a.csv") == "rel/a.csv"


@pytest.mark.parametrize("bad", ["", None])
def test_resolve_refuses_an_empty_uri(tmp_path, bad):
    with pytest.raises(DataError, match="non-empty"):
        DataHook(base_dir=str(tmp_path)).resolve(bad)


def test_read_csv_and_parquet_relative_to_base_dir(tmp_path, frame):
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    hook = DataHook(base_dir=str(tmp_path))
    pd.testing.assert_frame_equal(hook.read_frame("data.csv"), frame)
    pd.testing.assert_frame_equal(hook.read_frame("data.parquet"), frame)
    assert list(hook.read_frame("data.parquet", columns=["x"]).columns) == ["x"]


def test_read_a_glob_concatenates_every_file(tmp_path, frame):
    folder = tmp_path / "batches"
    folder.mkdir()
    frame.iloc[:2].to_csv(folder / "part-1.csv", index=False)
    frame.iloc[2:].to_csv(folder / "part-2.csv", index=False)
    read = DataHook(base_dir=str(tmp_path)).read_frame("batches/*.csv")
    assert len(read) == 3
    assert sorted(read["id"]) == [1, 2, 3]


def test_read_missing_file_is_a_data_error_naming_the_path(tmp_path):
    hook = DataHook(base_dir=str(tmp_path))
    with pytest.raises(DataError) as raised:
        hook.read_frame("nowhere/missing.csv")
    assert isinstance(raised.value, AirflowFailException)  # not retried
    assert str(tmp_path / "nowhere" / "missing.csv") in str(raised.value)


def test_read_a_glob_matching_nothing_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no file matches"):
        DataHook(base_dir=str(tmp_path)).read_frame("empty-*.parquet")


def test_read_bytes_missing_is_a_data_error_naming_the_path(tmp_path):
    with pytest.raises(DataError, match="suite.json"):
        DataHook(base_dir=str(tmp_path)).read_bytes("suite.json")


def test_write_frame_is_atomic_and_overwrites_in_place(tmp_path, frame):
    hook = DataHook(base_dir=str(tmp_path))
    written = hook.write_frame(frame, "out/predictions.parquet")
    assert written == str(tmp_path / "out" / "predictions.parquet")
    assert os.listdir(tmp_path / "out") == ["predictions.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(written), frame)

    newer = frame.assign(x=frame["x"] * 10)
    hook.write_frame(newer, "out/predictions.parquet")
    assert os.listdir(tmp_path / "out") == ["predictions.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(written), newer)


def test_write_frame_csv_by_suffix(tmp_path, frame):
    written = DataHook(base_dir=str(tmp_path)).write_frame(frame, "out.csv")
    assert Path(written).read_text().splitlines()[0] == "id,x,label"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_write_bytes_read_bytes_round_trip(tmp_path):
    hook = DataHook(base_dir=str(tmp_path))
    payload = bytes(range(256)) * 10
    written = hook.write_bytes(payload, "records/blob.bin")
    assert Path(written) == tmp_path / "records" / "blob.bin"
    assert hook.read_bytes("records/blob.bin") == payload
    assert os.listdir(tmp_path / "records") == ["blob.bin"]


def test_signature_absent_then_changes_with_the_data(tmp_path, frame):
    hook = DataHook(base_dir=str(tmp_path))
    assert hook.signature("incoming.csv") is None
    hook.write_frame(frame, "incoming.csv")
    first = hook.signature("incoming.csv")
    assert first is not None
    assert hook.signature("incoming.csv") == first  # stable while nothing changes
    hook.write_frame(pd.concat([frame, frame]), "incoming.csv")
    assert hook.signature("incoming.csv") not in (None, first)


def test_signature_of_a_glob_changes_when_a_file_arrives(tmp_path, frame):
    hook = DataHook(base_dir=str(tmp_path))
    assert hook.signature("batches/*.csv") is None
    hook.write_frame(frame, "batches/1.csv")
    one = hook.signature("batches/*.csv")
    hook.write_frame(frame, "batches/2.csv")
    assert hook.signature("batches/*.csv") not in (None, one)


def test_fingerprint_ignores_the_row_index_but_not_the_values(frame):
    shuffled_index = frame.set_axis([10, 20, 30])
    assert DataHook.fingerprint(shuffled_index) == DataHook.fingerprint(frame)
    assert DataHook.fingerprint(frame.reset_index(drop=True)) == DataHook.fingerprint(frame)
    changed = frame.copy()
    changed.loc[0, "x"] = 0.25
    assert DataHook.fingerprint(changed) != DataHook.fingerprint(frame)
    assert DataHook.fingerprint(frame.astype({"id": "float64"})) != DataHook.fingerprint(frame)
    assert DataHook.fingerprint(frame.rename(columns={"x": "y"})) != DataHook.fingerprint(frame)
