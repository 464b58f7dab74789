"""core.drift on real data: known drift found, random halves not flagged, parity with Evidently 0.7."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins
from vega_datasets import data as vega

from mlops_provider.core import drift
from mlops_provider.core.data import data_signature
from mlops_provider.core.drift import compute_drift, report_frames
from mlops_provider.core.errors import DataError

WEATHER_FEATURES = ["precipitation", "temp_max", "temp_min", "wind", "weather"]
# the distance methods, pinned (the default "auto" picks p-value tests up to 1000 rows)
DISTANCES = {"numeric_method": "wasserstein", "categorical_method": "jensenshannon"}
PENGUIN_NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
PENGUIN_CATEGORICAL = ["species", "sex"]


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return vega.seattle_weather()


@pytest.fixture(scope="module")
def seasons(weather: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    month = pd.to_datetime(weather["date"]).dt.month
    summer = weather[month.isin([6, 7, 8])].reset_index(drop=True)
    winter = weather[month.isin([12, 1, 2])].reset_index(drop=True)
    return summer, winter


@pytest.fixture(scope="module")
def islands() -> tuple[pd.DataFrame, pd.DataFrame]:
    penguins = load_penguins()
    biscoe = penguins[penguins["island"] == "Biscoe"].reset_index(drop=True)
    others = penguins[penguins["island"] != "Biscoe"].reset_index(drop=True)
    return biscoe, others


def halves(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    mid = len(frame) // 2
    return frame.iloc[order[:mid]], frame.iloc[order[mid:]]


# -- known drift ------------------------------------------------------------------------------------
def test_summer_vs_winter_drifts(seasons):
    summer, winter = seasons
    result = compute_drift(summer, winter, WEATHER_FEATURES, min_rows=200, **DISTANCES)
    assert result.status == "drift"
    assert {"temp_max", "temp_min"} <= set(result.drifted_columns)
    assert result.drift_share == len(result.drifted_columns) / 5
    assert result.column("temp_max").method == "wasserstein"
    assert result.column("weather").method == "jensenshannon"
    summary = result.summary()
    assert summary["status"] == "drift"
    assert summary["columns"]["temp_max"]["drifted"] is True


def test_penguins_by_island_drift_with_a_species_unseen_in_the_reference(islands):
    biscoe, others = islands
    assert "Chinstrap" not in set(biscoe["species"])
    assert "Chinstrap" in set(others["species"])
    for method in ("jensenshannon", "chisquare"):
        result = compute_drift(
            biscoe, others, PENGUIN_NUMERIC + PENGUIN_CATEGORICAL, min_rows=50, categorical_method=method
        )
        assert result.status == "drift"
        species = result.column("species")
        assert species.status == "drift"
        assert np.isfinite(species.score)
    # the NaNs in the measurements are dropped, as Evidently does
    assert result.column("sex").n_reference == biscoe["sex"].notna().sum()


def test_default_columns_exclude_the_target_and_an_id_like_date(weather):
    first, second = halves(weather, 0)
    result = compute_drift(first, second, None, target="weather", min_rows=100)
    assert [c.column for c in result.columns] == ["date", "precipitation", "temp_max", "temp_min", "wind"]
    assert result.column("date").reason == "datetime column (not compared)"
    assert len(result.evaluated_columns) == 4
    # read from CSV the date is text: one distinct value per row, so ID-like
    as_text = compute_drift(
        first.astype({"date": str}), second.astype({"date": str}), None, target="weather", min_rows=100
    )
    date = as_text.column("date")
    assert date.status == "not_evaluable"
    assert "ID-like" in date.reason


# -- no drift: false alarms on random halves -------------------------------------------------------
def test_false_alarm_rate_on_random_halves_of_seattle_weather(weather):
    """Budget, 50 seeds of 730 vs 731 rows: <= 15% with the former defaults (Wasserstein/JS at 0.1 and a
    share of 0.3: measured 10% over 200 seeds; temp_max and temp_min are correlated and move
    together), <= 4% with drift_share=0.5 (1% over 200 seeds). Takes ~0.3 s."""
    default = share_half = 0
    for seed in range(50):
        first, second = halves(weather, seed)
        result = compute_drift(first, second, WEATHER_FEATURES, drift_share=0.3, **DISTANCES)
        default += result.status == "drift"
        share_half += (
            compute_drift(first, second, WEATHER_FEATURES, drift_share=0.5, **DISTANCES).status == "drift"
        )
    assert default / 50 <= 0.15
    assert share_half / 50 <= 0.04


# -- not enough data, unusable columns -------------------------------------------------------------
def test_below_min_rows_is_insufficient_data_never_drift(seasons):
    summer, winter = seasons
    result = compute_drift(summer.head(150), winter, WEATHER_FEATURES, min_rows=200, **DISTANCES)
    assert result.status == "insufficient_data"
    assert result.drift_share is None
    assert result.drifted_columns == []
    assert "150 reference" in result.reason
    assert all(c.status == "insufficient_data" and not c.drifted for c in result.columns)
    assert result.column("temp_max").score > 1  # still computed, for information


def test_column_with_too_few_values_is_insufficient_and_the_rest_decides(seasons):
    summer, winter = seasons
    winter = winter.copy()
    winter.loc[winter.index[50:], "wind"] = np.nan
    result = compute_drift(summer, winter, WEATHER_FEATURES, min_rows=200)
    assert result.column("wind").status == "insufficient_data"
    assert result.column("wind").n_current == 50
    assert "wind" not in result.evaluated_columns
    assert result.status == "drift"


def test_all_nan_column_is_not_evaluable_and_the_rest_runs(seasons):
    summer, winter = seasons
    summer, winter = summer.copy(), winter.copy()
    winter["sensor"] = np.nan
    summer["sensor"] = "ok"
    summer["empty"] = np.nan
    winter["empty"] = np.nan
    result = compute_drift(summer, winter, [*WEATHER_FEATURES, "sensor", "empty"])
    for name in ("sensor", "empty"):
        col = result.column(name)
        assert col.status == "not_evaluable"
        assert col.score is None
        assert not col.drifted
    assert "current" in result.column("sensor").reason
    assert len(result.evaluated_columns) == 5
    assert result.status == "drift"


def test_no_evaluable_column_is_insufficient_data():
    ref = pd.DataFrame({"a": [np.nan] * 300})
    cur = pd.DataFrame({"a": [np.nan] * 300})
    result = compute_drift(ref, cur, ["a"])
    assert result.status == "insufficient_data"
    assert "no column" in result.reason


def test_high_cardinality_categoricals_are_bucketed_or_not_evaluable():
    rng = np.random.default_rng(0)
    n = 5000
    ref = pd.DataFrame(
        {"city": rng.choice([f"c{i}" for i in range(300)], n), "id": [f"u{i}" for i in range(n)]}
    )
    cur = pd.DataFrame(
        {"city": rng.choice([f"c{i}" for i in range(300)], n), "id": [f"v{i}" for i in range(n)]}
    )
    result = compute_drift(ref, cur, ["city", "id"])
    assert result.column("id").status == "not_evaluable"
    assert "ID-like" in result.column("id").reason
    city = result.column("city")
    assert city.bucketed
    assert city.status in ("drift", "no_drift")
    keep = drift.top_categories(ref["city"], drift.MAX_CATEGORIES - 1)
    p, q = drift.category_counts(drift.bucket(ref["city"], keep), drift.bucket(cur["city"], keep))
    assert len(p) == drift.MAX_CATEGORIES
    assert city.score == pytest.approx(drift.jensenshannon_counts(p.to_numpy(float), q.to_numpy(float)))


def test_infinities_are_dropped_like_nans():
    ref = pd.DataFrame({"x": np.r_[np.arange(300.0), np.inf]})
    cur = pd.DataFrame({"x": np.r_[np.arange(300.0), -np.inf, np.nan]})
    col = compute_drift(ref, cur, ["x"], **DISTANCES).column("x")
    assert col.n_reference == 300
    assert col.n_current == 300
    assert col.score == 0.0


# -- schema -----------------------------------------------------------------------------------------
def test_missing_column_names_uri_and_column(seasons):
    summer, winter = seasons
    with pytest.raises(DataError, match=r"cur\.csv: missing column\(s\) 'wind'"):
        compute_drift(summer, winter.drop(columns="wind"), WEATHER_FEATURES, current_uri="cur.csv")


def test_extra_column_is_a_mismatch_when_comparing_all_columns(seasons):
    summer, winter = seasons
    with pytest.raises(
        DataError, match=r"cur\.csv lacks column\(s\) none and has extra column\(s\) \['extra'\]"
    ):
        compute_drift(summer, winter.assign(extra=1.0), None, current_uri="cur.csv", reference_uri="ref.csv")


def test_changed_kind_names_column_and_both_uris(seasons):
    summer, winter = seasons
    with pytest.raises(DataError, match=r"column 'wind': numeric .* ref\.csv but categorical .* cur\.csv"):
        compute_drift(
            summer,
            winter.assign(wind=winter["wind"].astype(str)),
            WEATHER_FEATURES,
            reference_uri="ref.csv",
            current_uri="cur.csv",
        )


def test_int_and_float_are_the_same_kind():
    ref = pd.DataFrame({"n": np.arange(300)})
    cur = pd.DataFrame({"n": np.r_[np.arange(299.0), np.nan]})
    assert compute_drift(ref, cur, ["n"]).column("n").kind == "numeric"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"numeric_method": "psi"}, "numeric_method"),
        ({"categorical_method": "wasserstein"}, "categorical_method"),
        ({"drift_share": 0}, "drift_share"),
        ({"min_rows": 0}, "min_rows"),
        ({"threshold": {"numerical": 0.2}, **DISTANCES}, "threshold keys"),
        ({"threshold": 0.2}, "threshold needs pinned methods"),
        ({"threshold": 0.2, "numeric_method": "ks"}, "threshold needs pinned methods"),
    ],
)
def test_bad_arguments(kwargs, message):
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match=message):
        compute_drift(frame, frame, ["a"], **kwargs)


def test_threshold_override_per_kind(seasons):
    summer, winter = seasons
    result = compute_drift(summer, winter, WEATHER_FEATURES, threshold={"numeric": 100.0}, **DISTANCES)
    assert result.column("temp_max").threshold == 100.0
    assert not result.column("temp_max").drifted
    assert result.column("weather").threshold == 0.1


# -- parity with Evidently --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evidently_scores():
    warnings.filterwarnings("ignore")
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    def run(ref, cur, numeric, categorical, num_method, cat_method):
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        metrics = [ValueDrift(column=c, method=num_method) for c in numeric]
        metrics += [ValueDrift(column=c, method=cat_method) for c in categorical]
        snapshot = Report(metrics).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        return {m["config"]["column"]: m["value"] for m in snapshot.dict()["metrics"]}

    return run


@pytest.mark.parametrize(
    ("num_method", "cat_method"),
    [("wasserstein", "jensenshannon"), ("ks", "chisquare"), ("jensenshannon", "jensenshannon")],
)
def test_scores_match_evidently(evidently_scores, seasons, islands, num_method, cat_method):
    cases = [
        (*seasons, WEATHER_FEATURES[:4], ["weather"]),
        (*islands, PENGUIN_NUMERIC, PENGUIN_CATEGORICAL),
        (*halves(vega.seattle_weather(), 3), WEATHER_FEATURES[:4], ["weather"]),
    ]
    for ref, cur, numeric, categorical in cases:
        ours = compute_drift(
            ref,
            cur,
            numeric + categorical,
            numeric_method=num_method,
            categorical_method=cat_method,
            min_rows=1,
        )
        theirs = evidently_scores(ref, cur, numeric, categorical, num_method, cat_method)
        for name in numeric + categorical:
            assert ours.column(name).score == pytest.approx(theirs[name], rel=1e-9, abs=1e-12), name


def test_dataset_decision_matches_evidently_preset(seasons):
    """Same per-column decisions as DataDriftPreset with the method pinned; same dataset decision
    when every column is evaluable (Evidently divides by all columns, we by the evaluated ones)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    summer, winter = seasons
    for ref, cur in ((summer, winter), halves(vega.seattle_weather(), 1)):
        ours = compute_drift(ref, cur, WEATHER_FEATURES, drift_share=0.3, min_rows=1, **DISTANCES)
        definition = DataDefinition(numerical_columns=WEATHER_FEATURES[:4], categorical_columns=["weather"])
        snapshot = Report(
            [DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon", drift_share=0.3)]
        ).run(
            Dataset.from_pandas(cur[WEATHER_FEATURES], data_definition=definition),
            Dataset.from_pandas(ref[WEATHER_FEATURES], data_definition=definition),
        )
        metrics = snapshot.dict()["metrics"]
        count = next(m for m in metrics if m["config"]["type"].endswith("DriftedColumnsCount"))["value"]
        assert count["share"] == pytest.approx(ours.drift_share)
        assert (count["share"] >= 0.3) == (ours.status == "drift")
        for m in metrics:
            if m["config"]["type"].endswith("ValueDrift"):
                col = ours.column(m["config"]["column"])
                assert (m["value"] >= 0.1) == col.drifted


# -- the report's frames and data arrival -----------------------------------------------------------
def test_report_frames_are_a_deterministic_sample_of_scored_columns(seasons):
    summer, winter = seasons
    summer = summer.assign(empty=np.nan)
    winter = winter.assign(empty=np.nan)
    result = compute_drift(summer, winter, [*WEATHER_FEATURES, "empty"])
    ref, cur, numeric, categorical, sampled = report_frames(summer, winter, result, sample_rows=100)
    assert sampled
    assert len(ref) == len(cur) == 100
    assert numeric == WEATHER_FEATURES[:4]
    assert categorical == ["weather"]
    again = report_frames(summer, winter, result, sample_rows=100)[0]
    pd.testing.assert_frame_equal(ref, again)
    assert report_frames(summer, winter, result, sample_rows=10_000)[4] is False


def test_data_signature_tracks_arrival_and_changes(tmp_path):
    target = tmp_path / "batch.csv"
    assert data_signature(str(target)) is None
    assert data_signature(str(tmp_path / "*.csv")) is None
    target.write_text("a\n1\n")
    first = data_signature(str(target))
    assert first
    assert first == data_signature(str(target))
    assert data_signature(str(tmp_path / "*.csv")) is not None
    target.write_text("a\n1\n2\n")
    assert data_signature(str(target)) != first
