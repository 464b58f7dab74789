"""ValidateDataOperator on small frames with real Great Expectations: arguments, missing inputs, reports."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.exceptions import DataError
from mlops_provider.hooks.data import DataHook
from mlops_provider.operators import validation as module
from mlops_provider.operators.validation import REPORT_NAME, RESULT_NAME, ValidateDataOperator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DAG_ID, RUN_ID, TASK_ID = "tiny_retrain", "manual__2025-01-02T03:04:05+00:00", "validate"
# run_prefix's lossless folder names: every byte outside [A-Za-z0-9_-] percent-encoded
PREFIX = ("tiny_retrain", "manual__2025-01-02T03%3A04%3A05%2B00%3A00", "validate")

SUITE = {
    "name": "tiny",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "x", "min_value": 0, "max_value": 10},
        },
    ],
}


class RecordingTI:
    """The slice of a RuntimeTaskInstance that ``execute`` uses; records XCom pushes."""

    dag_id, run_id, task_id = DAG_ID, RUN_ID, TASK_ID

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value, allow_nan=False)
        self.xcom[key] = value


def run(op: ValidateDataOperator) -> tuple[dict[str, Any] | None, RecordingTI, Exception | None]:
    ti = RecordingTI()
    try:
        return op.execute({"ti": ti}), ti, None  # type: ignore[arg-type]
    except Exception as err:  # the test asserts on it
        return None, ti, err


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Small CSVs and the suite JSON; reports go under ``tmp_path/reports`` (the reports root)."""
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"x": [1, 2, 3, 4], "y": ["a", "b", "c", "d"]}).to_csv(data / "good.csv", index=False)
    pd.DataFrame({"x": [1.0, None, 30.0, 4.0], "y": ["a", "b", "c", "d"]}).to_csv(
        data / "bad.csv", index=False
    )
    (data / "suite.json").write_text(json.dumps(SUITE))
    return data


def operator(folder: Path, **kwargs: Any) -> ValidateDataOperator:
    args: dict[str, Any] = {
        "task_id": TASK_ID,
        "data_uri": "good.csv",
        "suite": "suite.json",
        "base_dir": str(folder),
    }
    return ValidateDataOperator(**{**args, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"on_failure": "ignore"}, "on_failure='ignore'"),
        ({"on_failure": "FAIL"}, "on_failure='FAIL'"),
        ({"max_unexpected_values": -1}, "max_unexpected_values"),
        ({"max_unexpected_values": True}, "max_unexpected_values"),
        ({"max_unexpected_values": "5"}, "max_unexpected_values"),
    ],
)
def test_bad_arguments_fail_naming_the_argument(
    folder: Path, tmp_path: Path, kwargs: dict[str, Any], fragment: str
) -> None:
    _, ti, err = run(operator(folder, **kwargs))
    assert isinstance(err, ValueError)
    assert fragment in str(err)
    assert TASK_ID in str(err)
    assert ti.xcom == {}
    assert not (tmp_path / "reports").exists()  # checked before reading or writing anything


def test_missing_data_file_fails_without_retry_naming_the_path(folder: Path, tmp_path: Path) -> None:
    _, ti, err = run(operator(folder, data_uri="absent.csv", retries=3))
    assert isinstance(err, DataError)
    assert isinstance(err, AirflowFailException)  # no retry
    assert str(folder / "absent.csv") in str(err)
    assert ti.xcom == {}


def test_missing_suite_file_fails_without_retry_naming_the_path(folder: Path, tmp_path: Path) -> None:
    _, _, err = run(operator(folder, suite="nowhere/suite.json"))
    assert isinstance(err, AirflowFailException)
    assert str(folder / "nowhere" / "suite.json") in str(err)
    assert "expectation suite" in str(err)


def test_invalid_suite_fails_without_retry_naming_the_expectation(folder: Path, tmp_path: Path) -> None:
    suite = {"name": "typo", "expectations": [{"type": "expect_column_to_exits", "kwargs": {"column": "x"}}]}
    _, _, err = run(operator(folder, suite=suite))
    assert isinstance(err, AirflowFailException)
    assert "Invalid expectation suite" in str(err)
    assert "expectation #0 'expect_column_to_exits' (column 'x'): unknown expectation type" in str(err)


def test_reports_go_through_the_data_hook_under_the_run_prefix(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    original = DataHook.write_bytes

    def spy(self: DataHook, data: bytes, uri: str) -> str:
        written.append(uri)
        return original(self, data, uri)

    monkeypatch.setattr(DataHook, "write_bytes", spy)
    summary, ti, err = run(operator(folder))
    assert err is None, err
    assert summary is not None
    prefix = tmp_path.joinpath("reports", *PREFIX)
    assert sorted(written) == sorted([str(prefix / RESULT_NAME), str(prefix / REPORT_NAME)])
    assert summary["report_uri"] == str(prefix / REPORT_NAME)
    assert summary["result_uri"] == str(prefix / RESULT_NAME)
    assert (summary["success"], summary["status"], summary["rows"], summary["evaluated"]) == (
        True,
        "passed",
        4,
        2,
    )
    assert json.loads((prefix / RESULT_NAME).read_text())["validation_result"]["success"] is True
    assert "PASSED" in (prefix / REPORT_NAME).read_text()
    assert sorted(p.name for p in prefix.iterdir()) == [REPORT_NAME, RESULT_NAME]  # no temporary leftovers
    # the URL encodes the folder names once more ("%" -> "%25")
    url_prefix = "/".join(part.replace("%", "%25") for part in PREFIX)
    assert ti.xcom["validation_report_url"] == f"/mlops/reports/{url_prefix}/{REPORT_NAME}"

    written.clear()  # an explicit reports_uri is a root of its own
    summary, _, err = run(operator(folder, reports_uri=str(tmp_path / "elsewhere")))
    assert err is None, err
    assert summary is not None
    other = tmp_path.joinpath("elsewhere", *PREFIX)
    assert sorted(written) == sorted([str(other / RESULT_NAME), str(other / REPORT_NAME)])
    assert summary["report_uri"] == str(other / REPORT_NAME)


def test_failed_expectations_fail_without_retry_after_pushing_the_summary(
    folder: Path, tmp_path: Path
) -> None:
    _, ti, err = run(operator(folder, data_uri="bad.csv", retries=2))
    assert isinstance(err, AirflowFailException)
    assert "expect_column_values_to_not_be_null on column 'x': 1 unexpected value(s)" in str(err)
    assert "expect_column_values_to_be_between on column 'x': 1 unexpected value(s), e.g. [30.0]" in str(err)
    summary = ti.xcom["return_value"]
    assert (summary["success"], summary["status"], summary["failed"]) == (False, "failed", 2)
    assert Path(summary["report_uri"]).is_file()


def test_warn_succeeds_and_reports_what_failed(folder: Path, tmp_path: Path) -> None:
    summary, _, err = run(operator(folder, data_uri="bad.csv", on_failure="warn"))
    assert err is None, err
    assert summary is not None
    assert (summary["success"], summary["status"], summary["failed"]) == (False, "warned", 2)


def test_the_operator_builds_no_filesystem_and_reads_no_file_itself() -> None:
    source = inspect.getsource(module)
    for forbidden in ("filesystem_for", "ObjectStoragePath", "mlops_provider.core.data", "open("):
        assert forbidden not in source, forbidden
