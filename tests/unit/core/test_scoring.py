"""core.scoring: a batch checked against a real fitted model and its signature, before predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from mlops_provider.core.scoring import (
    ColumnSpec,
    ScoringInputError,
    check_batch,
    check_unseen_options,
    model_inputs,
    over_limit,
    unseen_shares,
)
from mlops_provider.core.training import wrap_with_preprocessor

FEATURES = ["amount", "city"]
SIGNATURE = [ColumnSpec("amount", "double"), ColumnSpec("city", "string")]
TRAIN = pd.DataFrame({"amount": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0], "city": ["a", "b", "a", None, "b", "a"]})
Y = [0, 1, 0, 1, 0, 1]


@pytest.fixture(scope="module")
def pipeline():
    return wrap_with_preprocessor(LogisticRegression(), TRAIN).fit(TRAIN, Y)


def check(frame, model, signature=SIGNATURE, features=FEATURES):
    return check_batch(frame, features, signature, model_inputs(model, features), "batch.csv")


def test_a_good_batch_passes_with_its_unseen_shares(pipeline):
    batch = pd.DataFrame({"amount": [1.0, np.nan, 3.0, 4.0], "city": ["a", "b", None, "z"]})
    assert check(batch, pipeline) == {"city": 0.25}


def test_int_typed_categorical_is_refused_naming_the_column(pipeline):
    batch = pd.DataFrame({"amount": [1.0, 2.0], "city": [1, 2]})
    with pytest.raises(
        ScoringInputError, match=r"batch.csv: wrong value types: 'city' holds int64 values.*takes text"
    ):
        check(batch, pipeline)


def test_non_text_in_an_object_categorical_is_refused(pipeline):
    batch = pd.DataFrame({"amount": [1.0, 2.0], "city": pd.Series(["a", 7], dtype=object)})
    with pytest.raises(ScoringInputError, match=r"'city' holds non-text values \(e.g. 7\)"):
        check(batch, pipeline)


def test_a_string_in_a_numeric_column_is_refused_with_an_example(pipeline):
    batch = pd.DataFrame({"amount": pd.Series([1.0, "n/a", 3.0], dtype=object), "city": ["a", "b", "a"]})
    with pytest.raises(
        ScoringInputError, match=r"'amount' holds text \(e.g. 'n/a'\), the model takes double"
    ):
        check(batch, pipeline)


def test_every_wrong_column_is_named_in_one_error(pipeline):
    batch = pd.DataFrame({"amount": ["x", "y"], "city": [1, 2]})
    with pytest.raises(ScoringInputError, match="'amount'.*'city'"):
        check(batch, pipeline)


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_are_refused_for_any_model(pipeline, value):
    batch = pd.DataFrame({"amount": [1.0, value], "city": ["a", "b"]})
    with pytest.raises(ScoringInputError, match="'amount' holds 1 infinite value"):
        check(batch, pipeline)


def test_nan_is_refused_only_where_the_model_cannot_take_it():
    X = TRAIN[["amount"]].fillna(0.0)
    batch = pd.DataFrame({"amount": [1.0, np.nan]})
    spec = [ColumnSpec("amount", "double")]
    with pytest.raises(ScoringInputError, match="'amount' holds 1 missing value.*cannot take"):
        check(batch, LogisticRegression().fit(X, Y), spec, ["amount"])
    assert check(batch, DecisionTreeClassifier().fit(X, Y), spec, ["amount"]) == {}  # trees take NaN


def test_missing_columns_are_named(pipeline):
    with pytest.raises(ScoringInputError, match="missing column.*'city'"):
        check(pd.DataFrame({"amount": [1.0]}), pipeline)


def test_an_encoder_that_errors_on_unknown_refuses_unseen_categories():
    X = TRAIN[["city"]].fillna("a")
    model = wrap_with_preprocessor(LogisticRegression(), X).fit(X, Y)
    model.steps[0][1].transformers_[0] = (
        "categorical",
        OneHotEncoder(handle_unknown="error").fit(X),
        ["city"],
    )
    spec = [ColumnSpec("city", "string")]
    assert check(pd.DataFrame({"city": ["a", "b"]}), model, spec, ["city"]) == {"city": 0.0}
    with pytest.raises(ScoringInputError, match="unseen categories in column.*'city'"):
        check(pd.DataFrame({"city": ["a", "zz"]}), model, spec, ["city"])


def test_unseen_shares_count_missing_values_only_when_training_had_none(pipeline):
    inputs = model_inputs(pipeline, FEATURES)
    assert inputs.categories["city"][:2] == ["a", "b"]
    assert unseen_shares(pd.DataFrame({"city": [None, "a"]}), inputs) == {"city": 0.0}
    inputs.categories["city"] = ["a", "b"]
    assert unseen_shares(pd.DataFrame({"city": [None, "a", "q", "r"]}), inputs) == {"city": 0.75}


def test_without_a_signature_the_other_checks_still_run(pipeline):
    batch = pd.DataFrame({"amount": [np.inf], "city": ["a"]})
    with pytest.raises(ScoringInputError, match="infinite"):
        check(batch, pipeline, signature=None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (0.2, 0.2), (0, 0.0), (1, 1.0), ("0.5", 0.5), ("", None), ("None", None)],
)
def test_unseen_options_accept_a_share_or_nothing(value, expected):
    assert check_unseen_options(value, "warn") == expected


@pytest.mark.parametrize("value", [-0.1, 1.5, "lots", True, [0.1]])
def test_unseen_options_refuse_anything_else(value):
    with pytest.raises(ScoringInputError, match="max_unseen_share"):
        check_unseen_options(value, "fail")


def test_on_unseen_must_be_warn_or_fail():
    with pytest.raises(ScoringInputError, match="on_unseen"):
        check_unseen_options(0.1, "ignore")


def test_over_limit_names_the_columns_above_the_maximum():
    assert over_limit({"a": 0.1, "b": 0.3}, 0.2) == {"b": 0.3}
    assert over_limit({"a": 0.1, "b": 0.3}, None) == {}
