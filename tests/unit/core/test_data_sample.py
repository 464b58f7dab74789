"""Deterministic row samples of files (core.data_sample): which rows, how many, independent of the batch
size and of how the data is split into files, every row at or below the limit, memory bounded."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core import data as core_data
from mlops_provider.core import data_sample
from mlops_provider.core.data_sample import check_max_rows, read_sample, sample_positions
from mlops_provider.core.errors import DataUnavailableError, InvalidInputError


def frame(rows: int, start: int = 0) -> pd.DataFrame:
    ids = np.arange(start, start + rows)
    return pd.DataFrame(
        {"id": ids, "x": ids * 0.25, "city": np.where(ids % 3 == 0, "north", "south"), "n": ids % 7}
    )


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    """1,000 rows in three Parquet files (small row groups, one empty file) and a CSV."""
    paths = []
    for i, (start, rows) in enumerate(((0, 400), (400, 0), (400, 350))):
        path = tmp_path / f"part-{i}.parquet"
        frame(rows, start).to_parquet(path, row_group_size=64)
        paths.append(str(path))
    csv = tmp_path / "part-3.csv"
    frame(250, 750).to_csv(csv, index=False)
    return [*paths, str(csv)]


# -- the row numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize(("total", "size"), [(1000, 10), (1000, 499), (1000, 500), (1000, 999), (10**12, 50)])
def test_positions_are_distinct_sorted_in_range_and_exactly_as_many_as_asked(total: int, size: int) -> None:
    positions = sample_positions(total, size, seed=3)
    assert positions.dtype == np.int64
    assert positions.size == size
    assert (np.diff(positions) > 0).all()
    assert positions[0] >= 0
    assert positions[-1] < total


def test_positions_depend_on_the_seed_only() -> None:
    first = sample_positions(10**6, 1000, seed=7)
    assert np.array_equal(first, sample_positions(10**6, 1000, seed=7))
    assert not np.array_equal(first, sample_positions(10**6, 1000, seed=8))
    assert np.array_equal(sample_positions(50, 80, seed=1), np.arange(50))  # at or below: every row


@pytest.mark.parametrize("size", [3, 7])  # the sparse draw and the dense one
def test_every_row_is_equally_likely(size: int) -> None:
    hits = np.zeros(10)
    seeds = 6000
    for seed in range(seeds):
        hits[sample_positions(10, size, seed)] += 1
    share = hits / seeds
    assert np.allclose(share, size / 10, atol=0.03), share


# -- the rows ---------------------------------------------------------------------------------------
def test_at_or_below_the_limit_every_row_as_read_frame_reads_it(files: list[str]) -> None:
    whole = pd.concat([core_data.read_frame(f) for f in files], ignore_index=True)
    for limit in (1000, 5000, None):
        got, total = read_sample(files, None, limit)
        assert total == 1000
        pd.testing.assert_frame_equal(got, whole)
        assert core_data.fingerprint(got) == core_data.fingerprint(whole)
    single = files[0]
    got, total = read_sample([single], None, 400)
    assert total == 400
    assert core_data.fingerprint(got) == core_data.fingerprint(core_data.read_frame(single))


def test_above_the_limit_the_rows_at_the_seeded_positions(files: list[str]) -> None:
    whole = pd.concat([core_data.read_frame(f) for f in files], ignore_index=True)
    got, total = read_sample(files, None, 120, seed=5)
    assert total == 1000
    assert len(got) == 120
    assert list(got.index) == list(range(120))
    expected = whole.iloc[sample_positions(1000, 120, 5)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got["id"].is_monotonic_increasing  # file order kept


def test_the_sample_does_not_depend_on_the_batch_size_or_the_file_split(
    files: list[str], tmp_path: Path
) -> None:
    parquet_only = files[:3]
    one = tmp_path / "one.parquet"
    pd.concat([pd.read_parquet(f) for f in parquet_only], ignore_index=True).to_parquet(one)
    samples = [read_sample(parquet_only, None, 90, seed=11, batch_rows=b)[0] for b in (1, 7, 64, 100_000)]
    samples.append(read_sample([str(one)], None, 90, seed=11, batch_rows=33)[0])
    for other in samples[1:]:
        pd.testing.assert_frame_equal(other, samples[0])
    assert not read_sample(parquet_only, None, 90, seed=12)[0].equals(samples[0])


def test_columns_are_read_alone(files: list[str]) -> None:
    got, total = read_sample(files, None, 100, columns=["x", "id"])
    assert list(got.columns) == ["x", "id"]
    assert (got["x"] == got["id"] * 0.25).all()
    assert total == 1000


def test_a_count_that_no_longer_matches_the_data_is_a_retryable_error(files: list[str]) -> None:
    with pytest.raises(
        DataUnavailableError, match=r"part-0\.parquet and 3 more file\(s\): 1000 rows read but 1200"
    ):
        read_sample(files, None, 100, total=1200)


def test_a_small_csv_is_read_once_and_a_large_one_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[str] = []
    real = data_sample.count_rows

    def counting(path: str, fs: object = None) -> int:
        counted.append(Path(path).name)
        return real(path, fs)

    monkeypatch.setattr(data_sample, "count_rows", counting)
    small = tmp_path / "small.csv"
    frame(50).to_csv(small, index=False)
    got, total = read_sample([str(small)], None, 1000)
    assert (len(got), total, counted) == (50, 50, [])  # 50 rows cannot fill 1,000 bytes / 2
    zipped = tmp_path / "small.csv.gz"
    frame(50).to_csv(zipped, index=False)
    got, total = read_sample([str(zipped)], None, 1000)
    assert (len(got), total, counted) == (50, 50, ["small.csv.gz"])  # gzip: size says nothing


@pytest.mark.parametrize("value", [0, -5, True, 2.5, "many", "", 10**10, [100]])
def test_hostile_limits_are_refused_naming_the_argument(value: object) -> None:
    with pytest.raises(InvalidInputError, match=r"training\.max_rows must be a whole number"):
        check_max_rows(value, "training.max_rows")


def test_a_limit_may_be_rendered_template_digits_or_none() -> None:
    assert check_max_rows(" 300 ") == 300
    assert check_max_rows(None) is None
    assert check_max_rows(data_sample.MAX_ROWS_CEILING) == data_sample.MAX_ROWS_CEILING


def test_memory_is_bounded_by_the_sample_and_a_batch(tmp_path: Path) -> None:
    """1M rows x 4 float columns (32 MB as numpy) sampled to 2,000 rows in batches of 20,000: the numpy
    memory held at the peak stays far below the data (a whole read would hold all of it)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.parquet"
    pd.DataFrame(rng.normal(size=(1_000_000, 4)), columns=list("abcd")).to_parquet(
        path, row_group_size=50_000
    )
    tracemalloc.start()
    try:
        got, total = read_sample([str(path)], None, 2000, batch_rows=20_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(got), total) == (2000, 1_000_000)
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MB"
    tracemalloc.start()
    try:
        core_data.read_frame(str(path))
        _, whole_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert whole_peak > 30 * 2**20  # the measure sees a whole read: the bound above means something
