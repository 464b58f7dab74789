"""core.catalog: the Models API's shaping of MLflow records (pure functions, hostile tag values)."""

from __future__ import annotations

import json

import pytest

from mlops_provider.core import catalog as c
from mlops_provider.core import catalog_rows as rows
from mlops_provider.core.catalog import RunRecord, VersionRecord


def history_tag(*moves: tuple[str | None, str, str, str]) -> str:
    return json.dumps(
        [{"alias": "champion", "action": a, "from": f, "to": t, "why": "w", "who": "gate", "when": when}
         for f, t, a, when in moves]
    )  # fmt: skip


def test_alias_history_merges_aliases_oldest_first_and_ignores_junk() -> None:
    tags = {
        "mlops.alias_history.champion": history_tag(
            (None, "1", "promote", "2026-01-01T00:00:00Z"), ("1", "3", "promote", "2026-03-01T00:00:00Z")
        ),
        "mlops.alias_history.staging": json.dumps(
            [{"action": "promote", "to": "2", "when": "2026-02-01T00:00:00Z"}, "junk", 7]
        ),
        "mlops.alias_history.broken": "{not json",
        "other": "x",
    }
    history = c.alias_history(tags)
    assert [(e["alias"], e["to"]) for e in history] == [
        ("champion", "1"),
        ("staging", "2"),
        ("champion", "3"),
    ]
    assert set(history[0]) == {"alias", "action", "from", "to", "why", "who", "when"}


def test_champion_since_is_the_last_move_to_that_version() -> None:
    history = c.alias_history(
        {
            "mlops.alias_history.champion": history_tag(
                (None, "1", "promote", "2026-01-01T00:00:00Z"),
                ("1", "2", "promote", "2026-02-01T00:00:00Z"),
                ("2", "1", "rollback", "2026-03-01T00:00:00Z"),
            )
        }
    )
    assert c.champion({"champion": "1"}, history) == {"version": "1", "since": "2026-03-01T00:00:00Z"}
    assert c.champion({"champion": "9"}, history) == {"version": "9", "since": None}
    assert c.champion({}, history) is None


GATES = [
    {"gate": "threshold_min", "metric": "f1_macro", "value": 0.81, "threshold": 0.7, "passed": True},
    {"gate": "vs_champion", "metric": "f1_macro", "value": -0.02, "threshold": 0.0, "passed": False},
    {"gate": "vs_champion", "metric": "log_loss", "value": 0.05, "threshold": -0.1, "passed": True},
    {"gate": "slice_gap", "metric": "f1_macro", "value": float("nan"), "threshold": 0.2, "passed": False},
]


def test_gates_first_failing_and_deltas_challenger_minus_champion() -> None:
    gates = c.gate_list(json.dumps(GATES[:3]) + "")
    assert c.first_failing_gate(gates) == {
        "gate": "vs_champion",
        "metric": "f1_macro",
        "value": -0.02,
        "threshold": 0.0,
    }
    # log_loss: lower is better, the gate holds champion - challenger; the delta is challenger - champion
    assert c.deltas(gates) == {"f1_macro": -0.02, "log_loss": -0.05}
    assert c.gate_list(GATES)[3]["value"] is None  # NaN is no number
    assert c.gate_list("nope") == []
    assert c.gate_list('{"a": 1}') == []
    assert c.first_failing_gate(c.gate_list(GATES[:1])) is None


def test_version_entry_from_tags_and_run() -> None:
    record = VersionRecord(
        "4",
        1_767_225_600_000,
        "abc",
        {
            "mlops.training_data_fingerprint": "sha256:ff",
            "mlops.validation_result": "passed",
            "mlops.trigger.cause": "drift",
            "mlops.gate.decision": "refused",
            "mlops.gate.reason": "gate(s) failed",
            "mlops.gate.decided_by": "gate",
            "mlops.gate.gates": json.dumps(GATES[:2]),
        },
    )
    run = RunRecord(
        "abc", "7", 1, {}, {"holdout_f1_macro": 0.81, "train_f1_macro": 0.99, "holdout_x": float("inf")}
    )
    links = {"mlflow_run": "http://m/#/x", "dag_run": "javascript:alert(1)", "mlflow_version": "//evil"}
    entry = c.version_entry(record, run, ["challenger"], links)
    assert entry["created_at"] == "2026-01-01T00:00:00Z"
    assert entry["metrics"] == {"f1_macro": 0.81}
    assert entry["deltas"] == {"f1_macro": -0.02}
    assert entry["decision"] == "refused"
    assert entry["decided_by"] == "gate"
    assert entry["links"] == {"mlflow_run": "http://m/#/x", "dag_run": None, "mlflow_version": None}
    assert entry["rollback"] is None
    assert c.version_entry(VersionRecord("1", None, None), None, [], {})["metrics"] == {}


def test_last_decision_and_last_check_tags() -> None:
    decision = c.last_decision(
        json.dumps(
            {
                "version": "4",
                "decision": "refused",
                "reason": "r" * 900,
                "first_failing_gate": GATES[1],
                "decided_at": "2026-01-01T00:00:00Z",
                "decided_by": "gate",
            }
        )
    )
    assert decision is not None
    assert decision["first_failing_gate"] == {
        "gate": "vs_champion",
        "metric": "f1_macro",
        "value": -0.02,
        "threshold": 0.0,
    }
    assert len(decision["reason"]) == 500
    assert c.last_decision("[]") is None
    assert c.last_decision(None) is None
    check = json.dumps(
        {"status": "drift", "drift_share": 0.5, "threshold": 0.3, "at": "t", "report_uri": "/r/x.html"}
    )
    assert c.last_check(check, lambda uri: "/mlops/reports/x.html") == {
        "status": "drift",
        "drift_share": 0.5,
        "threshold": 0.3,
        "at": "t",
        "report_url": "/mlops/reports/x.html",
    }
    assert c.last_check(check, lambda uri: None)["report_url"] is None


def monitoring_run(i: int, check: str = "drift", **tags: str) -> RunRecord:
    columns = {
        "temp": {"score": 0.2, "drifted": True, "method": "ks"},
        "<b>": {"score": None, "drifted": False},
    }
    return RunRecord(
        f"r{i}",
        "9",
        1000 * i,
        {
            "mlops.check": check,
            "mlops.status": "drift",
            "mlops.drift.columns": json.dumps({**columns, "_truncated": 3}),
            **tags,
        },
        {"drift_share": 0.5, "drift_threshold": 0.3, "live.f1_macro": 0.7, "labels": 250.0},
    )


def test_series_oldest_first_split_by_check_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(c, "SERIES_MAX_POINTS", 3)
    runs = [monitoring_run(i) for i in (5, 1, 4, 2, 3)] + [monitoring_run(9, "performance")]
    out = c.series(runs, lambda uri: None)
    assert [p["at"] for p in out["drift"]] == [c.iso_ms(3000), c.iso_ms(4000), c.iso_ms(5000)]
    point = out["drift"][0]
    assert point["columns"] == {"temp": 0.2, "<b>": None}
    assert point["drifted_columns"] == ["temp"]
    assert (point["drift_share"], point["threshold"]) == (0.5, 0.3)
    assert out["performance"][0]["metrics"] == {"f1_macro": 0.7}
    assert out["performance"][0]["labels"] == 250


@pytest.mark.parametrize(
    ("run_type", "conf", "uris", "cause"),
    [
        ("scheduled", {}, [], "schedule"),
        ("manual", None, [], "manual"),
        ("manual", {"cause": "performance"}, [], "performance"),
        ("asset_triggered", {}, ["x-mlops://drift/weather"], "drift"),
        ("asset_triggered", {}, ["x-mlops://performance/weather"], "performance"),
        ("asset_triggered", {}, ["s3://bucket/data"], "asset"),
        ("backfill", "not a dict", [], "manual"),
    ],
)
def test_retrain_cause(run_type: str, conf: object, uris: list[str], cause: str) -> None:
    assert rows.retrain_cause(run_type, conf, uris) == cause
    assert cause in c.CAUSES


def test_problems() -> None:
    assert rows.problems(None, None, None, 0) == []
    assert rows.problems({"decision": "refused"}, {"status": "drift"}, {"state": "failed"}, 2) == [
        "refused",
        "drift",
        "failed_run",
        "pending_approval",
    ]
    assert rows.problems({"decision": "promoted"}, {"status": "no_drift"}, {"state": "success"}, 0) == []


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("/mlops/reports/x", True),
        ("https://mlflow/#/x", True),
        ("//evil.example/x", False),
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("/\\evil", False),
        (None, False),
    ],
)
def test_safe_link(url: object, ok: bool) -> None:
    assert c.safe_link(url) == (url if ok else None)


def test_filter_literal_quotes_any_name_it_can() -> None:
    assert c.filter_literal("a\\b%_é") == "'a\\b%_é'"
    assert c.filter_literal("it's") == '"it\'s"'
    assert c.filter_literal('it\'s "x"') is None


def test_primary_metric() -> None:
    gated = VersionRecord("2", None, None, {"mlops.gate.gates": json.dumps(GATES[:3])})
    regression = VersionRecord("1", None, None, {"mlops.task_type": "regression"})
    assert c.primary_metric({"mlops.primary_metric": "r2"}, [gated]) == "r2"
    assert c.primary_metric({}, [gated, regression]) == "f1_macro"
    assert c.primary_metric({}, [regression]) == "rmse"
    assert c.primary_metric({}, []) == "f1_macro"


def test_live_check_shapes_the_last_performance_check_and_flags_degradation() -> None:
    raw = json.dumps(
        {
            "status": "degraded",
            "action": "performance_event",
            "primary_metric": "f1_macro",
            "labels": 250.0,
            "metrics": {"accuracy": 0.7, "f1_macro": 0.41},
            "reason": "<b>dropped</b>",
            "at": "2026-12-01T00:00:00Z",
        }
    )
    live = rows.live_check(raw)
    assert live is not None
    assert (live["metric"], live["value"], live["status"], live["labels"]) == (
        "f1_macro",
        0.41,
        "degraded",
        250.0,
    )
    assert live["reason"] == "<b>dropped</b>"  # text: the page renders it as text
    assert rows.problems(None, None, None, 0, live) == ["degraded"]
    assert rows.problems(None, None, None, 0, {**live, "status": "ok"}) == []
    assert rows.live_check("not json") is None
    assert rows.live_check(json.dumps({"metrics": "x", "primary_metric": ["a"]}))["value"] is None
