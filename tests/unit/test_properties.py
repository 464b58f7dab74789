"""Property-based tests (Hypothesis) of the layers that take untrusted input: data files, validation
suites and frames, drift frames, and model configs. Each must give a structured result or one of its
documented errors, never a crash: any other exception fails the property."""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_provider.core import validation as v
from mlops_provider.core.data import read_frame, write_frame_atomic
from mlops_provider.core.drift import compute_drift
from mlops_provider.core.errors import DataError, InvalidInputError

HOSTILE = ["</script><script>alert(1)</script>", "<!--", "a\u202eb", "é", "${x}", "{{ 7*7 }}", "", " "]
NAMES = st.sampled_from(["a", "b", "c", "amount", "Ωmega", *HOSTILE])
SLOW = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def cells() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.booleans(),
    )


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    rows = draw(st.integers(0, 12))
    data = {}
    for name in names:
        kind = draw(st.sampled_from(["int", "float", "text", "mixed"]))
        if kind == "int":
            data[name] = draw(st.lists(st.integers(-1000, 1000), min_size=rows, max_size=rows))
        elif kind == "float":
            values = st.floats(allow_nan=True, allow_infinity=True, width=64)
            data[name] = draw(st.lists(values, min_size=rows, max_size=rows))
        elif kind == "text":
            data[name] = draw(
                st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=rows, max_size=rows)
            )
        else:
            data[name] = draw(st.lists(cells(), min_size=rows, max_size=rows))
    return pd.DataFrame(data)


EXPECTATION_TYPES = [
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_mean_to_be_between",
    "expect_table_row_count_to_be_between",
    "expect_table_columns_to_match_set",
    "expect_column_values_to_be_unique",
    "expect_column_to_exist",
    "expect_nothing_that_exists",
]


@st.composite
def expectations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(EXPECTATION_TYPES))
    kwargs: dict[str, Any] = {}
    if "column_values" in kind or "column_mean" in kind or kind == "expect_column_to_exist":
        kwargs["column"] = draw(st.one_of(NAMES, st.integers(), st.none()))
    if kind.endswith("_between"):
        kwargs["min_value"] = draw(
            st.one_of(st.none(), st.integers(-50, 50), st.floats(), st.text(max_size=3))
        )
        kwargs["max_value"] = draw(st.one_of(st.none(), st.integers(-50, 50)))
    if kind.endswith("_in_set"):
        kwargs["value_set"] = draw(st.lists(cells(), max_size=4))
    if kind.endswith("_match_set"):
        kwargs["column_set"] = draw(st.lists(NAMES, max_size=4))
    if draw(st.booleans()):
        kwargs["mostly"] = draw(st.one_of(st.floats(-1, 2), st.text(max_size=3)))
    return {"type": kind, "kwargs": kwargs}


def _json_round_trips(value: Any) -> None:
    json.dumps(value, allow_nan=False)


@SLOW
@given(frame=frames(), spec=st.lists(expectations(), min_size=1, max_size=4))
def test_validation_gives_a_structured_result_or_a_suite_error(frame, spec):
    try:
        suite = v.build_suite({"name": "generated", "expectations": spec}, "generated.json")
    except v.SuiteError as err:
        message = str(err)
        suite = None
    if suite is None:
        assert message
        return
    outcome = v.validate_frame(frame, suite, data_name="generated.csv")
    assert outcome.rows == len(frame)
    if len(frame) == 0:
        assert not outcome.success
    summary = v.summary(outcome, data_uri="generated.csv", report_uri=None, result_uri=None, status="x")
    _json_round_trips(summary)
    json.loads(v.result_document(outcome, "generated.csv", "generated.json"))
    page = v.render_html(outcome, "generated.csv", "generated.json").decode()
    assert "<script" not in page.lower()


@SLOW
@given(reference=frames(), current=frames(), share=st.floats(0.01, 1.0), min_rows=st.integers(1, 5))
def test_drift_gives_a_structured_result_or_a_documented_error(reference, current, share, min_rows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = compute_drift(reference, current, None, drift_share=share, min_rows=min_rows)
        except (DataError, InvalidInputError) as err:
            result, message = None, str(err)
    if result is None:
        assert message
        return
    assert result.status in ("drift", "no_drift", "insufficient_data")
    summary = result.summary()
    _json_round_trips(json.loads(json.dumps(summary, default=str)))
    if result.drift_share is not None:
        assert 0 <= result.drift_share <= 1
        assert math.isfinite(result.drift_share)


@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".csv.gz", ".parquet"]))
def test_reading_any_bytes_gives_a_frame_or_a_data_error(raw, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(raw)
        try:
            frame, message = read_frame(str(path)), ""
        except DataError as err:
            frame, message = None, str(err)
    if frame is None:
        assert str(path) in message
    else:
        assert isinstance(frame, pd.DataFrame)


@settings(max_examples=60, deadline=None)
@given(frame=frames().filter(lambda f: len(f.columns) > 1))
def test_a_frame_the_provider_writes_as_csv_reads_back_whole(frame):
    # (one column: a row whose only value is empty is a blank line, which CSV cannot tell from none)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.csv"
        write_frame_atomic(frame, str(path))
        try:
            back, message = read_frame(str(path)), ""
        except DataError as err:
            back, message = None, str(err)
    if back is None:
        assert "frame.csv" in message
    else:
        assert back.shape == frame.shape  # a value holding \r or \n never splits a row


BASE_CONFIG: dict[str, Any] = {
    "model": {"name": "m", "task": "classification"},
    "data": {"train": "train.csv", "current": "batch.csv", "target": "y"},
    "training": {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 5}},
    "evaluation": {"primary_metric": "f1_macro", "thresholds": {"f1_macro": {"min": 0.5}}},
}
VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(HOSTILE)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
PATHS = st.sampled_from(
    [
        ("model", "name"),
        ("model", "task"),
        ("data", "train"),
        ("data", "features"),
        ("training", "estimator"),
        ("training", "params"),
        ("training", "test_size"),
        ("evaluation", "thresholds"),
        ("evaluation", "vs_champion"),
        ("evaluation", "slices"),
        ("promotion", "approval"),
        ("drift", "drift_share"),
        ("drift", "numeric_method"),
        ("drift", "threshold"),
        ("schedule",),
        ("retries",),
        ("unknown_section",),
    ]
)


def _mutated(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    config = json.loads(json.dumps(BASE_CONFIG))
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return config


@settings(max_examples=150, deadline=None)
@given(path=PATHS, value=VALUES)
def test_a_mutated_config_loads_or_names_its_problem(path, value):
    from mlops_provider.templates.loader import load_config

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "model.yaml"
        file.write_text(yaml.safe_dump(_mutated(path, value), allow_unicode=True))
        loaded = load_config(file)
    assert (loaded.config is None) == bool(loaded.problems)
    for problem in loaded.problems:
        assert "model.yaml" in str(problem)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=400))
def test_any_yaml_text_loads_or_names_its_problem(text):
    from mlops_provider.templates.loader import load_config

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "any.yaml"
        file.write_text(text)
        loaded = load_config(file)
    assert loaded.config is None
    assert loaded.problems
    assert all("any.yaml" in str(p) for p in loaded.problems)
