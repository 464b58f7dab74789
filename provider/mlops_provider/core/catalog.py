"""The Models page's read model: what MLflow's records say about a model, shaped for the JSON API.

No Airflow and no MLflow in here. :class:`VersionRecord` and :class:`RunRecord` are the plain records the
catalog hook reads (model versions with their tags, runs with tags and metrics); the functions turn them,
and the registered model's tags, into the API's shapes: versions with holdout metrics, gate verdicts and
deltas, the alias history, the champion and since when, the drift and performance series, and the
list's problems. Every value read from a tag is untrusted text: malformed JSON is ignored, never raised.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_provider.core import lineage
from mlops_provider.core.gate import DECISION_PREFIX, HISTORY_TAG
from mlops_provider.core.metrics import DEFAULT_PRIMARY, higher_is_better, is_finite_number

ReportUrl = Callable[[str], "str | None"]

CHAMPION = "champion"
HOLDOUT_PREFIX = "holdout_"
LIVE_PREFIX = "live."
HISTORY_PREFIX = HISTORY_TAG.format(alias="")
REVISION_TAG = "mlops.revision"
RETRAIN_DAG_TAG = "mlops.retrain_dag"
MANAGED_TAG = "mlops.managed"
LAST_DECISION_TAG = "mlops.last_decision"
LAST_CHECK_TAG = "mlops.last_check.{check}"
PRIMARY_METRIC_TAG = "mlops.primary_metric"
CHECK_TAG, STATUS_TAG, COLUMNS_TAG = "mlops.check", "mlops.status", "mlops.drift.columns"
CAUSES = ("schedule", "drift", "performance", "manual", "asset")
SERIES_MAX_POINTS = 1000
SERIES_MAX_DAYS = 730


@dataclass(frozen=True)
class VersionRecord:
    """A registered model version: number, creation time (ms), source run and tags."""

    version: str
    created_ms: int | None
    run_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """An MLflow run: id, experiment, start and end time (ms), tags and latest metric values."""

    run_id: str
    experiment_id: str
    start_ms: int | None
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    end_ms: int | None = None


# -- small readers -------------------------------------------------------------------------------------
def iso_ms(ms: Any) -> str | None:
    """``2026-12-01T02:03:04Z`` from epoch milliseconds; None when absent."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def parse_json(raw: Any, kind: type) -> Any:
    """``raw`` parsed when it is JSON text of ``kind`` (dict or list), else None."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def number(value: Any) -> float | None:
    """A finite float, else None (NaN, infinities, text and bools are no numbers)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    return float(value) if is_finite_number(value) else None


def text(value: Any, limit: int = 2000) -> str | None:
    """A bounded string, None for None/empty."""
    if value is None or value == "":
        return None
    return str(value)[:limit]


def safe_link(url: Any) -> str | None:
    """``url`` when a page may use it as a link: a same-site path (not ``//``) or http(s); else None."""
    if not isinstance(url, str) or any(c in url for c in "\\\x00\n\r\t"):
        return None
    if url.startswith("/") and not url.startswith("//"):
        return url
    return url if url.lower().startswith(("http://", "https://")) else None


def filter_literal(value: str) -> str | None:
    """``value`` as an MLflow search-filter string literal; None when no quoting can hold it."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


# -- the registered model -----------------------------------------------------------------------------
def aliases_of(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """Alias -> version (as strings; the SQL store gives ints), sorted by alias."""
    return {str(k): str(v) for k, v in sorted((raw or {}).items())}


def alias_history(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every ``mlops.alias_history.<alias>`` entry, oldest first (stable by time, then record order)."""
    entries: list[dict[str, Any]] = []
    for key in sorted(k for k in tags if k.startswith(HISTORY_PREFIX)):
        alias = key[len(HISTORY_PREFIX) :]
        for raw in parse_json(tags[key], list) or []:
            if not isinstance(raw, Mapping):
                continue
            entries.append(
                {
                    "alias": text(raw.get("alias"), 250) or alias,
                    "action": text(raw.get("action"), 50),
                    "from": text(raw.get("from"), 50),
                    "to": text(raw.get("to"), 50),
                    "why": text(raw.get("why"), 500),
                    "who": text(raw.get("who"), 500),
                    "when": text(raw.get("when"), 50),
                }
            )
    return sorted(entries, key=lambda e: e["when"] or "")


def since(history: Sequence[Mapping[str, Any]], alias: str, version: str) -> str | None:
    """When ``alias`` last moved to ``version`` (from the history), None if not recorded."""
    for entry in reversed(history):
        if entry.get("alias") == alias and entry.get("to") == version:
            return str(entry.get("when")) if entry.get("when") else None
    return None


def champion(aliases: Mapping[str, str], history: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    version = aliases.get(CHAMPION)
    return None if version is None else {"version": version, "since": since(history, CHAMPION, version)}


def gate_list(raw: Any) -> list[dict[str, Any]]:
    """The gate verdicts of a decision (JSON text or a list), each ``{gate, metric, value, threshold,
    passed, detail}``."""
    items = parse_json(raw, list) if isinstance(raw, str) else raw
    gates = []
    for g in items if isinstance(items, list) else []:
        if isinstance(g, Mapping):
            gates.append(
                {
                    "gate": text(g.get("gate"), 50),
                    "metric": text(g.get("metric"), 100),
                    "value": number(g.get("value")),
                    "threshold": number(g.get("threshold")),
                    "passed": g.get("passed") is True,
                    "detail": text(g.get("detail"), 500),
                }
            )
    return gates


def first_failing_gate(gates: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    for g in gates:
        if not g.get("passed"):
            return {k: g.get(k) for k in ("gate", "metric", "value", "threshold")}
    return None


def deltas(gates: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Challenger minus champion per compared metric (the vs_champion gates record the improvement,
    which is champion minus challenger for metrics where lower is better)."""
    out = {}
    for g in gates:
        metric, value = g.get("metric"), g.get("value")
        if g.get("gate") == "vs_champion" and isinstance(metric, str) and isinstance(value, float):
            out[metric] = value if higher_is_better(metric) else -value
    return out


def last_decision(raw: Any) -> dict[str, Any] | None:
    """The ``mlops.last_decision`` tag, shaped; None when absent or unreadable."""
    record = parse_json(raw, dict)
    if record is None:
        return None
    failing = record.get("first_failing_gate")
    return {
        "version": text(record.get("version"), 50),
        "decision": text(record.get("decision"), 50),
        "reason": text(record.get("reason"), 500),
        "first_failing_gate": first_failing_gate(gate_list([failing])) if isinstance(failing, dict) else None,
        "decided_at": text(record.get("decided_at"), 50),
        "decided_by": text(record.get("decided_by"), 500),
    }


def last_check(raw: Any, report_url: ReportUrl) -> dict[str, Any] | None:
    """A ``mlops.last_check.<check>`` tag, shaped; None when absent or unreadable."""
    record = parse_json(raw, dict)
    if record is None:
        return None
    uri = record.get("report_uri")
    return {
        "status": text(record.get("status"), 50),
        "drift_share": number(record.get("drift_share")),
        "threshold": number(record.get("threshold")),
        "at": text(record.get("at"), 50),
        "report_url": safe_link(report_url(uri)) if isinstance(uri, str) and uri else None,
    }


def primary_metric(tags: Mapping[str, str], versions: Sequence[VersionRecord]) -> str:
    """The model's headline metric: its ``mlops.primary_metric`` tag, else the first gated metric of the
    newest decision, else the task type's default."""
    if tags.get(PRIMARY_METRIC_TAG):
        return str(tags[PRIMARY_METRIC_TAG])[:100]
    for v in versions:  # newest first
        gates = gate_list(v.tags.get(f"{DECISION_PREFIX}gates"))
        gated = [g["metric"] for g in gates if g["gate"] == "vs_champion"] + [g["metric"] for g in gates]
        if any(gated):
            return str(next(m for m in gated if m))
    task = next((v.tags[lineage.TASK_TYPE] for v in versions if v.tags.get(lineage.TASK_TYPE)), "")
    return DEFAULT_PRIMARY.get(task, DEFAULT_PRIMARY["classification"])


# -- versions --------------------------------------------------------------------------------------
def holdout_metrics(run: RunRecord | None) -> dict[str, float]:
    if run is None:
        return {}
    found = {
        k[len(HOLDOUT_PREFIX) :]: number(v) for k, v in run.metrics.items() if k.startswith(HOLDOUT_PREFIX)
    }
    return {k: v for k, v in sorted(found.items()) if v is not None}


def version_entry(
    record: VersionRecord, run: RunRecord | None, aliases: Sequence[str], links: Mapping[str, str | None]
) -> dict[str, Any]:
    """One version as the model page shows it."""
    tags = record.tags
    gates = gate_list(tags.get(f"{DECISION_PREFIX}gates"))
    rollback = {k: tags.get(f"mlops.rollback.{k}") for k in ("from_version", "reason", "by", "at")}
    return {
        "version": record.version,
        "created_at": iso_ms(record.created_ms),
        "run_id": record.run_id,
        "training_data_fingerprint": text(tags.get(lineage.TRAINING_DATA_FINGERPRINT), 200),
        "validation_result": text(tags.get(lineage.VALIDATION_RESULT), 50),
        "trigger_cause": text(tags.get(lineage.TRIGGER_CAUSE), 50),
        "metrics": holdout_metrics(run),
        "deltas": deltas(gates),
        "gates": gates,
        "decision": text(tags.get(f"{DECISION_PREFIX}decision"), 50),
        "reason": text(tags.get(f"{DECISION_PREFIX}reason"), 4000),
        "decided_by": text(tags.get(f"{DECISION_PREFIX}decided_by"), 500),
        "decided_at": text(tags.get(f"{DECISION_PREFIX}decided_at"), 50),
        "rollback": {k: text(v, 1000) for k, v in rollback.items()} if rollback["at"] else None,
        "live": live_of(tags),
        "aliases": list(aliases),
        "links": {k: safe_link(v) for k, v in links.items()},
    }


def live_of(tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The version's last live check (``mlops.live.*``, set while it is the champion), shaped."""
    if not tags.get("mlops.live.status"):
        return None
    labels = number(tags.get("mlops.live.labels"))
    return {
        "status": text(tags.get("mlops.live.status"), 50),
        "reason": text(tags.get("mlops.live.reason"), 1000),
        "labels": int(labels) if labels is not None else None,
        "at": text(tags.get("mlops.live.at"), 50),
    }


def aliases_by_version(aliases: Mapping[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        out.setdefault(version, []).append(alias)
    return out


def version_sort_key(record: VersionRecord) -> tuple[int, str]:
    return (int(record.version), "") if record.version.isdigit() else (-1, record.version)


# -- monitoring series --------------------------------------------------------------------------------
def _point_base(run: RunRecord, report_url: ReportUrl) -> dict[str, Any]:
    uri = run.tags.get("mlops.report_uri")
    return {
        "at": text(run.tags.get("mlops.checked_at"), 50) or iso_ms(run.start_ms),
        "logical_date": text(run.tags.get("mlops.logical_date"), 50),
        "status": text(run.tags.get(STATUS_TAG), 50),
        "report_url": safe_link(report_url(uri)) if uri else None,
        "dag_id": text(run.tags.get("mlops.dag_id"), 250),
        "dag_run_id": text(run.tags.get("mlops.dag_run_id"), 250),
        "champion_version": text(run.tags.get("mlops.champion_version"), 50),
        "reason": text(run.tags.get("mlops.reason"), 500),
    }


def drift_point(run: RunRecord, report_url: ReportUrl) -> dict[str, Any]:
    """One drift check: share, threshold, per-column scores and the drifted columns."""
    columns = parse_json(run.tags.get(COLUMNS_TAG), dict) or {}
    scores: dict[str, float | None] = {}
    drifted = []
    for name, value in columns.items():
        if name == "_truncated" or not isinstance(value, Mapping):
            continue
        scores[str(name)] = number(value.get("score"))
        if value.get("drifted") is True:
            drifted.append(str(name))
    return {
        **_point_base(run, report_url),
        "drift_share": number(run.metrics.get("drift_share")),
        "threshold": number(run.metrics.get("drift_threshold")),
        "columns": scores,
        "drifted_columns": drifted,
    }


def performance_point(run: RunRecord, report_url: ReportUrl) -> dict[str, Any]:
    """One performance check: the live metrics and how many labels they rest on."""
    live = {k[len(LIVE_PREFIX) :]: number(v) for k, v in run.metrics.items() if k.startswith(LIVE_PREFIX)}
    labels = number(run.metrics.get("labels"))
    return {
        **_point_base(run, report_url),
        "metrics": {k: v for k, v in sorted(live.items()) if v is not None},
        "labels": int(labels) if labels is not None else None,
    }


def series(runs: Iterable[RunRecord], report_url: ReportUrl) -> dict[str, list[dict[str, Any]]]:
    """The drift and performance series (oldest first, each the newest :data:`SERIES_MAX_POINTS`)."""
    ordered = sorted(runs, key=lambda r: (r.start_ms or 0, r.run_id))
    drift = [drift_point(r, report_url) for r in ordered if r.tags.get(CHECK_TAG) == "drift"]
    performance = [
        performance_point(r, report_url) for r in ordered if r.tags.get(CHECK_TAG) == "performance"
    ]
    return {"drift": drift[-SERIES_MAX_POINTS:], "performance": performance[-SERIES_MAX_POINTS:]}
