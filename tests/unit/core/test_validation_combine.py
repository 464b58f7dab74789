"""core.validation_combine and core.validation_partitions: partitions validated apart by real Great
Expectations, combined, and checked against GX on the whole frame."""

from __future__ import annotations

import json
from typing import Any

import palmerpenguins
import pandas as pd
import pytest

from mlops_provider.core import validation as v
from mlops_provider.core.errors import DataError, InvalidInputError
from mlops_provider.core.manifest import Group, Plan
from mlops_provider.core.validation_combine import (
    EACH,
    MAX,
    MIN,
    ROW_COUNT,
    ROWS,
    SCHEMA,
    Combined,
    combine,
    suite_rules,
)
from mlops_provider.core.validation_partitions import (
    Partial,
    check_files,
    concat,
    plan_group,
    read_partial,
    read_partials,
    summary_uris,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PLAN_ID = "plan-1"
BETWEEN = "expect_column_values_to_be_between"


def exp(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs}


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return palmerpenguins.load_penguins()


def by_year(frame: pd.DataFrame) -> list[pd.DataFrame]:
    return [part.reset_index(drop=True) for _, part in frame.groupby("year")]


def partial_of(frame: pd.DataFrame, suite: Any, part: int) -> Partial:
    """What a partition's task writes, read back as the combining task reads it."""
    outcome = v.validate_frame(frame, suite, data_name=f"part {part}", partition=True)
    raw = v.result_document(outcome, "batch", "suite", partition={"plan_id": PLAN_ID, "part": part})
    return read_partial(raw, f"part-{part}", PLAN_ID, part)


def combined(frames: list[pd.DataFrame], spec: dict[str, Any], **kwargs: Any) -> Combined:
    suite = v.build_suite(spec, "suite")
    partials: dict[int, Partial | None] = {i: partial_of(f, suite, i) for i, f in enumerate(frames)}
    planned = {i: len(f) for i, f in enumerate(frames)}
    return combine(suite_rules(suite), partials, planned, suite.name, "batch", **kwargs)


def results_by_type(outcome: v.ValidationOutcome) -> dict[str, dict[str, Any]]:
    return {
        f"{r['expectation_config']['type']}:{r['expectation_config']['kwargs'].get('column')}": r
        for r in outcome.result["results"]
    }


def test_combined_verdicts_equal_gx_on_the_whole_frame(penguins: pd.DataFrame) -> None:
    """Bad values, nulls and ``mostly`` spread over three partitions: row-level counts, the row count
    and numeric min/max come out exactly as GX finds them on the whole frame."""
    frame = penguins.copy()
    frame.loc[[3, 150, 151, 300], "body_mass_g"] = 99999.0  # partitions 2007, 2008, 2009
    frame.loc[[10, 11, 200], "island"] = "Atlantis"
    frame.loc[frame.index[::9], "sex"] = None  # nulls: mostly counts non-null values only
    spec = {
        "name": "penguins",
        "expectations": [
            exp(BETWEEN, column="body_mass_g", min_value=2500, max_value=6500),
            exp(BETWEEN, column="body_mass_g", min_value=2500, max_value=6500, mostly=0.98),
            exp(
                "expect_column_values_to_be_in_set",
                column="island",
                value_set=["Biscoe", "Dream", "Torgersen"],
            ),
            exp("expect_column_values_to_be_in_set", column="sex", value_set=["male"], mostly=0.4),
            exp("expect_column_values_to_not_be_null", column="sex", mostly=0.5),
            exp(
                "expect_column_pair_values_a_to_be_greater_than_b",
                column_A="flipper_length_mm",
                column_B="bill_length_mm",
            ),
            exp("expect_table_row_count_to_be_between", min_value=300, max_value=400),
            exp("expect_column_min_to_be_between", column="bill_depth_mm", min_value=13.1),
            exp("expect_column_max_to_be_between", column="flipper_length_mm", max_value=230),
        ],
    }
    got = combined(by_year(frame), spec).outcome
    whole = v.validate_frame(frame, v.build_suite(spec, "suite"), partition=True)
    mine, gx = results_by_type(got), results_by_type(whole)
    assert len(got.result["results"]) == 9
    for r in got.result["results"]:
        key = v._key(r["expectation_config"])
        expected = next(w for w in whole.result["results"] if v._key(w["expectation_config"]) == key)
        assert r["success"] is expected["success"], key
        for field in (
            "element_count",
            "unexpected_count",
            "unexpected_percent",
            "missing_count",
            "observed_value",
        ):
            if field in expected["result"]:
                assert r["result"][field] == expected["result"][field], (key, field)
    assert mine[f"{BETWEEN}:body_mass_g"]["result"]["unexpected_count"] == 4
    assert gx["expect_table_row_count_to_be_between:None"]["result"]["observed_value"] == 344
    assert got.rows == 344
    assert {r["meta"]["rule"] for r in got.result["results"]} == {ROWS, ROW_COUNT, MIN, MAX}


def test_failed_row_level_expectation_names_counts_summed_over_partitions(penguins: pd.DataFrame) -> None:
    frame = penguins.copy()
    frame.loc[[4, 5, 150], "body_mass_g"] = 99999.0
    spec = {"name": "s", "expectations": [exp(BETWEEN, column="body_mass_g", min_value=2500, max_value=6500)]}
    outcome = combined(by_year(frame), spec).outcome
    assert outcome.success is False
    (failed,) = outcome.failed
    assert (failed.type, failed.column, failed.unexpected_count) == (BETWEEN, "body_mass_g", 3)
    assert failed.unexpected_values == [99999.0, 99999.0, 99999.0]
    assert failed.note == "3 of 342 value(s) over 3 partition(s)"  # 2 nulls are not considered
    message = v.failure_message(outcome, "batch")
    assert "expect_column_values_to_be_between on column 'body_mass_g': 3 unexpected value(s)" in message


def test_mostly_holds_on_the_whole_batch_though_one_partition_misses_it_alone(penguins: pd.DataFrame) -> None:
    frames = by_year(penguins)
    frames[0].loc[:30, "bill_length_mm"] = 99.0  # 31 of 110 rows: 28% bad in 2007, 9% of the batch
    spec = {
        "name": "s",
        "expectations": [exp(BETWEEN, column="bill_length_mm", min_value=30, max_value=60, mostly=0.9)],
    }
    suite = v.build_suite(spec, "suite")
    assert partial_of(frames[0], suite, 0).results[0]["success"] is False
    result = combined(frames, spec)
    assert result.outcome.success is True
    assert result.outcome.details[0]["failure"].note == (
        "passes on the whole batch (mostly 0.9) although partition(s) 00000 failed alone"
    )
    frames[1].loc[:10, "bill_length_mm"] = 99.0  # now 42 of 342: below 90%
    assert combined(frames, spec).outcome.success is False


def test_row_count_is_judged_on_the_total(penguins: pd.DataFrame) -> None:
    frames = by_year(penguins)
    spec = {"name": "s", "expectations": [exp("expect_table_row_count_to_be_between", min_value=300)]}
    suite = v.build_suite(spec, "suite")
    assert all(not partial_of(f, suite, i).results[0]["success"] for i, f in enumerate(frames))
    assert combined(frames, spec).outcome.success is True
    spec["expectations"] = [exp("expect_table_row_count_to_equal", value=345)]
    outcome = combined(frames, spec).outcome
    assert outcome.success is False
    assert outcome.failed[0].observed_value == 344
    assert outcome.failed[0].note == "judged on the total row count (344)"
    spec["expectations"] = [
        exp("expect_table_row_count_to_be_between", min_value=100, max_value=344, strict_max=True)
    ]
    assert combined(frames, spec).outcome.success is False


def test_what_cannot_be_combined_is_judged_per_partition(penguins: pd.DataFrame) -> None:
    frames = by_year(penguins)
    spec = {
        "name": "s",
        "expectations": [
            exp("expect_column_mean_to_be_between", column="body_mass_g", min_value=4150, max_value=4300),
            exp("expect_column_values_to_be_unique", column="year"),
            exp("expect_column_to_exist", column="year"),
        ],
    }
    whole = v.validate_frame(penguins, v.build_suite(spec, "suite"), partition=True)
    mean = next(r for r in whole.result["results"] if "mean" in r["expectation_config"]["type"])
    assert mean["success"] is True  # the batch's mean (4201.75) is in range...
    result = combined(frames, spec)
    assert result.judged_per_partition == [
        "expect_column_mean_to_be_between on column 'body_mass_g'",
        "expect_column_values_to_be_unique on column 'year'",
    ]
    (failed,) = [f for f in result.outcome.failed if "mean" in f.type]  # ...but not 2009's alone
    assert failed.note is not None
    assert failed.note.startswith("judged per partition (cannot be combined exactly): failed in partition(s)")
    rules = {r["expectation_config"]["type"]: r["meta"]["rule"] for r in result.outcome.result["results"]}
    assert rules["expect_column_to_exist"] == SCHEMA
    assert rules["expect_column_values_to_be_unique"] == EACH


def test_an_empty_partition_is_no_failure_but_zero_rows_in_total_never_pass(penguins: pd.DataFrame) -> None:
    spec = {
        "name": "s",
        "expectations": [
            exp("expect_column_mean_to_be_between", column="body_mass_g", min_value=3000, max_value=6000),
            exp("expect_column_min_to_be_between", column="body_mass_g", min_value=2000),
            exp("expect_column_values_to_not_be_null", column="species"),
        ],
    }
    frames = [*by_year(penguins), penguins.iloc[:0]]
    assert combined(frames, spec).outcome.success is True
    outcome = combined([penguins.iloc[:0], penguins.iloc[:0]], spec).outcome
    assert outcome.success is False
    assert outcome.rows == 0
    assert outcome.error is not None
    assert "dataset batch has 0 rows" in outcome.error


def test_an_expectation_that_raised_fails_naming_its_partitions(penguins: pd.DataFrame) -> None:
    spec = {"name": "s", "expectations": [exp(BETWEEN, column="weight", min_value=0)]}
    (failed,) = combined(by_year(penguins), spec).outcome.failed
    assert failed.error == "missing column(s) 'weight' (not in the data)"
    assert failed.note == "raised in partition(s) 00000, 00001, 00002"


def test_missing_unlike_or_foreign_partitions_fail_the_verdict(penguins: pd.DataFrame) -> None:
    spec = {"name": "s", "expectations": [exp("expect_column_values_to_not_be_null", column="species")]}
    suite = v.build_suite(spec, "suite")
    frames = by_year(penguins)
    partials: dict[int, Partial | None] = {i: partial_of(f, suite, i) for i, f in enumerate(frames)}
    planned = {0: 110, 1: 114, 2: 120, 3: 5}
    partials[1] = None
    outcome = combine(suite_rules(suite), partials, planned, "s", "batch").outcome
    assert outcome.success is False
    assert outcome.error == (
        "no result from partition(s) 00001, 00003 (its mapped task did not run or failed)"
    )
    planned = {0: 110, 1: 114, 2: 121}
    partials[1] = partial_of(frames[1].drop(columns=["sex"]), suite, 1)
    other = v.build_suite(
        {"name": "other", "expectations": [exp("expect_column_to_exist", column="year")]}, "o"
    )
    partials[0] = partial_of(frames[0], other, 0)
    error = combine(suite_rules(suite), partials, planned, "s", "batch").outcome.error
    assert error is not None
    assert (
        "partition 00000 validated another suite ('other': 1 expectation(s) of 's' missing, 1 not in it)"
        in error
    )
    assert "partition 00001 has other columns than 00000 (['sex'])" in error
    assert "partition 00002 validated 120 rows, the plan counts 121" in error


def test_read_partial_refuses_what_is_not_this_partitions_result(penguins: pd.DataFrame) -> None:
    suite = v.build_suite({"name": "s", "expectations": [exp("expect_column_to_exist", column="year")]}, "s")
    outcome = v.validate_frame(penguins, suite, partition=True)
    good = json.loads(v.result_document(outcome, "b", "s", partition={"plan_id": PLAN_ID, "part": 1}))
    assert read_partial(json.dumps(good).encode(), "w", PLAN_ID, 1).rows == 344
    cases = {
        b"{not json": "w: not a JSON document",
        json.dumps({**good, "partition": None}).encode(): "no 'partition' object",
        json.dumps({**good, "partition": {"plan_id": "old", "part": 1}}).encode(): "plan 'old' partition 1",
        json.dumps({**good, "partition": {"plan_id": PLAN_ID, "part": True}}).encode(): "partition True",
        json.dumps({**good, "rows": -1}).encode(): "'rows' must be an integer >= 0",
        json.dumps({**good, "columns": "year"}).encode(): "'columns' must be a list",
        json.dumps(
            {**good, "validation_result": {"results": [{"success": True}]}}
        ).encode(): "without an expectation",
        json.dumps(
            {
                **good,
                "validation_result": {
                    "results": [{**good["validation_result"]["results"][0], "result": [1]}]
                },
            }
        ).encode(): "'result' or 'exception_info' is not an object",
    }
    for raw, fragment in cases.items():
        with pytest.raises(DataError, match="^w: ") as err:
            read_partial(raw, "w", PLAN_ID, 1)
        assert fragment in str(err.value)
    partials, problems = read_partials({0: "a", 1: "b"}, {"a": None, "b": b"[]"}.get, PLAN_ID)
    assert partials == {}
    assert problems == [
        "partition 00000: a: no such file",
        "partition 00001: b: not a partition's validation result (no 'partition' object)",
    ]


def plan(*rows: int) -> Plan:
    groups = [Group(i, [f"/data/batch-{i}.csv"], sum(rows[:i]), n) for i, n in enumerate(rows)]
    return Plan(PLAN_ID, "m", "/data/batch-*.csv", {}, groups)


def test_plan_group_and_files_are_checked() -> None:
    three = plan(10, 20, 30)
    assert plan_group(three, 2, "p.json").files == ["/data/batch-2.csv"]
    for part, fragment in [
        (True, "got True"),
        (-1, "got -1"),
        ("1", "got '1'"),
        (3, "part 3 is not a group"),
    ]:
        with pytest.raises(InvalidInputError, match=fragment):
            plan_group(three, part, "p.json")
    shuffled = Plan(PLAN_ID, "m", "s", {}, [three.groups[1], three.groups[0]])
    with pytest.raises(DataError, match="p.json: group #0 has index 1"):
        plan_group(shuffled, 0, "p.json")
    check_files(three.groups[0], ["/data/batch-0.csv", "/data/batch-1.csv"], "p.json", "/data/*.csv")
    with pytest.raises(
        DataError, match=r"lists file\(s\) that /data/\*.csv does not name: '/data/batch-2.csv'"
    ):
        check_files(three.groups[2], ["/data/batch-0.csv"], "p.json", "/data/*.csv")


def test_summary_uris_accept_only_this_plans_summaries_at_their_place() -> None:
    three = plan(10, 20, 30)

    def expected(part: int) -> str:
        return f"/r/part-{part}/validation_result.json"

    summaries = [
        {"part": 0, "plan_id": PLAN_ID, "result_uri": expected(0)},
        {"part": 1, "plan_id": "old", "result_uri": expected(1)},
        None,
        {"part": 0, "plan_id": PLAN_ID, "result_uri": expected(0)},
        {"part": 2, "plan_id": PLAN_ID, "result_uri": "/etc/passwd"},
        {"part": 7, "plan_id": PLAN_ID},
        "not a dict",
    ]
    uris, problems = summary_uris(summaries, three, expected)
    assert uris == {0: expected(0)}
    assert problems == [
        "partition 00001 validated plan 'old', not 'plan-1'",
        "partition 00000 was validated twice (map index 3)",
        "partition 00002: its result is at '/etc/passwd', not '/r/part-2/validation_result.json' "
        "(give both tasks the same reports_uri)",
        "map index 5: its summary names no group of the plan (part 7)",
        "map index 6: its summary names no group of the plan (part None)",
    ]


def test_concat_refuses_files_with_other_columns() -> None:
    a, b = pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [2], "y": [3]})
    assert concat([a, a], ["a", "a2"])["x"].tolist() == [1, 1]
    with pytest.raises(DataError, match="^b: columns differ from a"):
        concat([a, b], ["a", "b"])


def test_combine_rules_follow_gx_classes() -> None:
    spec = {
        "name": "s",
        "expectations": [
            exp("expect_column_values_to_match_regex", column="a", regex="x"),
            exp("expect_multicolumn_sum_to_equal", column_list=["a", "b"], sum_total=3),
            exp("expect_column_values_to_be_increasing", column="a"),
            exp("expect_compound_columns_to_be_unique", column_list=["a", "b"]),
            exp("expect_column_median_to_be_between", column="a", min_value=0),
            exp("expect_table_columns_to_match_set", column_set=["a"]),
        ],
    }
    rules = [rule for rule, _ in suite_rules(v.build_suite(spec, "s"))]
    assert rules == [ROWS, ROWS, EACH, EACH, EACH, SCHEMA]


def test_min_max_of_text_are_judged_per_partition() -> None:
    frames = [pd.DataFrame({"day": ["2024-01-02", "2024-01-05"]}), pd.DataFrame({"day": ["2023-12-30"]})]
    spec = {
        "name": "s",
        "expectations": [exp("expect_column_min_to_be_between", column="day", min_value="2024-01-01")],
    }
    result = combined(frames, spec)
    assert result.judged_per_partition == ["expect_column_min_to_be_between on column 'day'"]
    (failed,) = result.outcome.failed
    assert failed.note == "judged per partition (cannot be combined exactly): failed in partition(s) 00001"
    assert failed.observed_value == "2023-12-30"
