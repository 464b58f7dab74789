"""ValidateDataOperator: real GX on palmerpenguins; one real dag.test() run of a failing DAG.

``dag.test()`` in Airflow 3.3 syncs the DAG bundle (the DAGs folder) to the metadata DB and refuses to
create a run for a DAG it did not find there ("the dag is not serialized"); the tasks themselves then
run in-process from the in-memory DAG. So :func:`dag_file` writes the test's DAG into a private DAGs
folder (``settings.DAGS_FOLDER`` and ``AIRFLOW__CORE__DAGS_FOLDER`` point at ``tmp_path``), imports it
and returns the DAG object: the bundle walk parses one small file, not the repository's ``dags/``.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import palmerpenguins
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.exceptions import DataError
from mlops_provider.operators.validation import REPORT_NAME, RESULT_NAME, ValidateDataOperator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

COLUMNS = [
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]


def penguin_suite() -> dict[str, Any]:
    """A GX 1.x suite that the clean penguins data passes (9 expectations)."""
    between = "expect_column_values_to_be_between"
    return {
        "name": "penguins",
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": COLUMNS}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "species"}},
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "species", "value_set": ["Adelie", "Chinstrap", "Gentoo"]},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "island", "value_set": ["Biscoe", "Dream", "Torgersen"]},
            },
            {"type": between, "kwargs": {"column": "body_mass_g", "min_value": 2500, "max_value": 6500}},
            {"type": between, "kwargs": {"column": "bill_length_mm", "min_value": 30, "max_value": 60}},
            {
                "type": "expect_column_values_to_be_in_type_list",
                "kwargs": {"column": "year", "type_list": ["int64"]},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "year"}},
        ],
    }


def corrupted(frame: pd.DataFrame) -> pd.DataFrame:
    """Nulls in a required column, out-of-range values, a missing column and a wrong dtype."""
    bad = frame.copy()
    bad.loc[bad.index[:7], "species"] = None
    bad.loc[bad.index[10:13], "body_mass_g"] = 99999.0
    bad["year"] = bad["year"].astype(str).str.replace("2007", "two thousand seven")
    return bad.drop(columns=["island"])


class RecordingTI:
    """The slice of a RuntimeTaskInstance that ``execute`` uses; records XCom pushes."""

    def __init__(self, task_id: str) -> None:
        self.dag_id, self.run_id, self.task_id = (
            "penguins_retrain",
            "manual__2024-06-01T02:00:00+00:00",
            task_id,
        )
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value, allow_nan=False)  # XCom carries strict, small JSON
        self.xcom[key] = value


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Clean and corrupted penguins CSVs and the suite JSON in one folder; reports under tmp_path."""
    folder = tmp_path / "data"
    folder.mkdir()
    penguins = palmerpenguins.load_penguins()
    penguins.to_csv(folder / "penguins.csv", index=False)
    corrupted(penguins).to_csv(folder / "corrupted.csv", index=False)
    (folder / "suite.json").write_text(json.dumps(penguin_suite(), indent=1))
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    return folder


def run(operator: ValidateDataOperator) -> tuple[dict[str, Any] | None, RecordingTI, Exception | None]:
    ti = RecordingTI(operator.task_id)
    try:
        return operator.execute({"ti": ti}), ti, None  # type: ignore[arg-type]
    except Exception as err:  # the caller asserts on it
        return None, ti, err


def test_clean_data_passes_and_writes_reports(data: Path, tmp_path: Path) -> None:
    op = ValidateDataOperator(
        task_id="validate", data_uri="penguins.csv", suite="suite.json", base_dir=str(data)
    )
    summary, ti, err = run(op)
    assert err is None
    assert summary is not None
    assert summary["success"] is True
    assert summary["status"] == "passed"
    assert (summary["rows"], summary["evaluated"], summary["failed"]) == (344, 9, 0)
    run_folder = "manual__2024-06-01T02%3A00%3A00%2B00%3A00"  # lossless: ':' and '+' percent-encoded
    prefix = tmp_path / "reports" / "penguins_retrain" / run_folder / "validate"
    assert summary["report_uri"] == str(prefix / REPORT_NAME)
    assert summary["result_uri"] == str(prefix / RESULT_NAME)
    assert json.loads((prefix / RESULT_NAME).read_text())["validation_result"]["success"] is True
    assert "PASSED" in (prefix / REPORT_NAME).read_text()
    assert ti.xcom["validation_report_url"] == (
        "/mlops/reports/penguins_retrain/manual__2024-06-01T02%253A00%253A00%252B00%253A00/validate/"
        "validation_report.html"
    )
    # a retry writes the same files again (atomically), no leftovers
    run(op)
    assert sorted(p.name for p in prefix.iterdir()) == [REPORT_NAME, RESULT_NAME]


def test_corrupted_batch_fails_without_retry_after_pushing_the_summary(data: Path) -> None:
    op = ValidateDataOperator(
        task_id="validate", data_uri="corrupted.csv", suite="suite.json", base_dir=str(data), retries=3
    )
    _, ti, err = run(op)
    assert isinstance(err, AirflowFailException)  # no retry
    for fragment in (
        "expect_column_values_to_not_be_null on column 'species': 7 unexpected value(s)",
        "expect_column_values_to_be_between on column 'body_mass_g': 3 unexpected value(s)",
        "expect_column_values_to_be_in_set on column 'island': missing column(s) 'island'",
        "expect_column_values_to_be_in_type_list on column 'year'",
    ):
        assert fragment in str(err)
    summary = ti.xcom["return_value"]
    assert summary["success"] is False
    assert summary["status"] == "failed"
    assert summary["failed"] == 5
    assert {f["column"] for f in summary["failed_expectations"]} >= {
        "species",
        "body_mass_g",
        "island",
        "year",
    }
    assert Path(summary["report_uri"]).is_file()


def test_warn_succeeds_and_reports_what_failed(data: Path) -> None:
    suite = penguin_suite()  # a dict suite works too
    op = ValidateDataOperator(
        task_id="validate", data_uri=str(data / "corrupted.csv"), suite=suite, on_failure="warn"
    )
    summary, _, err = run(op)
    assert err is None
    assert summary is not None
    assert (summary["success"], summary["status"], summary["failed"]) == (False, "warned", 5)


def test_header_only_csv_fails(data: Path) -> None:
    (data / "empty.csv").write_text((data / "penguins.csv").read_text().splitlines()[0] + "\n")
    op = ValidateDataOperator(
        task_id="validate", data_uri="empty.csv", suite="suite.json", base_dir=str(data)
    )
    _, ti, err = run(op)
    assert isinstance(err, AirflowFailException)
    assert f"dataset {data / 'empty.csv'} has 0 rows" in str(err)
    assert ti.xcom["return_value"]["error"] == f"dataset {data / 'empty.csv'} has 0 rows"
    assert ti.xcom["return_value"]["rows"] == 0


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (
            {"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "year", "min_value": 2000}},
            "expectation #9 'expect_column_values_to_be_betwen' (column 'year'): unknown expectation type",
        ),
        (
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "year", "min_value": "soon"}},
            "expectation #9 'expect_column_values_to_be_between' (column 'year'): invalid argument(s): min_value",
        ),
    ],
)
def test_invalid_suite_fails_naming_the_expectation(data: Path, bad: dict[str, Any], fragment: str) -> None:
    suite = penguin_suite()
    suite["expectations"].append(bad)
    (data / "bad_suite.json").write_text(json.dumps(suite))
    op = ValidateDataOperator(
        task_id="validate", data_uri="penguins.csv", suite="bad_suite.json", base_dir=str(data)
    )
    _, _, err = run(op)
    assert isinstance(err, AirflowFailException)
    assert str(data / "bad_suite.json") in str(err)
    assert fragment in str(err)


def test_parquet_and_csv_glob(data: Path) -> None:
    penguins = pd.read_csv(data / "penguins.csv")
    penguins.to_parquet(data / "penguins.parquet", index=False)
    for year, part in penguins.groupby("year"):
        part.to_csv(data / f"batch-{year}.csv", index=False)
    for uri in ("penguins.parquet", f"file://{data}/batch-*.csv"):
        op = ValidateDataOperator(task_id="validate", data_uri=uri, suite="suite.json", base_dir=str(data))
        summary, _, err = run(op)
        assert err is None, err
        assert summary is not None
        assert (summary["success"], summary["rows"]) == (True, 344)


def test_unreadable_data_names_the_uri_and_column(data: Path) -> None:
    (data / "latin1.csv").write_bytes("species,island\nAdélie,Biscoe\n".encode("latin-1"))
    (data / "dup.csv").write_text("species,island,species\nAdelie,Biscoe,Adelie\n")
    cases = {
        "latin1.csv": f"{data / 'latin1.csv'}: not UTF-8",
        "dup.csv": f"{data / 'dup.csv'}: duplicate column name(s) 'species'",
        "nothing-*.csv": f"{data / 'nothing-*.csv'}: no file matches this pattern",
    }
    for uri, message in cases.items():
        op = ValidateDataOperator(task_id="validate", data_uri=uri, suite="suite.json", base_dir=str(data))
        _, ti, err = run(op)
        assert isinstance(err, DataError), err  # an AirflowFailException: no retry
        assert message in str(err)
        assert "return_value" not in ti.xcom


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"on_failure": "ignore"}, "on_failure='ignore'"),
        ({"max_unexpected_values": -1}, "max_unexpected_values"),
    ],
)
def test_bad_arguments_raise_value_error(data: Path, kwargs: dict[str, Any], fragment: str) -> None:
    op = ValidateDataOperator(task_id="validate", data_uri="penguins.csv", suite="suite.json", **kwargs)
    _, _, err = run(op)
    assert isinstance(err, ValueError)
    assert fragment in str(err)


def test_template_fields_name_real_attributes() -> None:
    op = ValidateDataOperator(task_id="validate", data_uri="x.csv", suite={})
    for name in op.template_fields:
        assert hasattr(op, name), name
    assert {"data_uri", "suite", "data_conn_id", "reports_uri"} <= set(op.template_fields)


# -- one real DAG run ----------------------------------------------------------------------------------
@pytest.fixture
def dag_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Callable[[str], Any]:
    """Write DAG source into a private DAGs folder, import it and return its ``dag`` (see module doc)."""
    from airflow import settings

    folder = tmp_path / "dags"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))

    def load(source: str, name: str = "test_dag.py") -> Any:
        path = folder / name
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(f"dagfile_{tmp_path.name}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.dag

    return load


def test_dag_run_stops_at_a_corrupted_batch(data: Path, dag_file: Callable[[str], Any]) -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = dag_file(
        f"""
        from airflow.providers.standard.operators.empty import EmptyOperator
        from airflow.sdk import DAG

        from mlops_provider.operators.validation import ValidateDataOperator

        with DAG("validation_probe", schedule=None, catchup=False) as dag:
            validate = ValidateDataOperator(
                task_id="validate", data_uri="corrupted.csv", suite="suite.json", base_dir={str(data)!r}, retries=2
            )
            validate >> EmptyOperator(task_id="train")
        """
    )
    dag_run = dag.test()
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states == {"validate": "failed", "train": "upstream_failed"}
    assert dag_run.state == "failed"

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == "validation_probe",
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == "validate",
            )
        ).all()
        xcoms = {row.key: XComModel.deserialize_value(row) for row in rows}
    summary = xcoms["return_value"]
    assert summary["success"] is False
    assert summary["failed"] == 5
    assert summary["data_uri"] == str(data / "corrupted.csv")
    assert Path(summary["report_uri"]).is_file()
    assert xcoms["validation_report_url"].startswith("/mlops/reports/validation_probe/")
    assert len(json.dumps(summary)) < 4000
