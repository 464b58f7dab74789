"""Records of scored batches and of live-performance checks. No Airflow and no MLflow in here.

* A scored batch (:func:`scoring_record`) is one run in ``<model>-monitoring`` with ``mlops.check =
  scoring``: which versions scored it under which alias, where the served and shadow predictions are,
  and the scoring date as the metric ``scoring_ts`` (epoch seconds), so the performance monitor finds
  the batches of its window with one query.
* A performance check (:func:`performance_record`) is a run with ``mlops.check = performance``: the
  champion's live metrics as ``live.<metric>`` and ``labels`` (what the Models page charts), every
  alias's numbers, the label problems counted, the status and the action taken, with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mlops_provider.core import lineage
from mlops_provider.core.feedback import (
    ALIAS_COLUMN,
    PREDICTION_COLUMN,
    SCORING_DATE_COLUMN,
    VERSION_COLUMN,
    scoring_in_window,
)
from mlops_provider.core.monitoring import (
    CHAMPION_VERSION_TAG,
    CHECK_KEY_TAG,
    CHECK_TAG,
    CHECKED_AT_TAG,
    ID_MAX,
    LOGICAL_DATE_TAG,
    MODEL_TAG,
    REASON_MAX,
    REASON_TAG,
    STATUS_TAG,
    URI_MAX,
    CheckRecord,
    check_key,
    clip,
    finite,
    iso_utc,
    safe_json,
)

SCORING_CHECK = "scoring"
SCORING_TS_METRIC = "scoring_ts"
OUTPUTS_TAG = "mlops.scoring.outputs"  # {"served": uri, "shadow": uri | null}
VERSIONS_TAG = "mlops.scoring.versions"  # {alias: version}
ALIASES_TAG = "mlops.performance.aliases"  # {alias: {"version", "labels", "metrics"}}
LABELS_TAG = "mlops.performance.labels"  # the label problems counted
ACTION_TAG = "mlops.performance.action"  # none | performance_event | rollback | promote | refuse_challenger
LIVE_PREFIX = "live."
ACTIONS = ("none", "performance_event", "rollback", "promote", "refuse_challenger")


def _timestamp(value: Any) -> float | None:
    text = iso_utc(value)
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _base_tags(
    model: str, check: str, status: str, identity: Mapping[str, str], logical: str, at: str
) -> dict[str, str]:
    return {
        MODEL_TAG: model,
        CHECK_TAG: check,
        STATUS_TAG: status,
        CHECK_KEY_TAG: check_key(identity["dag_id"], identity["dag_run_id"], identity["task_id"]),
        lineage.DAG_ID: clip(identity["dag_id"], ID_MAX),
        lineage.RUN_ID: clip(identity["dag_run_id"], ID_MAX),
        lineage.TASK_ID: clip(identity["task_id"], ID_MAX),
        LOGICAL_DATE_TAG: logical,
        CHECKED_AT_TAG: at,
    }


def scoring_record(
    *,
    model: str,
    versions: Mapping[str, str],
    outputs: Mapping[str, str | None],
    rows: int,
    identity: Mapping[str, str],
    scoring_date: Any,
    scored_at: datetime,
) -> CheckRecord:
    """The record of one scored batch: ``versions`` by alias (the served one first), ``outputs`` served
    and shadow, and the scoring date (the run's logical date) the monitor's window counts in."""
    at = iso_utc(scored_at) or ""
    logical = iso_utc(scoring_date) or at
    served = next(iter(versions.values()), None)
    tags = _base_tags(model, SCORING_CHECK, "scored", identity, logical, at)
    tags[VERSIONS_TAG] = safe_json({clip(k, ID_MAX): clip(v, ID_MAX) for k, v in versions.items()})
    tags[OUTPUTS_TAG] = safe_json({k: None if v is None else clip(v, URI_MAX) for k, v in outputs.items()})
    tags[REASON_TAG] = clip(
        f"{rows} row(s) scored by " + ", ".join(f"@{k} v{v}" for k, v in versions.items()), REASON_MAX
    )
    if served is not None:
        tags[CHAMPION_VERSION_TAG] = clip(served, ID_MAX)
    return CheckRecord(
        model=model,
        check=SCORING_CHECK,
        key=tags[CHECK_KEY_TAG],
        checked_at_ms=int(scored_at.timestamp() * 1000),
        tags=tags,
        metrics={"rows": float(rows), SCORING_TS_METRIC: _timestamp(logical) or scored_at.timestamp()},
        last_check={
            "status": "scored",
            "rows": rows,
            "at": at,
            "logical_date": logical,
            "versions": dict(versions),
        },
    )


def _alias_numbers(aliases: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for alias, entry in aliases.items():
        metrics = entry.get("metrics") or {}
        out[clip(alias, ID_MAX)] = {
            "version": clip(entry.get("version"), ID_MAX),
            "labels": int(entry.get("labels") or 0),
            "metrics": {clip(m, 60): finite(v) for m, v in metrics.items()},
        }
    return out


def performance_record(
    *,
    model: str,
    status: str,
    action: str,
    reason: str,
    champion: Mapping[str, Any] | None,
    aliases: Mapping[str, Mapping[str, Any]],
    labels: Mapping[str, Any],
    identity: Mapping[str, str],
    logical_date: Any,
    checked_at: datetime,
    primary_metric: str | None = None,
) -> CheckRecord:
    """The record of one performance check (see the module docstring); ``champion`` is the champion's
    entry of ``aliases`` (``{"version", "labels", "metrics"}``) or ``None`` without one."""
    at = iso_utc(checked_at) or ""
    logical = iso_utc(logical_date) or at
    tags = _base_tags(model, "performance", status, identity, logical, at)
    tags[REASON_TAG] = clip(reason, REASON_MAX)
    tags[ACTION_TAG] = action
    tags[ALIASES_TAG] = clip(safe_json(_alias_numbers(aliases)), 7000)
    tags[LABELS_TAG] = clip(safe_json(dict(labels)), 4000)
    metrics: dict[str, float] = {}
    if champion is not None:
        tags[CHAMPION_VERSION_TAG] = clip(champion.get("version"), ID_MAX)
        metrics["labels"] = float(champion.get("labels") or 0)
        for name, value in (champion.get("metrics") or {}).items():
            number = finite(value)
            if number is not None:
                metrics[f"{LIVE_PREFIX}{name}"] = number
    last_check = {
        "status": status,
        "action": action,
        "primary_metric": primary_metric,
        "reason": tags[REASON_TAG],
        "labels": metrics.get("labels"),
        "metrics": {k.removeprefix(LIVE_PREFIX): v for k, v in metrics.items() if k.startswith(LIVE_PREFIX)},
        "at": at,
        "logical_date": logical,
        "dag_id": tags[lineage.DAG_ID],
        "dag_run_id": tags[lineage.RUN_ID],
        "champion_version": tags.get(CHAMPION_VERSION_TAG),
    }
    return CheckRecord(
        model=model,
        check="performance",
        key=tags[CHECK_KEY_TAG],
        checked_at_ms=int(checked_at.timestamp() * 1000),
        tags=tags,
        metrics=metrics,
        last_check=last_check,
    )


def live_version_tags(summary: Mapping[str, Any], at: datetime) -> dict[str, str]:
    """``mlops.live.*`` for the champion version a check judged: its status, reason, labels and when."""
    return {
        "mlops.live.status": clip(summary.get("status"), 50),
        "mlops.live.action": clip(summary.get("action"), 50),
        "mlops.live.reason": clip(summary.get("reason"), 4000),
        "mlops.live.labels": str(int(summary.get("labels") or 0)),
        "mlops.live.at": iso_utc(at) or "",
    }


# -- which rows of a batch file count ------------------------------------------------------------

BATCH_COLUMNS = (PREDICTION_COLUMN, VERSION_COLUMN, ALIAS_COLUMN, SCORING_DATE_COLUMN)


def batch_rows(
    frame: Any,
    *,
    versions: Mapping[str, str],
    aliases: Sequence[str],
    id_column: str,
    span: tuple[datetime, datetime],
    where: str,
) -> tuple[Any, str | None]:
    """
    The rows of one prediction file that count: made by a version its batch record lists under that
    alias (one of ``aliases``) and scored in the window ``span``; a file records do not vouch for
    (forged alias or version columns, rows of another batch) adds nothing. ``(rows, None)``, or
    ``(None, why)`` when the file is not a prediction file at all.
    """
    missing = [c for c in (id_column, *BATCH_COLUMNS) if c not in frame.columns]
    if missing:
        return (
            None,
            f"{clip(where, URI_MAX)}: not a prediction file (no column {', '.join(map(repr, missing))})",
        )
    listed = {(str(a), str(v)) for a, v in versions.items() if a in aliases}
    pairs = frame[ALIAS_COLUMN].astype(str) + "\n" + frame[VERSION_COLUMN].astype(str)
    rows = frame.loc[pairs.isin({f"{a}\n{v}" for a, v in listed}).to_numpy()]
    return scoring_in_window(rows, span[0], span[1], where=where), None
