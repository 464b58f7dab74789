"""Business metrics (custom functions, a cost matrix) and the robustness gate, end to end.

Real MLflow (SQLite), scikit-learn and the real operators (train -> evaluate -> register -> promote);
the custom metric module lives in a DAGs folder, as a user's would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from support import cancer_csv, context, train

from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator

MODEL = "cancer-business"
METRICS_MODULE = '''
import math

def expected_profit(y_true, y_pred, y_proba, X):
    """Each caught malignant case is worth 10, a false alarm costs 1, a missed case 50."""
    profit = 0.0
    for actual, predicted in zip(y_true, y_pred):
        if predicted == "malignant":
            profit += 10.0 if actual == "malignant" else -1.0
        elif actual == "malignant":
            profit -= 50.0
    return profit / len(y_true)

def rows_seen(y_true, y_pred, y_proba, X):
    return float(len(X)) if X is not None else math.nan

def broken(y_true, y_pred, y_proba, X):
    raise ZeroDivisionError("no budget for this quarter")

def not_a_number(y_true, y_pred, y_proba, X):
    return float("nan")
'''
PROFIT = {"expected_profit": {"function": "business_metrics:expected_profit", "greater_is_better": True}}
COSTS = {"malignant": {"benign": 50}, "benign": {"malignant": 1}}


@pytest.fixture
def dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "business_metrics.py").write_text(METRICS_MODULE)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.delitem(sys.modules, "business_metrics", raising=False)  # each test has its own folder
    return folder


@pytest.fixture
def data(tmp_path: Path, dags: Path) -> Path:
    return cancer_csv(tmp_path)


def trained(data: Path, estimator: str, params: dict[str, Any], **evaluate: Any) -> tuple[str, dict]:
    run_id = str(train(MODEL, data, estimator, params, f"run-{estimator}-{params}")["run_id"])
    op = EvaluateModelOperator(task_id="evaluate", run_id=run_id, compute_importance=False, **evaluate)
    result = op.execute(context("evaluate"))
    version = RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run_id).execute(
        context("register")
    )["version"]
    return version, result


def promote(version: str, **gates: Any) -> dict[str, Any]:
    op = PromoteModelOperator(task_id="promote", model_name=MODEL, version=version, **gates)
    return op.execute(context("promote"))


def champion() -> str | None:
    return MLflowRegistryHook().alias_version(MODEL, "champion")


def test_custom_metric_and_cost_are_logged_and_gate_promotion(data: Path) -> None:
    custom = {**PROFIT, "rows_seen": {"function": "business_metrics:rows_seen"}}
    version, evaluation = trained(
        data,
        "sklearn.linear_model.LogisticRegression",
        {"max_iter": 5000},
        custom_metrics=custom,
        cost_matrix=COSTS,
    )
    metrics = evaluation["metrics"]
    assert metrics["rows_seen"] > 50  # the holdout's features reach the function
    assert metrics["expected_profit"] > 0
    assert metrics["expected_cost"] >= 0
    with MLflowRegistryHook().session() as client:
        logged = client.get_run(evaluation["run_id"]).data.metrics
    assert logged["holdout_expected_profit"] == pytest.approx(metrics["expected_profit"])
    assert logged["holdout_expected_cost"] == pytest.approx(metrics["expected_cost"])

    summary = promote(
        version,
        custom_metrics=custom,
        cost_matrix={**COSTS, "unseen": {"benign": 7}},  # a class this model lacks: noted, never matched
        thresholds={"expected_profit": {"min": 0.0}, "expected_cost": {"max": 5.0}},
    )
    assert summary["decision"] == "promoted"
    assert champion() == version
    gated = {(g["gate"], g["metric"]) for g in summary["gates"]}
    assert {("threshold_min", "expected_profit"), ("threshold_max", "expected_cost")} <= gated
    assert summary["metrics"]["challenger"]["expected_profit"] == pytest.approx(metrics["expected_profit"])
    assert summary["metrics"]["challenger"]["expected_cost"] == pytest.approx(metrics["expected_cost"])
    [note] = [g for g in summary["gates"] if g["gate"] == "note"]
    assert note["passed"]
    assert "['unseen']" in note["detail"]


def test_cost_is_lower_is_better_against_the_champion(data: Path) -> None:
    """A challenger with a higher expected cost is refused by vs_champion even when its F1 is fine."""
    good, _ = trained(data, "sklearn.linear_model.LogisticRegression", {"max_iter": 5000})
    assert promote(good)["decision"] == "promoted"
    worse, _ = trained(data, "sklearn.dummy.DummyClassifier", {"strategy": "most_frequent"})
    with pytest.raises(AirflowFailException, match="expected_cost"):
        promote(worse, cost_matrix=COSTS, vs_champion={"expected_cost": {"min_delta": 0.0}})
    assert champion() == good
    tags = MLflowRegistryHook().model_version(MODEL, worse).tags
    assert tags["mlops.gate.decision"] == "refused"
    assert "lower is better" in tags["mlops.gate.reason"]


@pytest.mark.parametrize(
    ("function", "fragment"),
    [
        ("business_metrics:broken", "ZeroDivisionError: no budget for this quarter"),
        ("business_metrics:not_a_number", "not a finite number"),
    ],
)
def test_a_failing_metric_function_refuses_and_never_promotes(
    data: Path, function: str, fragment: str
) -> None:
    version, _ = trained(data, "sklearn.linear_model.LogisticRegression", {"max_iter": 5000})
    custom = {"flaky_kpi": {"function": function}}
    with pytest.raises(AirflowFailException, match="flaky_kpi") as refused:
        promote(version, custom_metrics=custom)  # not even in a threshold: a declared metric must work
    assert fragment in str(refused.value)
    assert champion() is None
    assert MLflowRegistryHook().model_version(MODEL, version).tags["mlops.gate.decision"] == "refused"


HOSTILE_FUNCTIONS = [
    ("os:system", "no module 'os'"),
    ("json:loads", "no module 'json'"),
    ("builtins:eval", "no module 'builtins'"),
    ("business_metrics:math", "not a function defined in business_metrics"),
    ("missing_module:f", "no module 'missing_module'"),
    ("../etc:passwd", "must look like"),
    ("business_metrics:expected_profit:x", "must look like"),
    ("business_metrics:expected_profit; rm -rf /", "must look like"),
]


def test_hostile_function_paths_fail_naming_the_key(data: Path) -> None:
    version, _ = trained(data, "sklearn.dummy.DummyClassifier", {})
    for function, fragment in HOSTILE_FUNCTIONS:
        with pytest.raises(AirflowFailException, match="evaluation.custom_metrics.kpi") as failed:
            promote(version, custom_metrics={"kpi": {"function": function}})
        assert fragment in str(failed.value), function
    assert champion() is None


def test_cost_matrix_with_an_unknown_class_fails_naming_the_key(data: Path) -> None:
    version, _ = trained(data, "sklearn.linear_model.LogisticRegression", {"max_iter": 5000})
    with pytest.raises(AirflowFailException, match=r"evaluation.cost_matrix.malignent: no class the matrix"):
        promote(version, cost_matrix={"malignent": {"bening": 50}})
    assert champion() is None


ROBUST = {"noise": 0.3, "missing_rate": 0.1, "max_drop": {"f1_macro": 0.1}, "seed": 7}


def test_robustness_gate_passes_a_model_that_handles_noise_and_blanks(data: Path) -> None:
    version, _ = trained(data, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 30})
    summary = promote(version, robustness=ROBUST)
    assert summary["decision"] == "promoted"
    [gate] = [g for g in summary["gates"] if g["gate"] == "robustness"]
    assert gate["passed"]
    assert gate["value"] <= 0.1  # the drop; negative when the noisy copy happens to score better
    assert "noise 0.3, missing_rate 0.1, seed 7" in gate["detail"]


def test_robustness_gate_refuses_a_model_that_breaks_on_missing_values(data: Path) -> None:
    """LogisticRegression trained on complete data has no imputer: blanked inputs make it fail."""
    version, _ = trained(data, "sklearn.linear_model.LogisticRegression", {"max_iter": 5000})
    with pytest.raises(AirflowFailException, match="robustness f1_macro") as refused:
        promote(version, robustness=ROBUST)
    assert "cannot score the perturbed holdout" in str(refused.value)
    assert champion() is None
    gates = json.loads(MLflowRegistryHook().model_version(MODEL, version).tags["mlops.gate.gates"])
    assert any(g["gate"] == "robustness" and not g["passed"] for g in gates)


def test_robustness_gate_refuses_a_large_drop(data: Path) -> None:
    version, _ = trained(data, "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 30})
    strict = {"noise": 3.0, "max_drop": {"accuracy": 0.0}, "seed": 1}
    with pytest.raises(AirflowFailException, match="robustness accuracy"):
        promote(version, robustness=strict)
    assert champion() is None


BAD_ROBUSTNESS = [
    ({"noise": -1, "max_drop": {"f1_macro": 0.1}}, "evaluation.robustness.noise"),
    ({"noise": float("nan"), "max_drop": {"f1_macro": 0.1}}, "evaluation.robustness.noise"),
    ({"missing_rate": 1.5, "max_drop": {"f1_macro": 0.1}}, "evaluation.robustness.missing_rate"),
    ({"noise": 0.1, "max_drop": {"f2": 0.1}}, "evaluation.robustness.max_drop.f2"),
    ({"noise": 0.1, "max_drop": {"f1_macro": -0.1}}, "evaluation.robustness.max_drop.f1_macro"),
    ({"noise": 0.0, "max_drop": {"f1_macro": 0.1}}, "set noise or missing_rate"),
    ({"noise": 0.1, "max_drop": {"f1_macro": 0.1}, "shell": "rm"}, "unknown key"),
    ("noise", "evaluation.robustness must be"),
]


def test_bad_robustness_settings_fail_naming_the_key(data: Path) -> None:
    version, _ = trained(data, "sklearn.dummy.DummyClassifier", {})
    for robustness, fragment in BAD_ROBUSTNESS:
        with pytest.raises(AirflowFailException, match="gate configuration") as failed:
            promote(version, robustness=robustness)
        assert fragment in str(failed.value), robustness
    assert champion() is None
