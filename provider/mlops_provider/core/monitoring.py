"""What the Models page reads from MLflow, shaped here without Airflow or MLflow.

* One MLflow run per check (drift now, performance later) in the experiment ``<model>-monitoring``,
  keyed by the task instance (:func:`check_key`): tags, metrics and the bounded per-column JSON of a
  drift check come from :func:`drift_record`.
* Registered-model summary tags, so the model list is one MLflow query: ``mlops.last_check.<check>``
  (:func:`last_check_value`), ``mlops.last_decision`` (:func:`last_decision_value`),
  ``mlops.retrain_dag`` and ``mlops.revision`` (:func:`revision`).

Every value is a string within MLflow's limits (run tags 8000 characters, registered-model tags kept
under 4900 for older servers). JSON is ASCII with ``<``, ``>`` and ``&`` escaped: names from data are
hostile, the readers treat them as text.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops_provider.core import lineage

MONITORING_SUFFIX = "-monitoring"  # experiment <model>-monitoring
CHECKS = ("drift", "performance")
DRIFT_STATUSES = ("drift", "no_drift", "insufficient_data", "skipped")
PERFORMANCE_STATUSES = ("ok", "degraded", "insufficient_labels")

# experiment and run tags
MODEL_TAG = "mlops.model"
KIND_TAG = "mlops.kind"  # experiment tag: "monitoring"
CHECK_TAG = "mlops.check"
STATUS_TAG = "mlops.status"
CHECK_KEY_TAG = "mlops.check_key"
LOGICAL_DATE_TAG = "mlops.logical_date"
CHECKED_AT_TAG = "mlops.checked_at"
REPORT_URI_TAG = "mlops.report_uri"
CHAMPION_VERSION_TAG = "mlops.champion_version"
REASON_TAG = "mlops.reason"
DRIFT_COLUMNS_TAG = "mlops.drift.columns"
OPTIONAL_RUN_TAGS = (REPORT_URI_TAG, CHAMPION_VERSION_TAG, REASON_TAG, DRIFT_COLUMNS_TAG)

# registered-model tags
LAST_CHECK_TAG = "mlops.last_check.{check}"
LAST_DECISION_TAG = "mlops.last_decision"
RETRAIN_DAG_TAG = "mlops.retrain_dag"
REVISION_TAG = "mlops.revision"
RECORDED_DECISIONS = ("promoted", "refused", "rolled_back")  # "skipped" keeps the last real decision

RUN_TAG_MAX = 8000
MODEL_TAG_MAX = 4900
COLUMNS_MAX = 7000
COLUMN_NAME_MAX = 200
REASON_MAX = 500
DECISION_REASON_MAX = 300
ID_MAX = 250
URI_MAX = 2000
TRUNCATED_KEY = "_truncated"  # its value is an int; every column's value is an object


def safe_json(value: Any) -> str:
    """Compact ASCII JSON with ``<``, ``>`` and ``&`` escaped (still valid JSON, inert in HTML)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def clip(value: Any, limit: int) -> str:
    """``value`` as text of at most ``limit`` characters (an ellipsis marks a cut)."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def monitoring_experiment(model: str) -> str:
    """The experiment holding a model's monitoring runs."""
    return f"{model}{MONITORING_SUFFIX}"


def check_key(dag_id: str, dag_run_id: str, task_id: str) -> str:
    """The task instance's key: a retry or clear-and-rerun finds (and updates) its run by it."""
    return hashlib.sha256(f"{dag_id}\n{dag_run_id}\n{task_id}".encode()).hexdigest()[:32]


def iso_utc(value: Any) -> str | None:
    """ISO 8601 UTC (``...Z``) of a datetime (naive means UTC) or an ISO string; ``None`` otherwise."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    moment: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def revision(now_ns: int | None = None) -> str:
    """A new value for ``mlops.revision``: it changes on every write the Models page shows."""
    return str(time.time_ns() if now_ns is None else now_ns)


# -- per-column drift ---------------------------------------------------------------------------


def _column_entry(brief: Any) -> dict[str, Any]:
    brief = brief if isinstance(brief, Mapping) else {}
    return {
        "score": finite(brief.get("score")),
        "drifted": bool(brief.get("drifted")),
        "method": clip(brief.get("method") or "", 40),
    }


def bounded_columns(columns: Mapping[str, Any], limit: int = COLUMNS_MAX) -> str:
    """
    ``{column: {"score", "drifted", "method"}}`` as JSON of at most ``limit`` characters: the highest
    scores are kept (drifted first among equals), names longer than 200 characters are shortened, and
    ``"_truncated": n`` counts the columns left out.
    """
    ranked = sorted(
        ((str(name), _column_entry(brief)) for name, brief in columns.items()),
        key=lambda item: (
            item[1]["score"] is None,
            -(item[1]["score"] or 0.0),
            not item[1]["drifted"],
            item[0],
        ),
    )
    kept: dict[str, dict[str, Any]] = {}
    used = 2 + len(safe_json({TRUNCATED_KEY: len(ranked)}))  # braces + room for the marker
    for name, entry in ranked:
        key = clip(name, COLUMN_NAME_MAX)
        if key in kept or key == TRUNCATED_KEY:
            continue
        size = len(safe_json({key: entry})) - 1  # "key":{...} plus a comma
        if used + size > limit:
            break
        kept[key] = entry
        used += size
    out: dict[str, Any] = dict(kept)
    if len(kept) < len(ranked):
        out[TRUNCATED_KEY] = len(ranked) - len(kept)
    return safe_json(out)


# -- the monitoring record ------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRecord:
    """One check as written to MLflow: run tags, run metrics and the registered-model summary."""

    model: str
    check: str
    key: str
    checked_at_ms: int
    tags: dict[str, str]
    metrics: dict[str, float]
    last_check: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CheckRecord:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    @property
    def run_name(self) -> str:
        return clip(f"{self.check} {self.tags.get(lineage.RUN_ID, '')}", 200)


def _drift_reason(summary: Mapping[str, Any], drifted: list[str], evaluated: int) -> str:
    if summary.get("reason"):
        return clip(summary["reason"], REASON_MAX)
    share, threshold = finite(summary.get("drift_share")), finite(summary.get("threshold_share"))
    text = f"{len(drifted)} of {evaluated} evaluated column(s) drifted"
    if share is not None and threshold is not None:
        text += f" (share {share:.3g}, threshold {threshold:.3g})"
    if drifted:
        text += ": " + ", ".join(drifted)
    return clip(text, REASON_MAX)


def _drift_metrics(
    summary: Mapping[str, Any], columns: Mapping[str, Any], drifted: list[str]
) -> dict[str, float | None]:
    return {
        "drift_share": finite(summary.get("drift_share")),
        "drift_threshold": finite(summary.get("threshold_share")),
        "drifted_columns": float(len(drifted)) if columns else None,
        "columns": float(len(columns)) if columns else None,
        "rows_current": finite(summary.get("n_current")),
        "rows_reference": finite(summary.get("n_reference")),
    }


def drift_record(
    *,
    model: str,
    summary: Mapping[str, Any],
    columns: Mapping[str, Any],
    identity: Mapping[str, str],
    logical_date: Any,
    checked_at: datetime,
) -> CheckRecord:
    """
    The record of a drift check from its XCom ``summary`` (status, shares, rows, report, champion) and
    every column's result (``{column: {"score", "drifted", "method", ...}}``, not only the summary's).
    A skipped check passes ``{"status": "skipped", "reason": ...}`` and no columns.
    """
    status = str(summary.get("status"))
    checked = iso_utc(checked_at) or ""
    drifted = [str(name) for name, brief in columns.items() if _column_entry(brief)["drifted"]]
    evaluated = summary.get("n_evaluated", len(columns))
    tags = {
        MODEL_TAG: model,
        CHECK_TAG: "drift",
        STATUS_TAG: status,
        CHECK_KEY_TAG: check_key(identity["dag_id"], identity["dag_run_id"], identity["task_id"]),
        lineage.DAG_ID: clip(identity["dag_id"], ID_MAX),
        lineage.RUN_ID: clip(identity["dag_run_id"], ID_MAX),
        lineage.TASK_ID: clip(identity["task_id"], ID_MAX),
        LOGICAL_DATE_TAG: iso_utc(logical_date) or checked,
        CHECKED_AT_TAG: checked,
        REASON_TAG: _drift_reason(summary, drifted, int(evaluated or 0)),
    }
    if summary.get("report_uri"):
        tags[REPORT_URI_TAG] = clip(summary["report_uri"], URI_MAX)
    if summary.get("champion_version") is not None:
        tags[CHAMPION_VERSION_TAG] = clip(summary["champion_version"], ID_MAX)
    if columns:
        tags[DRIFT_COLUMNS_TAG] = bounded_columns(columns)
    metrics = _drift_metrics(summary, columns, drifted)
    last_check = {
        "status": status,
        "drift_share": metrics["drift_share"],
        "threshold": metrics["drift_threshold"],
        "at": checked,
        "logical_date": tags[LOGICAL_DATE_TAG],
        "dag_id": tags[lineage.DAG_ID],
        "dag_run_id": tags[lineage.RUN_ID],
        "report_uri": tags.get(REPORT_URI_TAG),
        "champion_version": tags.get(CHAMPION_VERSION_TAG),
    }
    return CheckRecord(
        model=model,
        check="drift",
        key=tags[CHECK_KEY_TAG],
        checked_at_ms=int(checked_at.timestamp() * 1000),
        tags=tags,
        metrics={k: v for k, v in metrics.items() if v is not None},
        last_check=last_check,
    )


def last_check_value(record: CheckRecord, mlflow_run_id: str) -> str:
    """``mlops.last_check.<check>``: the record's summary and its run id, within the model tag limit."""
    value = {**record.last_check, "mlflow_run_id": mlflow_run_id}
    text = safe_json(value)
    if len(text) > MODEL_TAG_MAX:  # only a huge report URI can get here
        text = safe_json({**value, "report_uri": None})
    return text


def supersedes(stored: str | None, record: CheckRecord) -> bool:
    """Whether ``record`` is at least as recent as the stored ``mlops.last_check.<check>`` value, by
    logical date then check time: a backfill or a re-run of an old DAG run never shows as the latest."""
    try:
        old = json.loads(stored) if stored else None
    except ValueError:
        return True
    if not isinstance(old, dict):
        return True
    new = record.last_check
    return (str(new.get("logical_date") or ""), str(new.get("at") or "")) >= (
        str(old.get("logical_date") or ""),
        str(old.get("at") or ""),
    )


# -- registered-model summary of decisions -------------------------------------------------------


def split_actor(actor: Any) -> tuple[str | None, str | None]:
    """The DAG id and DAG run id in an actor ``airflow:<dag>/<run>/<task>`` (None, None otherwise)."""
    text = str(actor or "")
    if not text.startswith("airflow:") or text.count("/") < 2:
        return None, None
    dag_id, rest = text.removeprefix("airflow:").split("/", 1)
    return dag_id or None, rest.rsplit("/", 1)[0] or None


def first_failing_gate(gates: Any) -> dict[str, Any] | None:
    for gate in gates if isinstance(gates, list) else []:
        if isinstance(gate, Mapping) and not gate.get("passed"):
            return {
                "gate": clip(gate.get("gate"), 60),
                "metric": clip(gate.get("metric"), 100),
                "value": finite(gate.get("value")),
                "threshold": finite(gate.get("threshold")),
            }
    return None


def last_decision_value(summary: Mapping[str, Any]) -> str | None:
    """
    ``mlops.last_decision`` for a gate summary (promoted, refused) or a rollback summary (rolled_back);
    ``None`` for a decision that changes nothing (``skipped``), which keeps the previous one.
    """
    decision = str(summary.get("decision"))
    if decision not in RECORDED_DECISIONS:
        return None
    actor = summary.get("dag_run") or summary.get("actor") or summary.get("decided_by")
    dag_id, dag_run = split_actor(actor)
    value = {
        "version": None if summary.get("new_version") is None else clip(summary["new_version"], ID_MAX),
        "decision": decision,
        "reason": clip(summary.get("reason"), DECISION_REASON_MAX),
        "first_failing_gate": first_failing_gate(summary.get("gates")),
        "decided_at": clip(summary.get("decided_at") or iso_utc(datetime.now(UTC)), 40),
        "decided_by": clip(summary.get("decided_by"), ID_MAX),
        "dag_id": None if dag_id is None else clip(dag_id, ID_MAX),
        "dag_run": None if dag_run is None else clip(dag_run, ID_MAX),
    }
    text = safe_json(value)
    return text if len(text) <= MODEL_TAG_MAX else safe_json({**value, "reason": clip(value["reason"], 100)})


def rollback_decision_value(version: str, reason: str, who: str, at: str, actor: str | None = None) -> str:
    """``mlops.last_decision`` for a rollback to ``version`` by ``who`` (an actor or a person) in the
    task ``actor`` (``airflow:<dag>/<run>/<task>``, default ``who``)."""
    summary = {"decision": "rolled_back", "new_version": version, "reason": reason, "decided_at": at}
    return str(last_decision_value({**summary, "decided_by": who, "actor": actor}))
