"""Validation of a batch in partitions: a plan of 3 files, ``ValidateDataOperator.partial(...).expand(...)``
and ``CombineValidationOperator`` run by real ``dag.test()`` on real GX and real CSV/Parquet files; hostile
plans and results through ``execute`` with a recording task instance.

See tests/integration/test_validation_operator.py for why the DAG file goes into a private DAGs folder.
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

from mlops_provider.core.manifest import Group, Plan
from mlops_provider.exceptions import DataError, InvalidInputError
from mlops_provider.operators.validation import (
    REPORT_NAME,
    RESULT_NAME,
    CombineValidationOperator,
    ValidateDataOperator,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

BETWEEN = "expect_column_values_to_be_between"


def suite(mostly: float | None = None) -> dict[str, Any]:
    """Row-level, row count (300..400: every partition of ~115 rows fails it alone), min/max and a mean."""
    bill: dict[str, Any] = {"column": "bill_length_mm", "min_value": 30, "max_value": 60}
    if mostly is not None:
        bill["mostly"] = mostly
    return {
        "name": "penguins",
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 300, "max_value": 400}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "species"}},
            {"type": BETWEEN, "kwargs": {"column": "body_mass_g", "min_value": 2500, "max_value": 6500}},
            {"type": BETWEEN, "kwargs": bill},
            {
                "type": "expect_column_max_to_be_between",
                "kwargs": {"column": "flipper_length_mm", "max_value": 240},
            },
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "body_mass_g", "min_value": 3000, "max_value": 6000},
            },
        ],
    }


@pytest.fixture
def batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The penguins split by year into three files (CSV, Parquet, CSV) in ``batch/``; reports under tmp_path."""
    folder = tmp_path / "batch"
    folder.mkdir()
    for i, (_, part) in enumerate(palmerpenguins.load_penguins().groupby("year")):
        if i == 1:
            part.to_parquet(folder / f"part-{i}.parquet", index=False)
        else:
            part.to_csv(folder / f"part-{i}.csv", index=False)
    (tmp_path / "suite.json").write_text(json.dumps(suite()))
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    return folder


def files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix in (".csv", ".parquet"))


def rows_of(path: str) -> int:
    if Path(path).parent.name != "batch" or not Path(path).is_file():
        return 1  # a hostile plan's file: never read here
    return len(pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path))


def plan_json(folder: Path, groups: list[list[str]] | None = None) -> str:
    """What a planning task writes for ``folder`` (one file per group unless ``groups``)."""
    chosen = groups or [[f] for f in files(folder)]
    rows = [sum(rows_of(f) for f in g) for g in chosen]
    plan_groups = [Group(i, g, sum(rows[:i]), rows[i]) for i, g in enumerate(chosen)]
    return Plan("plan-1", "penguins", str(folder), {}, plan_groups).to_json().decode()


def write_plan(folder: Path, out: Path, groups: list[list[str]] | None = None) -> str:
    """Write the plan to ``<out>/_parts/plan.json``; its path."""
    path = out / "_parts" / "plan.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan_json(folder, groups))
    return str(path)


# -- real DAG runs ---------------------------------------------------------------------------------------
@pytest.fixture
def dag_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Callable[[str], Any]:
    from airflow import settings

    folder = tmp_path / "dags"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(folder))

    def load(source: str) -> Any:
        path = folder / "partitions_dag.py"
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(f"dagfile_{tmp_path.name}", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.dag

    return load


def run_dag(
    dag_file: Callable[[str], Any],
    batch: Path,
    *,
    on_failure: str = "fail",
    expand: str = "plan.output",
    plan_groups: Any = None,
) -> tuple[dict[tuple[str, int], str], dict[tuple[str, int], dict[str, Any]]]:
    """Plan (a PythonOperator writing the plan JSON) >> mapped validation >> combine; run it with
    dag.test(). Returns task states and return values, by (task id, map index)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out = batch.parent / "scores"
    dag = dag_file(
        f"""
        from pathlib import Path

        from airflow.providers.standard.operators.python import PythonOperator
        from airflow.sdk import DAG

        from mlops_provider.operators.validation import CombineValidationOperator, ValidateDataOperator

        PLAN = {str(out / "_parts" / "plan.json")!r}

        def plan():  # what a planning task does: write the plan, return its group numbers
            Path(PLAN).parent.mkdir(parents=True, exist_ok=True)
            Path(PLAN).write_text({plan_json(batch, plan_groups)!r})
            return [0, 1, 2]

        with DAG("partitions_probe", schedule=None, catchup=False) as dag:
            plan = PythonOperator(task_id="plan", python_callable=plan)
            parts = ValidateDataOperator.partial(
                task_id="validate_partitions",
                data_uri="batch/part-*",
                base_dir={str(batch.parent)!r},
                suite="suite.json",
                plan_uri=PLAN,
            ).expand(part={expand})
            combined = CombineValidationOperator(
                task_id="validate_current",
                validate_task_id="validate_partitions",
                plan_uri=PLAN,
                suite="suite.json",
                base_dir={str(batch.parent)!r},
                on_failure={on_failure!r},
                retries=2,
            )
            plan >> parts >> combined
        """
    )
    dag_run = dag.test()
    states = {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances()}
    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == "partitions_probe",
                XComModel.run_id == dag_run.run_id,
                XComModel.key == "return_value",
            )
        ).all()
        values = {(row.task_id, row.map_index): XComModel.deserialize_value(row) for row in rows}
    return states, values


def test_clean_partitions_pass_as_one_verdict(batch: Path, dag_file: Any, tmp_path: Path) -> None:
    states, values = run_dag(dag_file, batch)
    assert set(states.values()) == {"success"}
    combined = values[("validate_current", -1)]
    assert (combined["success"], combined["status"], combined["rows"]) == (True, "passed", 344)
    assert (combined["evaluated"], combined["failed"], combined["partitions"]) == (6, 0, 3)
    assert combined["judged_per_partition"] == ["expect_column_mean_to_be_between on column 'body_mass_g'"]
    assert combined["missing_partitions"] == []
    prefix = tmp_path / "reports" / "partitions_probe"
    assert combined["report_uri"].startswith(str(prefix))
    assert combined["report_uri"].endswith(f"/validate_current/{REPORT_NAME}")
    assert "PASSED" in Path(combined["report_uri"]).read_text()
    document = json.loads(Path(combined["result_uri"]).read_text())
    assert document["plan_id"] == "plan-1"
    for part in range(3):
        summary = values[("validate_partitions", part)]
        assert summary["status"] == "partial"
        assert summary["part"] == part
        assert summary["success"] is False  # 110-124 rows: below the row count's 300 alone
        assert summary["result_uri"].endswith(f"/validate_partitions/part-0000{part}/{RESULT_NAME}")
        assert Path(summary["report_uri"]).is_file()
        assert len(json.dumps(summary)) < 4000


def test_bad_values_fail_the_combined_verdict_with_counts_summed_over_partitions(
    batch: Path, dag_file: Any
) -> None:
    first = pd.read_csv(batch / "part-0.csv")
    first.loc[[5, 6], "body_mass_g"] = 99999.0
    first.to_csv(batch / "part-0.csv", index=False)
    last = pd.read_csv(batch / "part-2.csv")
    last.loc[[0, 1, 2], "body_mass_g"] = 1.0
    last.to_csv(batch / "part-2.csv", index=False)

    states, values = run_dag(dag_file, batch)
    assert states[("validate_current", -1)] == "failed"  # no retry though retries=2
    assert {states[("validate_partitions", i)] for i in range(3)} == {"success"}
    combined = values[("validate_current", -1)]
    assert (combined["success"], combined["status"], combined["failed"]) == (False, "failed", 1)
    (failed,) = combined["failed_expectations"]
    assert (failed["type"], failed["column"], failed["unexpected_count"]) == (BETWEEN, "body_mass_g", 5)
    assert sorted(failed["unexpected_values"]) == [1.0, 1.0, 1.0, 99999.0, 99999.0]
    assert failed["note"] == "5 of 342 value(s) over 3 partition(s)"


def test_mostly_satisfied_overall_passes_though_one_partition_misses_it_alone(
    batch: Path, dag_file: Any, tmp_path: Path
) -> None:
    (tmp_path / "suite.json").write_text(json.dumps(suite(mostly=0.9)))
    first = pd.read_csv(batch / "part-0.csv")
    first.loc[:25, "bill_length_mm"] = 99.0  # 26 of 110 (24%) in 2007; 26 of 342 (7.6%) overall
    first.to_csv(batch / "part-0.csv", index=False)

    states, values = run_dag(dag_file, batch)
    assert states[("validate_current", -1)] == "success"
    alone = values[("validate_partitions", 0)]["failed_expectations"]
    assert any(f["column"] == "bill_length_mm" for f in alone)
    assert values[("validate_current", -1)]["success"] is True


def test_warn_mode_succeeds_and_reports_the_failure(batch: Path, dag_file: Any) -> None:
    last = pd.read_csv(batch / "part-2.csv")
    last.loc[[0], "species"] = None
    last.to_csv(batch / "part-2.csv", index=False)
    states, values = run_dag(dag_file, batch, on_failure="warn")
    assert states[("validate_current", -1)] == "success"
    combined = values[("validate_current", -1)]
    assert (combined["success"], combined["status"]) == (False, "warned")
    assert combined["failed_expectations"][0]["unexpected_count"] == 1


def test_a_partition_that_did_not_run_fails_the_verdict_naming_it(batch: Path, dag_file: Any) -> None:
    states, values = run_dag(dag_file, batch, expand="[0, 2]")
    assert states[("validate_current", -1)] == "failed"
    combined = values[("validate_current", -1)]
    assert combined["missing_partitions"] == ["00001"]
    assert combined["rows"] == 230  # 2007 and 2009
    assert combined["error"] == "no result from partition(s) 00001 (its mapped task did not run or failed)"


def test_a_plan_pointing_outside_the_data_fails_that_partition_and_the_verdict(
    batch: Path, dag_file: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.csv"
    pd.read_csv(batch / "part-0.csv").to_csv(secret, index=False)
    groups = [[f] for f in files(batch)]
    groups[1] = [str(secret)]
    states, values = run_dag(dag_file, batch, plan_groups=groups)
    assert states[("validate_partitions", 1)] == "failed"
    assert ("validate_partitions", 1) not in values
    assert states[("validate_current", -1)] == "failed"
    assert values[("validate_current", -1)]["missing_partitions"] == ["00001"]


# -- hostile plans and results, through execute() ----------------------------------------------------------
class RecordingTI:
    """The slice of a RuntimeTaskInstance the operators use: XCom push and (mapped) pull."""

    dag_id, run_id = "partitions_probe", "manual__2025-01-02T03:04:05+00:00"

    def __init__(
        self, task_id: str, store: dict[tuple[str, int], dict[str, Any]], map_index: int = -1
    ) -> None:
        self.task_id, self.store, self.map_index = task_id, store, map_index

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value, allow_nan=False)
        if key == "return_value":
            self.store[(self.task_id, self.map_index)] = value

    def xcom_pull(self, task_ids: str, map_indexes: list[int]) -> list[Any]:
        return [self.store.get((task_ids, i)) for i in map_indexes]


def run_part(batch: Path, plan_uri: str, part: Any, store: dict[Any, Any], **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("suite", suite())
    op = ValidateDataOperator(
        task_id="validate_partitions",
        data_uri=str(batch / "part-*"),
        plan_uri=plan_uri,
        part=part,
        **kwargs,
    )
    ti = RecordingTI("validate_partitions", store, part if isinstance(part, int) else 0)
    summary = op.execute({"ti": ti})  # type: ignore[arg-type]
    ti.xcom_push("return_value", summary)
    return summary


def run_combine(
    plan_uri: str, store: dict[Any, Any], **kwargs: Any
) -> tuple[dict[str, Any] | None, Exception | None]:
    kwargs.setdefault("suite", suite())
    op = CombineValidationOperator(
        task_id="validate_current",
        validate_task_id="validate_partitions",
        plan_uri=plan_uri,
        **kwargs,
    )
    try:
        return op.execute({"ti": RecordingTI("validate_current", store)}), None  # type: ignore[arg-type]
    except AirflowFailException as err:
        return store.get(("validate_current", -1)), err


@pytest.mark.parametrize(
    ("make_plan", "part", "error", "fragment"),
    [
        (
            lambda b, p: p.write_text("{not json"),
            0,
            DataError,
            "plan.json: not a scoring plan (JSONDecodeError",
        ),
        (None, 3, InvalidInputError, "part 3 is not a group of the plan at {plan} (3 groups)"),
        (None, True, InvalidInputError, "part must be a group number (an integer >= 0), got True for {plan}"),
        (None, -1, InvalidInputError, "got -1"),
        (
            lambda b, p: write_plan(b, p.parent.parent, [["/etc/passwd"], *[[f] for f in files(b)][1:]]),
            0,
            DataError,
            "{plan}: group 00000 lists file(s) that {batch}/part-* does not name: '/etc/passwd'",
        ),
        (
            lambda b, p: write_plan(b, p.parent.parent, [[f"{b}/../batch/part-0.csv"]]),
            0,
            DataError,
            "does not name: '{batch}/../batch/part-0.csv'",
        ),
    ],
)
def test_hostile_plans_fail_the_partition_naming_plan_and_part(
    batch: Path, tmp_path: Path, make_plan: Any, part: Any, error: type[Exception], fragment: str
) -> None:
    plan_uri = write_plan(batch, tmp_path / "scores")
    if make_plan is not None:
        make_plan(batch, Path(plan_uri))
    with pytest.raises(error) as raised:
        run_part(batch, plan_uri, part, {})
    assert isinstance(raised.value, AirflowFailException)  # no retry
    assert fragment.format(plan=plan_uri, batch=batch) in str(raised.value)


def test_plan_uri_and_part_go_together(batch: Path, tmp_path: Path) -> None:
    plan_uri = write_plan(batch, tmp_path / "scores")
    for kwargs in ({"plan_uri": plan_uri}, {"part": 0}):
        op = ValidateDataOperator(task_id="v", data_uri=str(batch / "part-*"), suite=suite(), **kwargs)
        with pytest.raises(InvalidInputError, match="give plan_uri and part together"):
            op.execute({"ti": RecordingTI("v", {})})  # type: ignore[arg-type]


def test_tampered_or_stale_partial_results_fail_the_verdict_naming_the_partition(
    batch: Path, tmp_path: Path
) -> None:
    plan_uri = write_plan(batch, tmp_path / "scores")
    store: dict[Any, Any] = {}
    summaries = [run_part(batch, plan_uri, part, store) for part in range(3)]
    summary, err = run_combine(plan_uri, store)
    assert err is None
    assert summary is not None
    assert summary["success"] is True

    result = Path(summaries[1]["result_uri"])
    document = json.loads(result.read_text())
    result.write_text(
        json.dumps({**document, "partition": {**document["partition"], "plan_id": "yesterday"}})
    )
    store[("validate_partitions", 2)] = {**summaries[2], "result_uri": str(tmp_path / "elsewhere.json")}
    summary, err = run_combine(plan_uri, store)
    assert isinstance(err, AirflowFailException)
    assert summary is not None
    assert summary["success"] is False
    assert "partition 00001: " in summary["error"]
    assert "the result of plan 'yesterday' partition 1, not of plan 'plan-1' partition 1" in summary["error"]
    assert f"partition 00002: its result is at '{tmp_path / 'elsewhere.json'}'" in summary["error"]
    assert summary["missing_partitions"] == ["00001", "00002"]


def test_the_combined_verdict_fails_on_rows_unlike_the_plan(batch: Path, tmp_path: Path) -> None:
    plan_uri = write_plan(batch, tmp_path / "scores")
    store: dict[Any, Any] = {}
    for part in range(3):
        run_part(batch, plan_uri, part, store)
    extra = pd.read_csv(batch / "part-2.csv")
    plan = Plan.from_json(Path(plan_uri).read_bytes(), plan_uri)
    plan.groups[2] = Group(2, plan.groups[2].files, plan.groups[2].row_offset, len(extra) + 1)
    Path(plan_uri).write_bytes(plan.to_json())
    summary, err = run_combine(plan_uri, store, on_failure="warn")
    assert err is None
    assert summary is not None
    assert summary["status"] == "warned"
    assert "partition 00002 validated 120 rows, the plan counts 121" in summary["error"]


def test_optional_columns_absent_from_every_partition_are_left_out_alike(batch: Path, tmp_path: Path) -> None:
    for path in files(batch):  # a batch whose labels ('sex') come later
        if path.endswith(".csv"):
            pd.read_csv(path).drop(columns=["sex"]).to_csv(path, index=False)
        else:
            pd.read_parquet(path).drop(columns=["sex"]).to_parquet(path, index=False)
    spec = suite()
    columns = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    spec["expectations"] += [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": [*columns, "sex", "year"]}},
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "sex", "value_set": ["male", "female"]},
        },
    ]
    plan_uri = write_plan(batch, tmp_path / "scores")
    store: dict[Any, Any] = {}
    for part in range(3):
        run_part(batch, plan_uri, part, store, suite=spec, optional_columns=["sex"])
    summary, err = run_combine(plan_uri, store, suite=spec, optional_columns=["sex"])
    assert err is None
    assert summary is not None
    assert (summary["success"], summary["evaluated"]) == (True, 7)
    assert summary["skipped_expectations"] == [
        "expectation #6 'expect_table_columns_to_match_set': sex left out",
        "expectation #7 'expect_column_values_to_be_in_set' (column 'sex')",
    ]
