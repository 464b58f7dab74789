"""core.feedback / core.feedback_join: late labels joined to predictions, live metrics, degradation."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.feedback import (
    LABEL_COLUMN,
    SCORING_DATE_COLUMN,
    FeedbackError,
    LabelIssues,
    live_metrics,
    paired_metrics,
    prepare_labels,
    proba_columns,
    scoring_in_window,
    window,
)
from mlops_provider.core.feedback_join import join_labels
from mlops_provider.core.gate import compare_to_champion, evaluate_gates
from mlops_provider.core.judgement import degradation

CLASSES = ["rain", "sun"]
DAY = "2024-03-0{}T00:00:00+00:00"


def predictions(
    ids,
    predicted,
    *,
    alias="champion",
    version="3",
    day=1,
    proba=None,
    classes=CLASSES,
    id_column="id",
):
    """A prediction file's rows, as the scoring operator writes them."""
    frame = pd.DataFrame({id_column: ids, "row": range(len(ids)), "prediction": predicted})
    if proba is not None:
        for column, values in zip(proba_columns(classes), np.asarray(proba).T, strict=True):
            frame[column] = values
    frame["model_version"] = version
    frame["alias"] = alias
    frame["scored_at"] = DAY.format(day)
    frame["scoring_date"] = DAY.format(day)
    return frame


def labels(ids, values, source="labels/2024-03.csv", id_column="id"):
    return prepare_labels(
        pd.DataFrame({id_column: ids, "weather": values}),
        id_column=id_column,
        label_column="weather",
        source=source,
    )


def join(preds, labs, task_type="classification", id_column="id"):
    return join_labels(preds, labs, id_column=id_column, task_type=task_type, where="preds.parquet + labels")


# -- vocabulary and label files ---------------------------------------------------------------------


def test_proba_columns_follow_the_class_order():
    assert proba_columns(["sun", "rain", 3]) == ["proba_sun", "proba_rain", "proba_3"]


def test_missing_label_column_names_the_file_and_the_column():
    frame = pd.DataFrame({"id": [1], "temp": [3.0], **{f"c{i}": [i] for i in range(20)}})
    with pytest.raises(FeedbackError) as err:
        prepare_labels(frame, id_column="id", label_column="weather", source="s3://b/labels/a.csv")
    message = str(err.value)
    assert "s3://b/labels/a.csv" in message
    assert "'weather'" in message
    assert "'temp'" in message
    assert "and 12 more" in message  # the columns it has, truncated
    with pytest.raises(FeedbackError, match="'date'.*the id column"):
        prepare_labels(frame, id_column="date", label_column="temp", source="a.csv")


# -- ids ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predicted_ids", "label_ids"),
    [
        ([12, 13], ["12", "13"]),
        ([12.0, 13.0], ["12", "13"]),
        (["12", "13"], [12, 13]),
        ([12, 13], [12.0, 13.0]),
        (["12", "13"], ["12", 13.0]),
    ],
)
def test_ids_12_12_0_and_text_12_are_one_id(predicted_ids, label_ids):
    joined, issues = join(predictions(predicted_ids, ["rain", "sun"]), labels(label_ids, ["rain", "rain"]))
    assert sorted(str(i) for i in joined["id"]) == ["12", "13"]  # numbers, or text when both sides are
    assert joined.sort_values("id")[LABEL_COLUMN].tolist() == ["rain", "rain"]
    assert issues.unscored_ids == 0
    assert issues.unlabelled_predictions == 0


def test_dates_join_whether_read_as_dates_or_text():
    dates = pd.to_datetime(["2015-01-03", "2015-01-04"])
    joined, _ = join(
        predictions(dates, ["rain", "sun"], id_column="date"),
        labels(["2015-01-03", "2015-01-04"], ["rain", "sun"], id_column="date"),
        id_column="date",
    )
    assert joined["date"].tolist() == ["2015-01-03", "2015-01-04"]


def test_no_id_in_common_names_where_and_shows_both_sides():
    with pytest.raises(FeedbackError) as err:
        join(predictions([1, 2, 3, 4], ["rain"] * 4), labels(["a-1", "a-2", "a-3", "a-4"], ["rain"] * 4))
    message = str(err.value)
    assert message.startswith("preds.parquet + labels: no label id matches")
    assert "1, 2, 3 (int64)" in message
    assert "'a-1', 'a-2', 'a-3' (object)" in message
    assert "'a-4'" not in message  # three examples each


# -- labels that cannot be used -----------------------------------------------------------------------


def test_the_same_label_twice_counts_once():
    joined, issues = join(predictions([1, 2], ["rain", "sun"]), labels([1, 1, 2], ["rain", "rain", "sun"]))
    assert len(joined) == 2
    assert issues.duplicate_ids == 1
    assert issues.conflicting_ids == 0
    assert issues.examples["duplicate_ids"] == ["1 (2024-03.csv)"]


def test_conflicting_labels_are_left_out_and_counted_with_an_example():
    joined, issues = join(
        predictions(["2015-01-02", "2015-01-03"], ["rain", "sun"]),
        labels(["2015-01-02", "2015-01-03", "2015-01-03"], ["rain", "rain", "sun"]),
    )
    assert joined["id"].tolist() == ["2015-01-02"]
    assert issues.conflicting_ids == 1
    assert issues.duplicate_ids == 0
    assert (
        "1 label id(s) appear twice with different labels and were left out (e.g. '2015-01-03' (2024-03.csv))"
        in issues.reasons()
    )


def test_missing_labels_and_unscored_ids_are_counted():
    joined, issues = join(
        predictions([1, 2, 3], ["rain", "sun", "rain"]), labels([1, 2, 7, 8], ["rain", None, "sun", "sun"])
    )
    assert joined["id"].tolist() == [1]
    assert (issues.label_rows, issues.missing_labels, issues.unscored_ids) == (4, 1, 2)
    assert issues.examples["unscored_ids"] == ["7 (2024-03.csv)", "8 (2024-03.csv)"]
    assert issues.unlabelled_predictions == 2  # ids 2 and 3 were served and have no label


def test_unlabelled_counts_served_predictions_only():
    preds = pd.concat(
        [predictions([1, 2], ["rain", "sun"]), predictions([1, 2], ["sun", "sun"], alias="challenger")]
    )
    _, issues = join(preds, labels([1], ["rain"]))
    assert issues.unlabelled_predictions == 1
    assert issues.examples["unlabelled_predictions"] == ["2"]


def test_unlabelled_counts_the_configured_served_alias():
    preds = pd.concat(
        [
            predictions([1, 2, 3], ["rain", "sun", "sun"], alias="production"),
            predictions([1, 2, 3], ["sun", "sun", "sun"], alias="previous_champion"),
        ]
    )
    where = "preds.parquet + labels"
    _, issues = join_labels(
        preds,
        labels([1], ["rain"]),
        id_column="id",
        task_type="classification",
        where=where,
        served_alias="production",
    )
    assert issues.unlabelled_predictions == 2  # ids 2 and 3 served under @production
    _, default = join_labels(
        preds, labels([1], ["rain"]), id_column="id", task_type="classification", where=where
    )
    assert default.unlabelled_predictions == 0  # under the default served alias nothing was served


def test_a_row_scored_again_keeps_the_latest_batch():
    preds = pd.concat(
        [
            predictions([1, 2], ["rain", "rain"], day=3),
            predictions([1], ["sun"], day=1),
            predictions([1, 2], ["sun", "sun"], day=2),
        ]
    )
    joined, issues = join(preds, labels([1, 2], ["rain", "sun"]))
    assert issues.rescored == 3
    assert joined.sort_values("id")["prediction"].tolist() == ["rain", "rain"]
    assert {ts.day for ts in joined[SCORING_DATE_COLUMN]} == {3}


def test_numbers_as_labels_of_a_text_model_are_a_type_mismatch():
    joined, issues = join(predictions([1, 2, 3], ["rain", "sun", "rain"]), labels([1, 2, 3], [0, 1, 1]))
    assert joined.empty
    assert issues.type_mismatch == 3
    assert issues.examples["type_mismatch"] == ["0", "1"]
    assert issues.reasons()[0].startswith("3 label(s) are not of the kind the model predicts (text)")


def test_text_labels_naming_numeric_classes_still_match():
    preds = predictions([1, 2], [0, 1], proba=[[0.8, 0.2], [0.3, 0.7]], classes=[0, 1])
    joined, issues = join(preds, labels([1, 2], ["0", "1"]))
    assert joined[LABEL_COLUMN].tolist() == ["0", "1"]
    assert joined["prediction"].tolist() == ["0", "1"]
    assert issues.type_mismatch == 0


def test_float_classes_join_their_whole_number_labels():
    preds = predictions([1, 2], [1.0, 0.0], proba=[[0.1, 0.9], [0.6, 0.4]], classes=[0.0, 1.0])
    assert "proba_1.0" in preds.columns  # str(1.0), as the scoring operator writes it
    joined, issues = join(preds, labels([1, 2], [1, 1]))
    assert (issues.type_mismatch, issues.unknown_class) == (0, 0)
    assert [c for c in joined.columns if c.startswith("proba_")] == ["proba_0", "proba_1"]
    live = live_metrics(joined, task_type="classification", metrics=["accuracy", "log_loss"])
    assert live["champion"]["metrics"]["accuracy"] == 0.5
    assert live["champion"]["metrics"]["log_loss"] == pytest.approx(
        log_loss([1, 1], [[0.1, 0.9], [0.6, 0.4]], labels=[0, 1])
    )


def test_nothing_scored_leaves_every_label_unscored():
    empty = predictions([1], ["rain"]).iloc[:0]
    joined, issues = join(empty, labels([1, 2], ["rain", "sun"]))
    assert joined.empty
    assert (issues.unscored_ids, issues.type_mismatch) == (2, 0)
    assert live_metrics(joined, task_type="classification") == {}


def test_an_unknown_class_is_kept_and_counted():
    preds = predictions([1, 2], ["rain", "sun"], proba=[[0.9, 0.1], [0.2, 0.8]])
    joined, issues = join(preds, labels([1, 2], ["snow", "sun"]))
    assert joined.sort_values("id")[LABEL_COLUMN].tolist() == ["snow", "sun"]
    assert issues.unknown_class == 1
    assert issues.examples["unknown_class"] == ["'snow'"]
    live = live_metrics(joined, task_type="classification")["champion"]["metrics"]
    assert live["accuracy"] == 0.5  # the unknown class counts as the model's error
    assert "log_loss" not in live  # undefined: a label outside the model's classes


def test_regression_labels_that_are_not_numbers_are_left_out():
    preds = predictions([1, 2, 3, 4], [10.0, 20.0, 30.0, 40.0])
    joined, issues = join(preds, labels([1, 2, 3, 4], ["11", "n/a", 29.0, "inf"]), task_type="regression")
    assert sorted(joined["id"].tolist()) == [1, 3]
    assert issues.type_mismatch == 2
    assert "are not finite numbers" in issues.reasons()[0]
    live = live_metrics(joined, task_type="regression", metrics=["rmse"])["champion"]
    assert live["metrics"] == {"rmse": pytest.approx(1.0)}


# -- the window ---------------------------------------------------------------------------------------


def test_window_start_is_exclusive_and_end_inclusive_and_reruns_agree():
    start, end = window(datetime(2024, 3, 5), 3)
    assert (start, end) == (datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC))
    frame = pd.concat([predictions([day], ["rain"], day=day) for day in range(1, 7)])
    frame.loc[frame["id"] == 6, "scoring_date"] = "2024-03-05T00:00:00.000001+00:00"  # just after the end
    chosen = scoring_in_window(frame, start, end)
    assert chosen["id"].tolist() == [3, 4, 5]
    assert scoring_in_window(frame, *window(datetime(2024, 3, 5), 3)).equals(chosen)
    naive = scoring_in_window(frame, datetime(2024, 3, 2), datetime(2024, 3, 5))  # naive: UTC
    assert naive["id"].tolist() == [3, 4, 5]
    with pytest.raises(InvalidInputError, match="window_days"):
        window(end, 0)


def test_an_unparseable_scoring_date_names_the_column():
    frame = predictions([1], ["rain"])
    frame["scoring_date"] = "yesterday"
    with pytest.raises(FeedbackError, match="'scoring_date'.*'yesterday'"):
        scoring_in_window(frame, *window(datetime(2024, 3, 5, tzinfo=UTC), 3))


# -- live metrics -------------------------------------------------------------------------------------


def three_class_case(rows=300, seed=0):
    rng = np.random.default_rng(seed)
    classes = ["cloudy", "rain", "sun"]
    truth = rng.choice(classes, rows)
    proba = rng.dirichlet([1, 1, 1], rows)
    predicted = np.array(classes)[proba.argmax(axis=1)]
    preds = predictions(np.arange(rows), predicted, proba=proba, classes=classes)
    return preds, labels(rng.permutation(np.arange(rows)), truth), truth, proba, predicted, classes


def test_live_metrics_match_scikit_learn_on_the_same_rows():
    preds, labs, truth, proba, predicted, classes = three_class_case()
    joined, _ = join(preds, labs)
    live = live_metrics(joined, task_type="classification")["champion"]
    by_id = labs.set_index("id")[LABEL_COLUMN].reindex(np.arange(len(truth))).to_numpy()
    assert live["labels"] == len(truth)
    assert live["metrics"]["accuracy"] == pytest.approx(accuracy_score(by_id, predicted))
    assert live["metrics"]["f1_macro"] == pytest.approx(f1_score(by_id, predicted, average="macro"))
    assert live["metrics"]["log_loss"] == pytest.approx(log_loss(by_id, proba, labels=classes))
    assert live["metrics"]["roc_auc"] == pytest.approx(
        roc_auc_score(by_id, proba, multi_class="ovr", labels=classes)
    )
    only = live_metrics(joined, task_type="classification", metrics=["accuracy"])
    assert set(only["champion"]["metrics"]) == {"accuracy"}
    with pytest.raises(InvalidInputError, match="'f1'"):
        live_metrics(joined, task_type="classification", metrics=["f1"])


def test_live_metrics_use_the_latest_version_of_an_alias():
    preds = pd.concat(
        [
            predictions([1, 2], ["rain", "rain"], version="3", day=1),
            predictions([3, 4], ["sun", "sun"], version="4", day=2),
        ]
    )
    joined, _ = join(preds, labels([1, 2, 3, 4], ["rain", "rain", "rain", "sun"]))
    live = live_metrics(joined, task_type="classification", metrics=["accuracy"])
    assert live == {
        "champion": {
            "version": "4",
            "labels": 2,
            "metrics": {"accuracy": 0.5},
            "other_versions": [{"version": "3", "labels": 2}],
        }
    }


def test_paired_metrics_use_only_rows_labelled_and_scored_under_both_aliases():
    champion = predictions([1, 2, 3, 4], ["rain", "rain", "sun", "sun"], version="5")
    shadow = predictions([1, 2, 3], ["rain", "sun", "sun"], alias="previous_champion", version="4")
    later = predictions([4], ["sun"], alias="previous_champion", version="4", day=2)  # another batch
    joined, _ = join(
        pd.concat([champion, shadow, later]), labels([1, 2, 3, 4], ["rain", "sun", "sun", "sun"])
    )
    paired = paired_metrics(
        joined, "champion", "previous_champion", task_type="classification", metrics=["accuracy"]
    )
    assert paired["rows"] == 3  # id 4 was scored in different batches
    assert paired["versions"] == {"champion": "5", "previous_champion": "4"}
    assert paired["champion"] == {"accuracy": pytest.approx(2 / 3)}
    assert paired["previous_champion"] == {"accuracy": 1.0}
    none = paired_metrics(joined, "champion", "challenger", task_type="classification")
    assert none["rows"] == 0
    assert none["challenger"] == {}


# -- degradation --------------------------------------------------------------------------------------


def test_degradation_in_the_worse_direction_of_each_metric():
    results = degradation(
        {"f1_macro": 0.70, "log_loss": 0.62, "accuracy": 0.80},
        {"f1_macro": 0.80, "log_loss": 0.50, "accuracy": 0.85},
        {"f1_macro": {"max_drop": 0.05}, "log_loss": {"max_drop": 0.2}, "accuracy": {"max_drop": 0.05}},
    )
    by_metric = {r.metric: r for r in results}
    assert by_metric["f1_macro"].value == pytest.approx(0.10)
    assert not by_metric["f1_macro"].passed
    assert by_metric["log_loss"].value == pytest.approx(0.12)  # lower is better: live - holdout
    assert by_metric["log_loss"].passed
    assert by_metric["accuracy"].passed  # 0.85 - 0.80 is 0.05 up to rounding
    assert all(r.gate == "degrade" for r in results)
    assert "lower is better" in by_metric["log_loss"].detail


@pytest.mark.parametrize(
    ("live", "holdout"),
    [({}, {"rmse": 3.0}), ({"rmse": math.nan}, {"rmse": 3.0}), ({"rmse": 3.0}, {"rmse": None})],
)
def test_degradation_without_a_number_on_both_sides_passes_and_says_so(live, holdout):
    (result,) = degradation(live, holdout, {"rmse": {"max_drop": 1.0}})
    assert result.passed
    assert result.value is None
    assert "could not be computed" in result.detail


def test_a_degrade_rule_without_max_drop_names_the_key():
    with pytest.raises(InvalidInputError, match=r"feedback\.degrade\.f1_macro\.max_drop"):
        degradation({"f1_macro": 0.7}, {"f1_macro": 0.8}, {"f1_macro": {"drop": 0.1}})


def test_compare_to_champion_applies_the_gate_rules():
    rules = {"f1_macro": {"min_delta": 0.0}, "log_loss": {"min_delta": 0.01}}
    challenger, champion = {"f1_macro": 0.7, "log_loss": 0.4}, {"f1_macro": 0.8, "log_loss": 0.5}
    assert compare_to_champion(challenger, champion, rules) == evaluate_gates(
        challenger, champion=champion, vs_champion=rules
    )
    assert [g.passed for g in compare_to_champion(challenger, champion, rules)] == [False, True]


# -- hostile values -----------------------------------------------------------------------------------


def test_hostile_ids_and_labels_are_clipped_in_examples_and_reasons():
    long = "x" * 10_000
    script = "<script>alert(1)</script>\n" * 20
    ids = [f"a\nb{long}", script, "ok", "\u2028line"]
    preds = predictions(["ok", "served\r\n" + long], ["rain", "sun"])
    labs = labels(
        ids + [script], [long, "rain", "rain", None, "sun"], source="labels/" + "d" * 500 + "\n.csv"
    )
    joined, issues = join(preds, labs)
    assert joined["id"].tolist() == ["ok"]
    assert issues.conflicting_ids == 1  # the <script> id, twice with different labels
    for name, shown in issues.examples.items():
        assert shown, name
        for text in shown:
            assert len(text) <= 80, (name, text)
            assert not any(ch in text for ch in "\n\r\u2028")
    reasons = issues.reasons()
    assert len(reasons) == len(issues.examples)
    assert all(len(r) <= 200 and "\n" not in r for r in reasons)
    assert isinstance(LabelIssues(**{**issues.as_dict(), "examples": {}}).as_dict(), dict)


def test_hostile_ids_in_the_no_match_error_are_clipped():
    preds = predictions(["<script>\n" + "y" * 5000], ["rain"])
    with pytest.raises(FeedbackError) as err:
        join(preds, labels(["z" * 5000], ["rain"]))
    assert len(str(err.value)) < 400
    assert "\n" not in str(err.value)
