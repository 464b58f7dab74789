"""core.metric_plan: custom metric functions from the DAGs folder, the cost matrix, their gates."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.feedback import LABEL_COLUMN, PREDICTION_COLUMN, live_metrics
from mlops_provider.core.gate import decide, evaluate_gates, validate_config
from mlops_provider.core.judgement import check_settings, degradation
from mlops_provider.core.metric_plan import EXPECTED_COST, MetricPlan, expected_cost, load_function

MODULE = """
import numpy as np
from json import loads

def revenue(y_true, y_pred, y_proba, X):
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)) * 100)

def proba_seen(y_true, y_pred, y_proba, X):
    return 1.0 if y_proba is not None else 0.0

def boom(y_true, y_pred, y_proba, X):
    raise RuntimeError("upstream price feed is down")

def yes(y_true, y_pred, y_proba, X):
    return True

def text(y_true, y_pred, y_proba, X):
    return "12"

def infinite(y_true, y_pred, y_proba, X):
    return float("inf")

def too_few(y_true, y_pred):
    return 1.0

class NotAFunction:
    def __call__(self, *args):
        return 1.0

callable_object = NotAFunction()
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "kpis.py").write_text(MODULE)
    monkeypatch.delitem(sys.modules, "kpis", raising=False)
    return folder


def plan(root: Path, **custom: str) -> MetricPlan:
    spec = {name: {"function": f"kpis:{function}"} for name, function in custom.items()}
    return MetricPlan.build("classification", spec, None, [root])


def test_values_of_custom_functions(root: Path) -> None:
    found, errors = plan(root, revenue="revenue", proba="proba_seen").values(
        ["a", "b", "a", "a"], ["a", "b", "b", "a"], np.ones((4, 2)) / 2
    )
    assert found == {"revenue": 75.0, "proba": 1.0}
    assert errors == {}


@pytest.mark.parametrize(
    ("function", "fragment"),
    [
        ("boom", "kpis:boom raised RuntimeError: upstream price feed is down"),
        ("yes", "returned True, not a finite number"),
        ("text", "returned '12', not a finite number"),
        ("infinite", "returned inf, not a finite number"),
        ("too_few", "must take (y_true, y_pred, y_proba, X)"),
        ("callable_object", "is not a function defined in kpis"),
        ("loads", "is not a function defined in kpis"),
        ("np", "is not a function defined in kpis"),
        ("absent", "is not a function defined in kpis"),
    ],
)
def test_a_failing_function_gives_no_value_and_says_why(root: Path, function: str, fragment: str) -> None:
    found, errors = plan(root, kpi=function).values(["a"], ["a"])
    assert found == {"kpi": None}
    assert fragment in errors["kpi"]


def test_a_failed_metric_refuses_the_gate_even_when_no_gate_reads_it() -> None:
    gates = evaluate_gates({"f1_macro": 0.9}, metric_errors={"kpi": "kpis:boom raised RuntimeError: x"})
    decision = decide(gates, has_champion=False)
    assert decision.decision == "refuse"
    assert "metric_error kpi" in decision.reason
    assert "RuntimeError" in decision.reason


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("os:system", "no module 'os'"),
        ("subprocess:run", "no module 'subprocess'"),
        ("builtins:exec", "no module 'builtins'"),
        ("kpis", "must look like"),
        ("kpis:revenue()", "must look like"),
        ("/etc/passwd:x", "must look like"),
        ("kpis.:revenue", "must look like"),
        ("nowhere:f", "no module 'nowhere'"),
    ],
)
def test_functions_come_only_from_files_inside_the_dags_folder(root: Path, path: str, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match="evaluation.custom_metrics.kpi.function") as failed:
        load_function(path, (root.resolve(),), "kpi")
    assert fragment in str(failed.value)


def test_a_module_of_the_same_name_from_elsewhere_is_never_used(root: Path, tmp_path: Path) -> None:
    """Another DAG bundle version (or a library) imported ``kpis`` first: the function still comes from
    the file inside the roots."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "kpis.py").write_text("def revenue(y_true, y_pred, y_proba, X):\n    return -1.0\n")
    assert load_function("kpis:revenue", (elsewhere.resolve(),))([], [], None, None) == -1.0
    ours = load_function("kpis:revenue", (root.resolve(),))
    assert ours(["a"], ["a"], None, None) == 100.0
    assert Path(sys.modules["kpis"].__file__).parent == elsewhere  # the other one was left alone


def test_a_module_that_fails_to_import_names_the_key(root: Path) -> None:
    (root / "broken_kpis.py").write_text("import not_installed_anywhere\n")
    with pytest.raises(InvalidInputError, match="importing 'broken_kpis' failed: ModuleNotFoundError"):
        load_function("broken_kpis:f", (root.resolve(),), "kpi")


def test_no_roots_means_no_functions() -> None:
    with pytest.raises(InvalidInputError, match="no folder to load metric functions from"):
        load_function("kpis:revenue", ())


@pytest.mark.parametrize(
    ("custom", "cost", "fragment"),
    [
        ({"F1": {"function": "kpis:revenue"}}, None, "the name 'F1'"),
        ({"f1_macro": {"function": "kpis:revenue"}}, None, "a built-in metric has that name"),
        ({"expected_cost": {"function": "kpis:revenue"}}, None, "a built-in metric has that name"),
        ({"kpi": {"function": "kpis:revenue", "greater_is_better": "yes"}}, None, "greater_is_better"),
        ({"kpi": {"function": "kpis:revenue", "weight": 2}}, None, "unknown key(s) ['weight']"),
        ({"kpi": "kpis:revenue"}, None, "evaluation.custom_metrics.kpi must be"),
        ({f"k{i}": {"function": "kpis:revenue"} for i in range(21)}, None, "at most 20"),
        ({}, {"a": {"b": float("nan")}}, "evaluation.cost_matrix.a.b must be a finite number"),
        ({}, {"a": {"b": True}}, "evaluation.cost_matrix.a.b must be a finite number"),
        ({}, {"a": "b"}, "evaluation.cost_matrix.a must map"),
        ({}, {}, "evaluation.cost_matrix must be"),
    ],
)
def test_bad_settings_name_the_key(custom: dict, cost: dict | None, fragment: str) -> None:
    with pytest.raises(InvalidInputError) as failed:
        MetricPlan.build("classification", custom, cost)
    assert fragment in str(failed.value)


def test_cost_matrix_is_classification_only_and_lower_is_better() -> None:
    with pytest.raises(InvalidInputError, match="only for classification"):
        MetricPlan.build("regression", None, {"a": {"b": 1}})
    costs = MetricPlan.build("classification", None, {"rain": {"sun": 5}, "sun": {"rain": 1}})
    assert costs.names[-1] == EXPECTED_COST
    assert not costs.greater_is_better(EXPECTED_COST)
    assert (
        expected_cost(costs.cost_matrix or {}, ["rain", "rain", "sun", "sun"], ["sun", "rain", "rain", "sun"])
        == 1.5
    )
    unknown = MetricPlan.build("classification", None, {"rian": {"snow": 5}})
    with pytest.raises(InvalidInputError, match=r"evaluation.cost_matrix.rian: no class the matrix names"):
        unknown.check_classes(["rain", "sun"])
    # a class this model lacks (absent from its training data) is no error: its cells never match
    partly = MetricPlan.build("classification", None, {"rain": {"snow": 5, "sun": 2}})
    partly.check_classes(["rain", "sun"])
    assert partly.values(["rain", "rain"], ["sun", "rain"])[0] == {EXPECTED_COST: 1.0}


def test_custom_direction_drives_champion_comparison_and_config_names(root: Path) -> None:
    loss = MetricPlan.build(
        "classification",
        {"churn_loss": {"function": "kpis:revenue", "greater_is_better": False}},
        None,
        [root],
    )
    validate_config("classification", None, {"churn_loss": {"min_delta": 0.0}}, None, loss.extra_names)
    with pytest.raises(InvalidInputError, match="unknown metric 'churn_loss'"):
        validate_config("classification", None, {"churn_loss": {"min_delta": 0.0}}, None)
    [gate] = evaluate_gates(
        {"churn_loss": 12.0},
        champion={"churn_loss": 10.0},
        vs_champion={"churn_loss": {"min_delta": 0.0}},
        directions=loss.directions,
    )
    assert not gate.passed
    assert gate.value == -2.0
    assert "lower is better" in gate.detail


def monitor_settings(plan: MetricPlan, **overrides: object) -> dict:
    options = {
        "task_type": "classification",
        "primary_metric": "f1_macro",
        "metrics": None,
        "degrade": None,
        "vs_champion": None,
        "window_days": 28,
        "min_labels": 1,
        "rollback": "off",
        "mode": "direct",
        "shadow_min_labels": 1,
    }
    return check_settings(**{**options, **overrides}, plan=plan)


def test_live_metrics_and_degradation_use_the_plan(root: Path) -> None:
    """Live rows have labels and predictions but no features: a custom function gets X=None."""
    costs = MetricPlan.build(
        "classification", {"revenue": {"function": "kpis:revenue"}}, {"rain": {"sun": 10}}, [root]
    )
    joined = pd.DataFrame(
        {
            "id": range(4),
            LABEL_COLUMN: ["rain", "rain", "sun", "sun"],
            PREDICTION_COLUMN: ["sun", "rain", "sun", "sun"],
            "model_version": "3",
            "alias": "champion",
            "scoring_date": "2026-01-01T00:00:00Z",
        }
    )
    live = live_metrics(joined, task_type="classification", plan=costs)["champion"]["metrics"]
    assert live["expected_cost"] == 2.5
    assert live["revenue"] == 75.0
    settings = monitor_settings(costs, degrade={"expected_cost": {"max_drop": 1.0}}, primary_metric="revenue")
    [result] = degradation(live, {"expected_cost": 1.0}, settings["degrade"], settings["directions"])
    assert not result.passed
    assert result.value == 1.5
    with pytest.raises(InvalidInputError, match="degrade.churn: not one of this model's metrics"):
        monitor_settings(costs, degrade={"churn": {"max_drop": 1.0}})


def test_a_custom_metric_that_fails_on_live_rows_fails_the_check(root: Path) -> None:
    """Live rows have no features: a function reading X fails there, and nothing is judged on it."""
    (root / "needs_x.py").write_text(
        "def margin(y_true, y_pred, y_proba, X):\n    return float(X['price'].sum())\n"
    )
    plan = MetricPlan.build("classification", {"margin": {"function": "needs_x:margin"}}, None, [root])
    joined = pd.DataFrame(
        {
            "id": range(2),
            LABEL_COLUMN: ["rain", "sun"],
            PREDICTION_COLUMN: ["rain", "sun"],
            "model_version": "3",
            "alias": "champion",
            "scoring_date": "2026-01-01T00:00:00Z",
        }
    )
    with pytest.raises(
        InvalidInputError, match=r"margin on live rows \(X is None\): needs_x:margin raised TypeError"
    ):
        live_metrics(joined, task_type="classification", metrics=["f1_macro", "margin"], plan=plan)
    assert live_metrics(
        joined, task_type="classification", metrics=["f1_macro"], plan=plan
    )  # not asked: fine


def test_whole_number_classes_are_one_text_offline_and_live() -> None:
    """A float target (blank rows made it float) has classes 0.0/1.0; live labels read as "0"/"1"."""
    costs = MetricPlan.build("classification", None, {"1.0": {"0": 5.0}, 0: {"1": 1.0}})
    assert costs.cost_matrix == {"1": {"0": 5.0}, "0": {"1": 1.0}}
    assert costs.check_classes([0.0, 1.0]) == []
    offline = costs.values(np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0]))[0]
    live = costs.values(np.array(["1", "1", "0"], dtype=object), np.array(["0", "1", "1"], dtype=object))[0]
    assert offline == live == {EXPECTED_COST: 2.0}


def test_custom_functions_get_copies_of_the_data(root: Path) -> None:
    (root / "mutating.py").write_text(
        "def spoil(y_true, y_pred, y_proba, X):\n    X.loc[:, 'a'] = 0\n    y_true[:] = 'x'\n    return 1.0\n"
    )
    plan = MetricPlan.build("classification", {"spoil": {"function": "mutating:spoil"}}, None, [root])
    X, y = pd.DataFrame({"a": [1, 2]}), np.array(["p", "q"], dtype=object)
    assert plan.values(y, y, None, X) == ({"spoil": 1.0}, {})
    assert X["a"].tolist() == [1, 2]
    assert y.tolist() == ["p", "q"]
