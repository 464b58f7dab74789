"""DataHook.read_sample and count_rows: URIs resolved and expanded like read_frame, errors as Airflow
outcomes (bad data fails without retry, data changing under the read is retried)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.exceptions import DataError, DataUnavailableError, InvalidInputError
from mlops_provider.hooks.data import DataHook


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    batches = tmp_path / "batches"
    batches.mkdir()
    for i in range(3):
        ids = np.arange(i * 300, (i + 1) * 300)
        pd.DataFrame({"id": ids, "x": ids / 10}).to_csv(batches / f"day-{i}.csv", index=False)
    return tmp_path


def test_a_relative_glob_is_resolved_counted_and_sampled(folder: Path) -> None:
    hook = DataHook(base_dir=str(folder))
    assert hook.count_rows("batches/*.csv") == 900
    sample, total = hook.read_sample("batches/*.csv", max_rows=100, seed=4)
    assert (len(sample), total) == (100, 900)
    again, _ = hook.read_sample(str(folder / "batches"), max_rows=100, seed=4)  # the folder: same files
    pd.testing.assert_frame_equal(sample, again)
    whole, total = hook.read_sample("batches/*.csv", max_rows=900)
    pd.testing.assert_frame_equal(whole, hook.read_frame("batches/*.csv"))
    assert hook.fingerprint(whole) == hook.fingerprint(hook.read_frame("batches/*.csv"))


def test_missing_data_fails_without_retry_naming_the_path(folder: Path) -> None:
    hook = DataHook(base_dir=str(folder))
    with pytest.raises(DataError, match=str(folder / "nowhere.csv")) as raised:
        hook.read_sample("nowhere.csv", max_rows=10)
    assert isinstance(raised.value, AirflowFailException)
    with pytest.raises(DataError, match="nowhere.csv"):
        hook.count_rows("nowhere.csv")


def test_a_bad_limit_fails_without_retry_naming_it(folder: Path) -> None:
    with pytest.raises(InvalidInputError, match="max_rows must be a whole number") as raised:
        DataHook(base_dir=str(folder)).read_sample("batches/*.csv", max_rows=0)
    assert isinstance(raised.value, AirflowFailException)


def test_data_that_changed_since_it_was_counted_is_retried(folder: Path) -> None:
    with pytest.raises(DataUnavailableError, match="900 rows read but 950 counted") as raised:
        DataHook(base_dir=str(folder)).read_sample("batches/*.csv", max_rows=100, total=950)
    assert not isinstance(raised.value, AirflowFailException)
