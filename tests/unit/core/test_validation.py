"""core.validation with real Great Expectations on real data (palmerpenguins)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import palmerpenguins
import pandas as pd
import pytest

from mlops_provider.core import validation as v
from mlops_provider.core.data import read_frame
from mlops_provider.core.errors import DataError

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
ISLANDS = ["Biscoe", "Dream", "Torgersen"]
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
    """A GX 1.x suite (as its JSON would read) that the clean penguins data passes."""
    return {
        "name": "penguins",
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": COLUMNS}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "species"}},
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "species", "value_set": SPECIES},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "island", "value_set": ISLANDS},
            },
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "body_mass_g", "min_value": 2500, "max_value": 6500},
            },
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "bill_length_mm", "min_value": 30, "max_value": 60},
            },
            {
                "type": "expect_column_values_to_be_in_type_list",
                "kwargs": {"column": "year", "type_list": ["int64"]},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "year"}},
        ],
        "meta": {},
    }


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return palmerpenguins.load_penguins()


@pytest.fixture(scope="module")
def suite():
    return v.build_suite(penguin_suite(), "penguins.json")


def corrupted(frame: pd.DataFrame) -> pd.DataFrame:
    """Nulls in a required column, out-of-range values, a missing column and a wrong dtype."""
    bad = frame.copy()
    bad.loc[bad.index[:7], "species"] = None
    bad.loc[bad.index[10:13], "body_mass_g"] = 99999.0
    bad["year"] = bad["year"].astype(str).str.replace("2007", "two thousand seven")
    return bad.drop(columns=["island"])


def failed_by_key(outcome: v.ValidationOutcome) -> dict[tuple[str, str | None], v.FailedExpectation]:
    return {(f.type, f.column): f for f in outcome.failed}


def test_clean_penguins_pass(penguins: pd.DataFrame, suite) -> None:
    outcome = v.validate_frame(penguins, suite, data_name="penguins.csv")
    assert outcome.success, v.failure_message(outcome, "penguins.csv")
    assert outcome.rows == 344
    assert outcome.evaluated == 9
    assert outcome.failed == []
    assert outcome.error is None


def test_corrupted_batch_fails_naming_each_expectation(penguins: pd.DataFrame, suite) -> None:
    outcome = v.validate_frame(corrupted(penguins), suite, data_name="batch.csv", max_unexpected_values=3)
    assert not outcome.success
    failed = failed_by_key(outcome)
    # (the species value-set check still passes: GX ignores nulls there; the null check catches them)
    assert set(failed) == {
        ("expect_table_columns_to_match_set", None),
        ("expect_column_values_to_not_be_null", "species"),
        ("expect_column_values_to_be_in_set", "island"),
        ("expect_column_values_to_be_between", "body_mass_g"),
        ("expect_column_values_to_be_in_type_list", "year"),
    }
    assert (
        failed["expect_table_columns_to_match_set", None].error
        == "missing column(s) 'island' (not in the data)"
    )
    nulls = failed["expect_column_values_to_not_be_null", "species"]
    assert nulls.unexpected_count == 7
    assert nulls.unexpected_values == [None, None, None]
    out_of_range = failed["expect_column_values_to_be_between", "body_mass_g"]
    assert out_of_range.unexpected_count == 3
    assert out_of_range.unexpected_values == [99999.0, 99999.0, 99999.0]
    missing = failed["expect_column_values_to_be_in_set", "island"]
    assert missing.error == "missing column(s) 'island' (not in the data)"
    wrong_type = failed["expect_column_values_to_be_in_type_list", "year"]  # object column: checked per value
    assert wrong_type.unexpected_count == 344
    assert "two thousand seven" in wrong_type.unexpected_values

    message = v.failure_message(outcome, "batch.csv")
    assert "expect_column_values_to_not_be_null on column 'species': 7 unexpected value(s)" in message
    assert "missing column(s) 'island'" in message


def test_missing_column_in_both_exception_shapes(penguins: pd.DataFrame) -> None:
    """A map metric (shape keyed by metric id) and a table-level check both say the column is missing."""
    spec = {
        "name": "missing",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "beak"}},
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "beak", "max_value": 3}},
            {"type": "expect_column_to_exist", "kwargs": {"column": "beak"}},
        ],
    }
    outcome = v.validate_frame(penguins, v.build_suite(spec, "s"))
    assert [f.error for f in outcome.failed] == ["missing column(s) 'beak' (not in the data)"] * 3


def test_exception_messages_reads_both_shapes() -> None:
    flat = {"raised_exception": True, "exception_message": "boom", "exception_traceback": "tb"}
    nested = {
        "MetricConfigurationID(metric_name='x')": {"raised_exception": True, "exception_message": "bang"}
    }
    assert v._exception_messages(flat) == ["boom"]
    assert v._exception_messages(nested) == ["bang"]
    assert v._exception_messages({"raised_exception": False, "exception_message": None}) == []


def test_zero_rows_never_pass(penguins: pd.DataFrame, suite, tmp_path: Path) -> None:
    header_only = tmp_path / "empty.csv"
    penguins.iloc[:0].to_csv(header_only, index=False)
    frame = read_frame(str(header_only))
    outcome = v.validate_frame(frame, suite, data_name=str(header_only))
    assert not outcome.success
    assert outcome.error == f"dataset {header_only} has 0 rows"
    assert f"dataset {header_only} has 0 rows" in v.failure_message(outcome, str(header_only))


def test_misspelled_expectation_type_is_named() -> None:
    spec = penguin_suite()
    spec["expectations"].insert(
        2, {"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "sex"}}
    )
    with pytest.raises(v.SuiteError) as err:
        v.build_suite(spec, "penguins.json")
    assert "penguins.json" in str(err.value)
    assert (
        "expectation #2 'expect_column_values_to_not_be_nul' (column 'sex'): unknown expectation type"
        in str(err.value)
    )
    assert "did you mean 'expect_column_values_to_not_be_null'" in str(err.value)


def test_bad_argument_is_named() -> None:
    spec = penguin_suite()
    spec["expectations"].append(
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "body_mass_g", "min_value": "heavy"},
        }
    )
    spec["expectations"].append({"type": "expect_column_values_to_not_be_null", "kwargs": {"colum": "sex"}})
    with pytest.raises(v.SuiteError) as err:
        v.build_suite(spec, "penguins.json")
    text = str(err.value)
    assert "2 invalid expectation(s)" in text
    assert (
        "expectation #9 'expect_column_values_to_be_between' (column 'body_mass_g'): invalid argument(s): min_value"
        in text
    )
    assert "expectation #10 'expect_column_values_to_not_be_null': invalid argument(s)" in text
    assert "colum" in text


def test_gx_itself_would_drop_these_silently() -> None:
    """Why build_suite exists: GX logs and drops a bad expectation instead of raising."""
    import great_expectations as gx

    spec = penguin_suite()
    spec["expectations"].append({"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "sex"}})
    logging.getLogger("great_expectations").disabled = True
    try:
        loaded = gx.ExpectationSuite(**spec)
    finally:
        logging.getLogger("great_expectations").disabled = False
    assert len(loaded.expectations) == len(spec["expectations"]) - 1


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"name": "x", "expectations": []}, "no expectations"),
        ({"name": "x"}, "'expectations' must be a list"),
        ({"expectations": [{"expectation_type": "expect_column_to_exist", "kwargs": {}}]}, "GX 0.x format"),
        ({"expectations": ["expect_column_to_exist"]}, "must be an object"),
        ({"expectations": [{"type": "expect_column_to_exist", "kwargs": []}]}, "'kwargs' must be an object"),
    ],
)
def test_malformed_suites(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(v.SuiteError, match=fragment):
        v.build_suite(spec, "s.json")


def test_load_suite_spec_from_file(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(penguin_suite()))
    spec, source = v.load_suite_spec(str(path))
    assert source == str(path)
    assert len(v.build_suite(spec, source).expectations) == 9
    with pytest.raises(v.SuiteError, match="suite file not found"):
        v.load_suite_spec(str(tmp_path / "nope.json"))
    (tmp_path / "broken.json").write_text('{"name": "x",\n "expectations": [}')
    with pytest.raises(v.SuiteError, match=r"broken.json: not valid JSON \(line 2"):
        v.load_suite_spec(str(tmp_path / "broken.json"))


def test_outputs_are_small_json_and_self_contained_html(penguins: pd.DataFrame, suite) -> None:
    bad = corrupted(penguins)
    bad.loc[bad.index[20], "body_mass_g"] = float("nan")
    bad.loc[bad.index[21:30], "body_mass_g"] = float("inf")
    outcome = v.validate_frame(bad, suite, data_name="s3://bucket/batch.csv")
    s = v.summary(
        outcome, data_uri="s3://bucket/batch.csv", report_uri="r.html", result_uri="r.json", status="failed"
    )
    encoded = json.dumps(s, allow_nan=False)  # strict JSON: no NaN/inf
    assert len(encoded) < 4000
    assert s["failed"] == len(s["failed_expectations"]) == 5
    assert all(len(f["unexpected_values"]) <= 5 for f in s["failed_expectations"])

    doc = json.loads(v.result_document(outcome, "s3://bucket/batch.csv", "penguins.json"))
    assert doc["validation_result"]["statistics"]["unsuccessful_expectations"] == 5
    assert doc["data_uri"] == "s3://bucket/batch.csv"

    page = v.render_html(outcome, "s3://bucket/batch.csv", "penguins.json").decode()
    assert "<script" not in page  # offline: no scripts, no CDN
    assert "http://" not in page
    assert "https://" not in page
    for text in (
        "FAILED",
        "penguins.json",
        "s3://bucket/batch.csv",
        "missing column(s) &#x27;island&#x27;",
        "UTC",
    ):
        assert text in page


def test_json_safe_values() -> None:
    import numpy as np

    values = [
        np.int64(3),
        np.float64("nan"),
        float("inf"),
        pd.Timestamp("2024-01-02"),
        pd.NaT,
        "x" * 500,
        b"\xff",
        pd.NA,
    ]
    safe = v.json_safe(values)
    assert safe[:3] == [3, None, None]
    assert safe[3].startswith("2024-01-02")
    assert safe[4] is None
    assert safe[7] is None
    assert len(safe[5]) == v.MAX_VALUE_CHARS + 3
    json.dumps(safe, allow_nan=False)


def test_parquet_and_csv_glob_read_the_same(penguins: pd.DataFrame, suite, tmp_path: Path) -> None:
    penguins.to_parquet(tmp_path / "penguins.parquet", index=False)
    for year, part in penguins.groupby("year"):
        part.to_csv(tmp_path / f"part-{year}.csv", index=False)
    for uri in (str(tmp_path / "penguins.parquet"), str(tmp_path / "part-*.csv")):
        outcome = v.validate_frame(read_frame(uri), suite, data_name=uri)
        assert outcome.success, v.failure_message(outcome, uri)
        assert outcome.rows == 344


def test_bad_files_name_the_uri_and_column(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("species,island\nAdélie,Biscoe\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.csv: not UTF-8"):
        read_frame(str(latin1))
    dup = tmp_path / "dup.csv"
    dup.write_text("species,island,species\nAdelie,Biscoe,Adelie\n")
    with pytest.raises(DataError, match=r"dup.csv: duplicate column name\(s\) 'species'"):
        read_frame(str(dup))


def test_no_gx_info_lines_while_validating(penguins: pd.DataFrame, suite) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    logging.getLogger(v.GX_LOGGER).addHandler(handler)
    try:
        v.validate_frame(penguins, suite)
    finally:
        logging.getLogger(v.GX_LOGGER).removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno < logging.WARNING] == []


def test_quiet_gx_logging_keeps_a_stricter_level() -> None:
    logger = logging.getLogger(v.GX_LOGGER)
    previous = logger.level
    try:
        logger.setLevel(logging.ERROR)
        v.quiet_gx_logging()
        assert logger.level == logging.ERROR
        logger.setLevel(logging.INFO)
        v.quiet_gx_logging()
        assert logger.level == logging.WARNING
        import great_expectations  # noqa: F401  sets its data_context.types.base logger to INFO

        v.quiet_gx_logging()
        child = logging.getLogger("great_expectations.data_context.types.base")
        assert child.getEffectiveLevel() == logging.WARNING
    finally:
        logger.setLevel(previous)


def test_without_columns_leaves_out_what_the_suite_says_about_absent_columns() -> None:
    from mlops_provider.core.validation import without_columns

    spec = {
        "name": "s",
        "expectations": [
            {
                "type": "expect_table_columns_to_match_set",
                "kwargs": {"column_set": ["x", "y"], "exact_match": False},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "y", "value_set": ["a"]}},
            {
                "type": "expect_column_pair_values_a_to_be_greater_than_b",
                "kwargs": {"column_A": "x", "column_B": "y"},
            },
        ],
    }
    trimmed, skipped = without_columns(spec, ["y"])
    assert [e["type"] for e in trimmed["expectations"]] == [
        "expect_table_columns_to_match_set",
        "expect_column_values_to_not_be_null",
    ]
    assert trimmed["expectations"][0]["kwargs"]["column_set"] == ["x"]
    assert len(skipped) == 3
    assert any("'y'" in s for s in skipped)
    assert spec["expectations"][0]["kwargs"]["column_set"] == ["x", "y"]  # the input is left as it was
    assert without_columns(spec, []) == (spec, [])
