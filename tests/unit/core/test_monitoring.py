"""core.monitoring: the shapes of monitoring runs and registered-model summary tags, bounded and inert."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_provider.core import lineage
from mlops_provider.core import monitoring as m

HOSTILE = [
    "<script>alert(1)</script>",
    "\"quoted\", 'single' & `back`",
    "température ☃ 温度 \U0001f600",
    "../../etc/passwd",
    "x" * 10_000,
    "_truncated",
    "",
]
IDENTITY = {"dag_id": "weather_drift_monitor", "dag_run_id": "scheduled__2026-01-02", "task_id": "check"}
CHECKED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def columns(n: int, drifted_every: int = 3) -> dict[str, dict]:
    return {
        f"col_{i}": {
            "score": i / n,
            "drifted": i % drifted_every == 0,
            "method": "wasserstein",
            "status": "x",
        }
        for i in range(n)
    }


def test_check_key_is_the_contract_hash_of_the_task_instance():
    import hashlib

    key = m.check_key("d", "r", "t")
    assert key == hashlib.sha256(b"d\nr\nt").hexdigest()[:32]
    assert (
        len({key, m.check_key("d", "r", "t2"), m.check_key("d", "r2", "t"), m.check_key("d2", "r", "t")}) == 4
    )


def test_columns_keep_the_highest_scores_and_count_the_rest():
    text = m.bounded_columns(columns(5000))
    assert len(text) <= m.COLUMNS_MAX
    parsed = json.loads(text)
    truncated = parsed.pop(m.TRUNCATED_KEY)
    assert truncated == 5000 - len(parsed) > 0
    kept = sorted((v["score"] for v in parsed.values()), reverse=True)
    assert kept[0] == pytest.approx(4999 / 5000)
    assert min(kept) > 0.9  # only the top of the ranking fits
    assert all(set(v) == {"score", "drifted", "method"} for v in parsed.values())


def test_few_columns_are_all_kept_without_a_marker():
    parsed = json.loads(m.bounded_columns(columns(4)))
    assert set(parsed) == {"col_0", "col_1", "col_2", "col_3"}
    assert parsed["col_3"] == {"score": 0.75, "drifted": True, "method": "wasserstein"}


def test_hostile_column_names_stay_bounded_inert_data():
    briefs = {name: {"score": 0.5, "drifted": True, "method": "<b>ks</b>"} for name in HOSTILE}
    briefs["nan"] = {"score": float("nan"), "drifted": False, "method": None}
    text = m.bounded_columns(briefs)
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert text.isascii()
    parsed = json.loads(text)
    assert parsed["<script>alert(1)</script>"]["method"] == "<b>ks</b>"
    assert parsed["température ☃ 温度 \U0001f600"]["score"] == 0.5
    assert parsed["nan"]["score"] is None
    shortened = [k for k in parsed if k.startswith("xxx")]
    assert len(shortened) == 1
    assert len(shortened[0]) == m.COLUMN_NAME_MAX
    # a column named like the marker is left out (counted), so "_truncated" is always the count
    assert parsed[m.TRUNCATED_KEY] == 1


@given(
    st.dictionaries(
        st.text(min_size=0, max_size=300),
        st.fixed_dictionaries(
            {
                "score": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
                "drifted": st.booleans(),
                "method": st.one_of(st.none(), st.text(max_size=80)),
            }
        ),
        max_size=400,
    )
)
def test_any_columns_give_bounded_valid_json(briefs):
    text = m.bounded_columns(briefs)
    assert len(text) <= m.COLUMNS_MAX
    parsed = json.loads(text)
    kept = {k: v for k, v in parsed.items() if k != m.TRUNCATED_KEY}
    assert len(kept) + parsed.get(m.TRUNCATED_KEY, 0) == len(briefs)


def drift_summary(**extra) -> dict:
    return {
        "status": "drift",
        "drift_share": 0.5,
        "threshold_share": 0.3,
        "n_evaluated": 4,
        "n_reference": 1461,
        "n_current": 200,
        "report_uri": "/tmp/reports/d/r/t/drift_report.html",
        "champion_version": "3",
        **extra,
    }


def test_drift_record_tags_and_metrics():
    briefs = {"a": {"score": 0.4, "drifted": True}, "b": {"score": 0.01, "drifted": False}}
    record = m.drift_record(
        model="weather",
        summary=drift_summary(),
        columns=briefs,
        identity=IDENTITY,
        logical_date=datetime(2026, 1, 1),
        checked_at=CHECKED,
    )
    tags = record.tags
    assert tags[m.MODEL_TAG] == "weather"
    assert tags[m.CHECK_TAG] == "drift"
    assert tags[m.STATUS_TAG] == "drift"
    assert tags[m.CHECK_KEY_TAG] == record.key == m.check_key(*IDENTITY.values())
    assert (tags[lineage.DAG_ID], tags[lineage.RUN_ID], tags[lineage.TASK_ID]) == tuple(IDENTITY.values())
    assert tags[m.LOGICAL_DATE_TAG] == "2026-01-01T00:00:00Z"
    assert tags[m.CHECKED_AT_TAG] == "2026-01-02T03:04:05Z"
    assert tags[m.REPORT_URI_TAG].endswith("drift_report.html")
    assert tags[m.CHAMPION_VERSION_TAG] == "3"
    assert tags[m.REASON_TAG].startswith("1 of 4 evaluated column(s) drifted")
    assert tags[m.REASON_TAG].endswith(": a")
    assert json.loads(tags[m.DRIFT_COLUMNS_TAG])["a"] == {"score": 0.4, "drifted": True, "method": ""}
    assert all(isinstance(v, str) and len(v) <= m.RUN_TAG_MAX for v in tags.values())
    assert record.metrics == {
        "drift_share": 0.5,
        "drift_threshold": 0.3,
        "drifted_columns": 1.0,
        "columns": 2.0,
        "rows_current": 200.0,
        "rows_reference": 1461.0,
    }
    assert record.checked_at_ms == int(CHECKED.timestamp() * 1000)
    assert m.CheckRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    last = json.loads(m.last_check_value(record, "abc123"))
    assert last == {
        "status": "drift",
        "drift_share": 0.5,
        "threshold": 0.3,
        "at": "2026-01-02T03:04:05Z",
        "logical_date": "2026-01-01T00:00:00Z",
        "dag_id": IDENTITY["dag_id"],
        "dag_run_id": IDENTITY["dag_run_id"],
        "mlflow_run_id": "abc123",
        "report_uri": "/tmp/reports/d/r/t/drift_report.html",
        "champion_version": "3",
    }


def test_insufficient_data_and_skipped_records_have_no_invented_numbers():
    small = m.drift_record(
        model="m",
        summary=drift_summary(status="insufficient_data", drift_share=None, reason="50 rows < 200"),
        columns={"a": {"score": None, "drifted": False}},
        identity=IDENTITY,
        logical_date=None,
        checked_at=CHECKED,
    )
    assert small.tags[m.STATUS_TAG] == "insufficient_data"
    assert small.tags[m.REASON_TAG] == "50 rows < 200"
    assert small.tags[m.LOGICAL_DATE_TAG] == small.tags[m.CHECKED_AT_TAG]  # no logical date: when it ran
    assert "drift_share" not in small.metrics
    skipped = m.drift_record(
        model="m",
        summary={"status": "skipped", "reason": "no champion " * 100, "threshold_share": 0.5},
        columns={},
        identity=IDENTITY,
        logical_date="2026-01-01T00:00:00+02:00",
        checked_at=CHECKED,
    )
    assert skipped.tags[m.STATUS_TAG] == "skipped"
    assert len(skipped.tags[m.REASON_TAG]) == m.REASON_MAX
    assert skipped.tags[m.LOGICAL_DATE_TAG] == "2025-12-31T22:00:00Z"
    assert m.DRIFT_COLUMNS_TAG not in skipped.tags
    assert m.REPORT_URI_TAG not in skipped.tags
    assert skipped.metrics == {"drift_threshold": 0.5}


def test_hostile_and_huge_values_stay_within_mlflow_limits():
    record = m.drift_record(
        model="<img src=x onerror=alert(1)>",
        summary=drift_summary(report_uri="s3://b/" + "é" * 20_000, champion_version="9" * 1000),
        columns={name: {"score": 0.9, "drifted": True} for name in HOSTILE} | columns(3000),
        identity={"dag_id": "d" * 300, "dag_run_id": "<r>" * 200, "task_id": "t"},
        logical_date="not a date",
        checked_at=CHECKED,
    )
    assert all(len(v) <= m.RUN_TAG_MAX for v in record.tags.values())
    assert len(record.tags[m.REPORT_URI_TAG]) == m.URI_MAX
    assert len(record.tags[m.REASON_TAG]) <= m.REASON_MAX
    last = m.last_check_value(record, "r" * 32)
    assert len(last) <= m.MODEL_TAG_MAX
    assert "<" not in last
    assert json.loads(last)["dag_id"] == "d" * (m.ID_MAX - 1) + "\u2026"


def gate_summary(decision: str, **extra) -> dict:
    return {
        "decision": decision,
        "new_version": "4",
        "old_version": "3",
        "reason": "gate(s) failed: " + "x" * 1000,
        "gates": [
            {"gate": "threshold_min", "metric": "f1_macro", "value": 0.8, "threshold": 0.7, "passed": True},
            {"gate": "vs_champion", "metric": "f1_macro", "value": -0.02, "threshold": 0.0, "passed": False},
        ],
        "decided_at": "2026-01-02T03:04:05Z",
        "decided_by": "gate",
        "dag_run": "airflow:weather_retrain/scheduled__2026-01-02T00:00:00+00:00/promote",
        **extra,
    }


def test_last_decision_names_the_first_failing_gate_and_the_dag_run():
    value = m.last_decision_value(gate_summary("refused"))
    assert value is not None
    parsed = json.loads(value)
    assert parsed["version"] == "4"
    assert parsed["decision"] == "refused"
    assert parsed["first_failing_gate"] == {
        "gate": "vs_champion",
        "metric": "f1_macro",
        "value": -0.02,
        "threshold": 0.0,
    }
    assert len(parsed["reason"]) == m.DECISION_REASON_MAX
    assert (parsed["dag_id"], parsed["dag_run"]) == (
        "weather_retrain",
        "scheduled__2026-01-02T00:00:00+00:00",
    )
    assert (parsed["decided_at"], parsed["decided_by"]) == ("2026-01-02T03:04:05Z", "gate")
    promoted = json.loads(m.last_decision_value(gate_summary("promoted", gates=[])) or "")
    assert promoted["first_failing_gate"] is None
    assert m.last_decision_value(gate_summary("skipped")) is None  # keeps the previous decision
    assert m.last_decision_value(gate_summary("pending")) is None


def test_last_decision_of_a_rollback_and_hostile_actors():
    value = json.loads(m.rollback_decision_value("2", "bad <outputs>", "airflow:d/run/with/slashes/t", "T"))
    assert value["decision"] == "rolled_back"
    assert value["version"] == "2"
    assert (value["dag_id"], value["dag_run"]) == ("d", "run/with/slashes")
    assert value["reason"] == "bad <outputs>"
    text = m.last_decision_value(gate_summary("refused", decided_by="human:" + "<é>" * 2000, dag_run="x"))
    assert text is not None
    assert len(text) <= m.MODEL_TAG_MAX
    assert "<" not in text
    parsed = json.loads(text)
    assert (parsed["dag_id"], parsed["dag_run"]) == (None, None)
    assert len(parsed["decided_by"]) == m.ID_MAX


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        ("garbage", None),
        (None, None),
        (12, None),
    ],
)
def test_iso_utc(value, expected):
    assert m.iso_utc(value) == expected


def test_revision_changes():
    assert m.revision(5) == "5"
    assert m.revision() != m.revision(0)


def test_an_older_check_never_replaces_the_latest_summary() -> None:
    from datetime import UTC, datetime

    from mlops_provider.core.monitoring import drift_record, last_check_value, supersedes

    def record(day: int, hour: int = 0):
        return drift_record(
            model="m",
            summary={"status": "drift", "drift_share": 0.5, "threshold": 0.3},
            columns={},
            identity={"dag_id": "m_drift_monitor", "dag_run_id": f"r{day}", "task_id": "check_drift"},
            logical_date=datetime(2026, 1, day, tzinfo=UTC),
            checked_at=datetime(2026, 2, 1, hour, tzinfo=UTC),
        )

    stored = last_check_value(record(10), "run-10")
    assert supersedes(None, record(1))
    assert supersedes("not json", record(1))
    assert supersedes(stored, record(11))
    assert supersedes(stored, record(10, hour=5))  # a retry of the same run, checked later
    assert not supersedes(stored, record(9, hour=23))  # a backfill of an older date
