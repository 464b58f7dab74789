"""Streaming reads and part writes (core.data_stream) and published folders (core.manifest, core.data.expand)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core import data as core_data
from mlops_provider.core import data_parts, data_stream, manifest
from mlops_provider.core.errors import DataError, NoDataError


def frame(rows: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + rows)
    return pd.DataFrame({"id": ids, "x": ids * 0.5, "city": np.where(ids % 2 == 0, "north", "south")})


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    paths = []
    for i, rows in enumerate((250, 0, 130)):
        path = tmp_path / f"in-{i}.parquet"
        frame(rows, start=1000 * i).to_parquet(path, row_group_size=40)
        paths.append(str(path))
    path = tmp_path / "in-3.csv"
    frame(75, start=3000).to_csv(path, index=False)
    return [*paths, str(path)]


def test_every_row_in_order_in_batches_no_larger_than_asked(files: list[str]) -> None:
    chunks = list(data_stream.iter_frames(files, batch_rows=100))
    assert all(len(c) <= 100 for c in chunks)
    got = pd.concat(chunks, ignore_index=True)
    expected = pd.concat([pd.read_parquet(f) for f in files[:3]] + [pd.read_csv(files[3])], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected)
    # small row groups are gathered into full batches, not one tiny predict call per row group
    assert len(chunks[0]) == 100


def test_columns_are_read_alone_and_a_file_lacking_one_is_named(files: list[str], tmp_path: Path) -> None:
    only = pd.concat(data_stream.iter_frames(files, columns=["x"], batch_rows=64))
    assert list(only.columns) == ["x"]
    assert len(only) == 455
    lacking = tmp_path / "lacking.parquet"
    frame(5).drop(columns=["x"]).to_parquet(lacking)
    with pytest.raises(DataError, match=r"lacking\.parquet: missing column\(s\) 'x'"):
        list(data_stream.iter_frames([files[0], str(lacking)], columns=["id", "x"]))
    with pytest.raises(DataError, match=r"lacking\.parquet: columns differ .*missing: \['x'\]"):
        list(data_stream.iter_frames([files[0], str(lacking)]))  # without columns: the first file's
    extra = tmp_path / "extra.csv"
    frame(5).assign(y=1).to_csv(extra, index=False)
    with pytest.raises(DataError, match=r"extra\.csv: columns differ .*extra: \['y'\]"):
        list(data_stream.iter_frames([files[0], str(extra)]))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.parquet", b"PAR1 not really", "not a readable Parquet file"),
        ("empty.csv", b"", "the file is empty"),
        ("latin.csv", "id,x\n1,caf\xe9\n".encode("latin-1"), "not UTF-8"),
        ("dup.csv", b"id,id\n1,2\n", "duplicate column name"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        list(data_stream.iter_frames([str(path)]))
    assert name in str(err.value)


def test_row_counts_and_columns_without_reading_rows(files: list[str]) -> None:
    assert [data_stream.count_rows(f) for f in files] == [250, 0, 130, 75]
    assert data_stream.columns_of(files[0]) == ["id", "x", "city"] == data_stream.columns_of(files[3])


def test_parts_are_invisible_until_a_manifest_lists_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    parts = data_parts.ParquetParts(str(out), None, "part-00000-abc", rows_per_file=100)
    for start in (0, 80, 160):
        parts.write(frame(80, start))  # a part is full from 100 rows: 160 in the first, 80 in the next
    names = parts.close()
    assert names == [
        "part-00000-abc-00000.mlops.parquet",
        "part-00000-abc-00001.mlops.parquet",
    ]
    stale = frame(3, 9000)
    stale.to_parquet(out / "part-old-run-00000.mlops.parquet")
    # scoring parts and no manifest: an output not published yet, never half an output
    with pytest.raises(NoDataError, match="not published yet"):
        core_data.read_frame(str(out))
    (out / manifest.MANIFEST).write_bytes(manifest.manifest(names, rows=240, about={"run_id": "r"}))
    assert core_data.expand(str(out)) == [str(out / n) for n in names]
    assert len(core_data.read_frame(str(out))) == 240


def test_a_frame_of_other_types_starts_a_new_part(tmp_path: Path) -> None:
    parts = data_parts.ParquetParts(str(tmp_path), None, "part-x")
    parts.write(pd.DataFrame({"id": [1, 2]}))
    parts.write(pd.DataFrame({"id": [1.5, None]}))
    assert len(parts.close()) == 2


@pytest.mark.parametrize(
    "name", ["../escape.parquet", "/etc/passwd", "a/../../b.parquet", "", 7, "a b.parquet"]
)
def test_a_manifest_naming_a_file_outside_its_folder_is_refused(tmp_path: Path, name: object) -> None:
    (tmp_path / manifest.MANIFEST).write_text(json.dumps({"files": [name]}))
    with pytest.raises(DataError, match="not a file name inside the folder"):
        core_data.expand(str(tmp_path))


def test_a_malformed_manifest_is_named(tmp_path: Path) -> None:
    (tmp_path / manifest.MANIFEST).write_text("{not json")
    with pytest.raises(DataError, match="_manifest.json: not a dataset manifest"):
        core_data.expand(str(tmp_path))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".csv.gz"])
def test_a_single_file_appears_whole_when_committed(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"scores{suffix}"
    writer = data_parts.SingleFile(str(target), None)
    writer.write(frame(10))
    writer.write(frame(5, 10))
    assert not target.exists()
    assert writer.commit() == str(target)
    got = core_data.read_frame(str(target))
    pd.testing.assert_frame_equal(got, frame(15), check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_discarded_single_file_leaves_nothing(tmp_path: Path) -> None:
    writer = data_parts.SingleFile(str(tmp_path / "s.parquet"), None)
    writer.write(frame(3))
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_parquet_file_refuses_a_column_changing_type(tmp_path: Path) -> None:
    writer = data_parts.SingleFile(str(tmp_path / "s.parquet"), None)
    writer.write(pd.DataFrame({"id": [1, 2]}))
    with pytest.raises(DataError, match=r"'id' change type"):
        writer.write(pd.DataFrame({"id": ["a", "b"]}))
    writer.discard()


def test_groups_cover_files_in_order_with_row_offsets() -> None:
    groups = manifest.make_groups(["a", "b", "c", "d", "e"], [10, 0, 5, 7, 1], 2)
    assert [(g.files, g.row_offset, g.rows) for g in groups] == [
        (["a", "b"], 0, 10),
        (["c", "d"], 10, 12),
        (["e"], 22, 1),
    ]


def test_publishing_refuses_parts_of_another_plan_or_version() -> None:
    plan = manifest.Plan("p1", "m", "src", {"champion": "3"}, manifest.make_groups(["a", "b"], [4, 6], 1))

    def result(group: int, rows: int, plan_id: str = "p1", version: str = "3") -> manifest.GroupResult:
        files = {"champion": [f"part-{manifest.group_name(group)}-a-00000.mlops.parquet"]}
        return manifest.GroupResult(plan_id, group, {"champion": version}, rows, files)

    ok = {0: result(0, 4), 1: result(1, 6)}
    manifest.check_results(plan, ok, "champion")
    cases = {
        "group 00001 wrote no part": {**ok, 1: None},
        "from another run": {**ok, 1: result(1, 6, plan_id="p0")},
        "scored by version 2, not 3": {**ok, 1: result(1, 6, version="2")},
        "scored 5 rows, its files hold 6": {**ok, 1: result(1, 5)},
    }
    for message, results in cases.items():
        with pytest.raises(DataError, match=message):
            manifest.check_results(plan, results, "champion")


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'{"plan_id": "p"}',
        b'{"plan_id": "p", "group": 0, "versions": {}, "rows": 1, "files": {"champion": ["../x.parquet"]}}',
    ],
)
def test_hostile_group_records_are_refused(payload: bytes) -> None:
    with pytest.raises(DataError):
        manifest.GroupResult.from_json(payload, "_parts/00000.json")


def test_a_users_own_part_files_are_data(tmp_path: Path) -> None:
    # Spark and pyarrow name their files part-*.parquet: only the provider's own parts need a manifest
    frame(3).to_parquet(tmp_path / "part-00000-5f1c.parquet")
    frame(2).to_parquet(tmp_path / "part-00001-5f1c-c000.snappy.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    assert len(core_data.read_frame(str(tmp_path))) == 5
