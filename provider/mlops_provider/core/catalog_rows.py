"""The Models page's list row: why a retrain ran, the live check, and what needs a person's eye.

No Airflow and no MLflow in here; the values are shaped like the rest of :mod:`mlops_provider.core.catalog`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mlops_provider.core.catalog import number, parse_json, text
from mlops_provider.core.lineage import DRIFT_ASSET_PREFIX, PERFORMANCE_ASSET_PREFIX


def retrain_cause(run_type: Any, conf: Any, asset_uris: Iterable[str]) -> str:
    """Why a retrain DAG run started, in :func:`mlops_provider.core.lineage.trigger_summary`'s words, plus
    ``performance`` (a performance Asset event, or a run whose conf says ``cause: performance``)."""
    uris = [u for u in asset_uris if isinstance(u, str)]
    requested = conf.get("cause") if isinstance(conf, Mapping) else None
    if any(u.startswith(PERFORMANCE_ASSET_PREFIX) for u in uris) or requested == "performance":
        return "performance"  # labels showed the champion is wrong: first, as in lineage.trigger_summary
    if any(u.startswith(DRIFT_ASSET_PREFIX) for u in uris):
        return "drift"
    kind = str(getattr(run_type, "value", run_type) or "")  # an enum's value, not its repr
    if "scheduled" in kind:
        return "schedule"
    if "asset" in kind or uris:
        return "asset"
    return "manual"


def live_check(raw: Any, champion_version: str | None = None) -> dict[str, Any] | None:
    """``mlops.last_check.performance``, shaped: the champion's live primary metric and the check's
    verdict; ``None`` when it judged another version than today's champion (e.g. before a rollback)."""
    record = parse_json(raw, dict)
    if record is None:
        return None
    judged = text(record.get("champion_version"), 50)
    if champion_version is not None and judged and judged != str(champion_version):
        return None
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    metric = text(record.get("primary_metric"), 100) or next(iter(sorted(metrics)), "")
    return {
        "metric": metric,
        "value": number(metrics.get(metric)),
        "status": text(record.get("status"), 50),
        "action": text(record.get("action"), 50),
        "labels": number(record.get("labels")),
        "reason": text(record.get("reason"), 500),
        "at": text(record.get("at"), 50),
        "champion_version": judged or None,
    }


def problems(
    decision: Mapping[str, Any] | None,
    drift: Mapping[str, Any] | None,
    retrain: Mapping[str, Any] | None,
    pending: int,
    live: Mapping[str, Any] | None = None,
) -> list[str]:
    """What needs a person's eye: a refused decision, drift, a failed retrain, an approval, degradation."""
    found = []
    if live and live.get("status") == "degraded":
        found.append("degraded")
    if decision and decision.get("decision") == "refused":
        found.append("refused")
    if drift and drift.get("status") == "drift":
        found.append("drift")
    if retrain and retrain.get("state") == "failed":
        found.append("failed_run")
    if pending:
        found.append("pending_approval")
    return found
