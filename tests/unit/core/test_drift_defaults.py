"""The shipped drift defaults: false alarms on same-distribution batches stay at or under 5%, real
drift is still found. Several real data sets, batches of a few hundred rows and up, many seeds (the
README's table is the same measurement with 200 seeds: ``python -m bench.drift_defaults``)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from sklearn import datasets
from vega_datasets import data as vega

from mlops_provider.core.drift import (
    AUTO_P_VALUE_MAX_ROWS,
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_DRIFT_SHARE,
    DEFAULT_NUMERIC_METHOD,
    compute_drift,
)

SEEDS = 100
MAX_FALSE_ALARMS = 0.05


def _sets() -> dict[str, pd.DataFrame]:
    return {
        "seattle_weather": vega.seattle_weather().drop(columns=["date"]),
        "penguins": load_penguins().dropna(),
        "breast_cancer": datasets.load_breast_cancer(as_frame=True).frame,
        "wine": datasets.load_wine(as_frame=True).frame,
        "diabetes": datasets.load_diabetes(as_frame=True).frame,
    }


@pytest.fixture(scope="module")
def data_sets() -> dict[str, pd.DataFrame]:
    return _sets()


def _false_alarms(frame: pd.DataFrame, draw) -> float:
    alarms = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in range(SEEDS):
            reference, current = draw(frame, np.random.default_rng(seed))
            alarms += compute_drift(reference, current, list(frame.columns)).status == "drift"
    return alarms / SEEDS


def _batch_vs_rest(rows: int):
    def draw(frame: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
        order = rng.permutation(len(frame))
        return frame.iloc[order[rows:]], frame.iloc[order[:rows]]

    return draw


def _bootstrap(reference_rows: int, current_rows: int):
    def draw(frame: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
        return (
            frame.iloc[rng.integers(0, len(frame), reference_rows)],
            frame.iloc[rng.integers(0, len(frame), current_rows)],
        )

    return draw


def test_the_defaults_are_auto_methods_and_half_the_columns():
    assert (DEFAULT_NUMERIC_METHOD, DEFAULT_CATEGORICAL_METHOD, DEFAULT_DRIFT_SHARE) == ("auto", "auto", 0.5)


@pytest.mark.parametrize("name", ["seattle_weather", "breast_cancer", "diabetes"])
def test_false_alarms_on_batches_of_200_rows(data_sets, name):
    assert _false_alarms(data_sets[name], _batch_vs_rest(200)) <= MAX_FALSE_ALARMS


@pytest.mark.parametrize("rows", [300, 500])
def test_false_alarms_on_bigger_batches(data_sets, rows):
    assert _false_alarms(data_sets["seattle_weather"], _batch_vs_rest(rows)) <= MAX_FALSE_ALARMS


@pytest.mark.parametrize("name", ["seattle_weather", "penguins", "wine"])
def test_false_alarms_above_the_auto_switch(data_sets, name):
    draw = _bootstrap(5000, 2 * AUTO_P_VALUE_MAX_ROWS)
    assert _false_alarms(data_sets[name], draw) <= MAX_FALSE_ALARMS


def test_auto_picks_p_values_for_small_frames_and_distances_above(data_sets):
    weather = data_sets["seattle_weather"]
    columns = list(weather.columns)
    small = compute_drift(weather.iloc[:700], weather.iloc[700:], columns)
    assert (small.numeric_method, small.categorical_method) == ("ks", "chisquare")
    assert small.column("temp_max").method == "ks"
    rng = np.random.default_rng(0)
    big = compute_drift(
        weather.iloc[rng.integers(0, len(weather), 3000)],
        weather.iloc[rng.integers(0, len(weather), 1001)],
        columns,
    )
    assert (big.numeric_method, big.categorical_method) == ("wasserstein", "jensenshannon")
    assert big.column("weather").method == "jensenshannon"


def test_real_drift_is_still_found_with_the_defaults(data_sets):
    weather = vega.seattle_weather()
    month = pd.to_datetime(weather["date"]).dt.month
    features = ["precipitation", "temp_max", "temp_min", "wind", "weather"]
    summer = weather[month.isin([6, 7, 8])]
    rest = weather[~month.isin([6, 7, 8])]
    assert compute_drift(rest, summer.head(200), features).status == "drift"
    assert compute_drift(rest, summer, features).status == "drift"
    penguins = load_penguins()
    biscoe, others = penguins[penguins["island"] == "Biscoe"], penguins[penguins["island"] != "Biscoe"]
    columns = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "species", "sex"]
    assert compute_drift(biscoe, others, columns, min_rows=100).status == "drift"
