"""core.gate: decisions are pure functions of metrics and configuration."""

from __future__ import annotations

import json
import math

import pytest

from mlops_provider.core.gate import (
    HISTORY_MAX_CHARS,
    GateConfigError,
    append_history,
    decide,
    decision_tags,
    evaluate_gates,
    history_entry,
    validate_config,
)


def _passed(gates):
    return {(g.gate, g.metric): g.passed for g in gates}


def test_thresholds_min_and_max_with_natural_direction():
    gates = evaluate_gates(
        {"rmse": 50.0, "r2": 0.45},
        thresholds={"rmse": {"max": 55.0}, "r2": {"min": 0.5}},
    )
    assert _passed(gates) == {("threshold_max", "rmse"): True, ("threshold_min", "r2"): False}


def test_min_delta_direction_per_metric():
    champion = {"f1_macro": 0.80, "log_loss": 0.40}
    better = {"f1_macro": 0.82, "log_loss": 0.35}
    gates = evaluate_gates(
        better,
        champion=champion,
        vs_champion={"f1_macro": {"min_delta": 0.01}, "log_loss": {"min_delta": 0.01}},
    )
    assert all(g.passed for g in gates)
    assert {g.metric: round(g.value, 6) for g in gates} == {"f1_macro": 0.02, "log_loss": 0.05}
    worse = {"f1_macro": 0.79, "log_loss": 0.45}
    gates = evaluate_gates(
        worse, champion=champion, vs_champion={"f1_macro": {"min_delta": 0}, "log_loss": {"min_delta": 0}}
    )
    assert not any(g.passed for g in gates)
    # a negative min_delta tolerates a small loss
    gates = evaluate_gates(worse, champion=champion, vs_champion={"f1_macro": {"min_delta": -0.02}})
    assert gates[0].passed


@pytest.mark.parametrize("bad", [math.nan, math.inf, None])
def test_non_finite_or_missing_metrics_fail_their_gate(bad):
    gates = evaluate_gates(
        {"f1_macro": bad},
        champion={"f1_macro": 0.5},
        thresholds={"f1_macro": {"min": 0.1}},
        vs_champion={"f1_macro": {"min_delta": -1}},
    )
    assert [g.passed for g in gates] == [False, False]
    decision = decide(gates, has_champion=True)
    assert decision.decision == "refuse"
    assert "f1_macro" in decision.reason
    nan_champion = evaluate_gates(
        {"f1_macro": 0.9}, champion={"f1_macro": bad}, vs_champion={"f1_macro": {"min_delta": 0}}
    )
    assert not nan_champion[0].passed
    assert "champion" in nan_champion[0].detail


def test_slice_gap_gate():
    slices = {"a": {"metrics": {"accuracy": 0.9}}, "b": {"metrics": {"accuracy": 0.6}}}
    assert not evaluate_gates({}, slices=slices, max_gap={"accuracy": 0.2})[0].passed
    assert evaluate_gates({}, slices=slices, max_gap={"accuracy": 0.35})[0].passed


def test_first_run_policy_and_manual_approval():
    assert decide([], has_champion=False).decision == "promote"
    assert decide([], has_champion=False, first_run="require_approval").decision == "await_approval"
    assert decide([], has_champion=True, first_run="require_approval").decision == "promote"
    assert decide([], has_champion=True, approval="manual").decision == "await_approval"
    with pytest.raises(GateConfigError, match="first_run"):
        decide([], has_champion=False, first_run="yolo")


def test_champion_gates_skipped_without_champion():
    gates = evaluate_gates({"f1_macro": 0.9}, champion=None, vs_champion={"f1_macro": {"min_delta": 0.5}})
    assert gates == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": {"f1": {"min": 0.5}}}, "unknown metric 'f1'"),
        ({"thresholds": {"rmse": {"min": 0.5}}}, "unknown metric 'rmse' for classification"),
        ({"thresholds": {"f1_macro": {"minimum": 0.5}}}, "unknown key(s)"),
        ({"thresholds": {"f1_macro": {"min": "high"}}}, "thresholds.f1_macro.min must be a finite number"),
        ({"vs_champion": {"accuracy": {"min_delta": math.nan}}}, "vs_champion.accuracy.min_delta"),
        ({"slices": {"column": "x", "max_gap": {"accuracy": -1}}}, "slices.max_gap.accuracy must be >= 0"),
    ],
)
def test_config_errors_name_the_key(kwargs, message):
    args = {"thresholds": None, "vs_champion": None, "slices": None, **kwargs}
    with pytest.raises(GateConfigError) as err:
        validate_config("classification", **args)
    assert message in str(err.value)


def test_history_is_bounded_and_keeps_newest():
    text = None
    for i in range(200):
        entry = history_entry(
            alias="champion", from_version=i, to_version=i + 1, why="x" * 50, who="me", action="promote"
        )
        text = append_history(text, entry)
    history = json.loads(text)
    assert len(text) <= HISTORY_MAX_CHARS
    assert history[-1]["to"] == "200"
    assert history[-1]["from"] == "199"
    assert append_history("not json", {"to": "1"}) == '[{"to":"1"}]'


def test_decision_tags_are_strings():
    tags = decision_tags(
        {
            "decision": "refused",
            "reason": "r",
            "old_version": "1",
            "new_version": "2",
            "gates": [
                {
                    "gate": "threshold_min",
                    "metric": "f1_macro",
                    "value": None,
                    "threshold": 0.5,
                    "passed": False,
                }
            ],
        }
    )
    assert all(isinstance(v, str) for v in tags.values())
    assert json.loads(tags["mlops.gate.threshold_min.f1_macro"]) == {
        "value": None,
        "threshold": 0.5,
        "passed": False,
    }
