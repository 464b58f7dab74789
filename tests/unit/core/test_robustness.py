"""core.robustness: the perturbed holdout copy and the robustness gate's results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.metric_plan import MetricPlan
from mlops_provider.core.robustness import RobustnessSpec, perturb, robustness_results, score_robustness

NAMES = MetricPlan.build("classification").names


def frame(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(10.0, 2.0, rows),
            "n": rng.integers(0, 100, rows),
            "flat": np.full(rows, 5.0),
            "flag": rng.random(rows) < 0.5,
            "city": rng.choice(["a", "b", "c"], rows),
        }
    )


def spec(**kw: object) -> RobustnessSpec:
    found = RobustnessSpec.from_config({"max_drop": {"f1_macro": 0.05}, **kw}, NAMES)
    assert found is not None
    return found


def test_noise_scales_with_each_columns_spread_and_is_repeatable() -> None:
    X = frame()
    noisy = perturb(X, spec(noise=0.5, seed=3))
    assert noisy.equals(perturb(X, spec(noise=0.5, seed=3)))
    assert not noisy.equals(perturb(X, spec(noise=0.5, seed=4)))
    assert (noisy["x"] - X["x"]).std() == pytest.approx(0.5 * X["x"].std(ddof=0), rel=0.1)
    assert (noisy["flat"] == 5.0).all()  # no spread, no noise
    assert noisy["city"].equals(X["city"])
    assert noisy["flag"].equals(X["flag"])
    assert X["x"].iloc[0] != noisy["x"].iloc[0]  # the copy changed, the input did not
    assert frame()["x"].equals(X["x"])


def test_missing_rate_blanks_that_share_of_every_column() -> None:
    X = frame()
    blanked = perturb(X, spec(missing_rate=0.2, seed=1))
    for column in X.columns:
        assert blanked[column].isna().mean() == pytest.approx(0.2, abs=0.03), column
    assert not X.isna().any().any()


def test_results_measure_the_drop_in_each_metrics_worse_direction() -> None:
    costs = RobustnessSpec.from_config({"noise": 0.1, "max_drop": {"f1_macro": 0.05, "log_loss": 0.1}}, NAMES)
    assert costs is not None
    directions = {"f1_macro": True, "log_loss": False}
    f1, loss = robustness_results(
        {"f1_macro": 0.9, "log_loss": 0.2}, {"f1_macro": 0.84, "log_loss": 0.25}, costs, directions
    )
    assert not f1.passed
    assert f1.value == pytest.approx(0.06)
    assert loss.passed
    assert loss.value == pytest.approx(0.05)
    [missing] = robustness_results({"f1_macro": 0.9}, {"f1_macro": None}, spec(noise=0.1), directions)
    assert not missing.passed
    assert "not a finite number" in missing.detail


def test_a_model_that_cannot_score_blanks_fails_the_gate() -> None:
    from sklearn.linear_model import LogisticRegression

    X = frame()[["x", "n"]]
    y = (X["x"] > 10).map({True: "hi", False: "lo"})
    model = LogisticRegression(max_iter=1000).fit(X, y)
    plan = MetricPlan.build("classification")
    record, [result] = score_robustness(model, X, y, {"f1_macro": 1.0}, spec(missing_rate=0.1), plan)
    assert not result.passed
    assert "cannot score the perturbed holdout: ValueError" in result.detail
    assert "error" in record
    assert record["missing_rate"] == 0.1


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"noise": "0.1", "max_drop": {"f1_macro": 0.1}}, "evaluation.robustness.noise"),
        ({"noise": 11, "max_drop": {"f1_macro": 0.1}}, "evaluation.robustness.noise"),
        ({"missing_rate": 0.95, "max_drop": {"f1_macro": 0.1}}, "evaluation.robustness.missing_rate"),
        ({"noise": 0.1, "max_drop": {}}, "evaluation.robustness.max_drop must map"),
        ({"noise": 0.1, "max_drop": {"rmse": 0.1}}, "evaluation.robustness.max_drop.rmse: unknown metric"),
        ({"noise": 0.1, "max_drop": {"f1_macro": float("inf")}}, "max_drop.f1_macro must be a number >= 0"),
        ({"noise": 0.1, "seed": -1, "max_drop": {"f1_macro": 0.1}}, "evaluation.robustness.seed"),
        ({"noise": 0.1, "seed": True, "max_drop": {"f1_macro": 0.1}}, "evaluation.robustness.seed"),
        ([0.1], "evaluation.robustness must be"),
    ],
)
def test_bad_settings_name_the_key(raw: object, fragment: str) -> None:
    with pytest.raises(InvalidInputError) as failed:
        RobustnessSpec.from_config(raw, NAMES)
    assert fragment in str(failed.value)
