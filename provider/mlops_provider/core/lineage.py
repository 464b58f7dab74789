"""Tag keys that tie a model version to its data, its run and its decisions (MLflow tags)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

PREFIX = "mlops."
TRAINING_DATA_URI = "mlops.training_data_uri"
TRAINING_DATA_FINGERPRINT = "mlops.training_data_fingerprint"
TRAINING_DATA_ROWS = "mlops.training_data_rows"
FEATURES = "mlops.features"  # JSON list
TARGET = "mlops.target"
TASK_TYPE = "mlops.task_type"
VALIDATION_RESULT = "mlops.validation_result"  # "passed" | "warned" | "failed" | "not_run"
CONFIG_HASH = "mlops.config_hash"
CODE_VERSION = "mlops.code_version"  # provider package version
DAG_ID = "mlops.dag_id"
RUN_ID = "mlops.dag_run_id"
TASK_ID = "mlops.task_id"
TRY_NUMBER = "mlops.try_number"
TRAINING_RUN_ID = "mlops.training_run_id"  # MLflow run id; registry dedupe key
TRIGGER_CAUSE = "mlops.trigger.cause"  # "schedule" | "drift" | "asset" | "manual"
TRIGGER_DRIFT_EVENTS = "mlops.trigger.drift_events"  # JSON list: the Asset events that started the run
MAX_TRIGGER_EVENTS = 5
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"  # relative to the training run's artifacts


def config_hash(config: Any) -> str:
    """A stable hash of a JSON-serialisable model config."""
    payload = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def trigger_summary(context: Any) -> dict[str, Any]:
    """
    Why the running DAG run started: ``cause`` (the nightly schedule, a drift Asset event, another
    Asset event, or a person), the run type, the drift events (id, source run, their ``extra``) and,
    for a forced retrain, ``forced`` with its reason. Reads only the task context.
    """
    events = context.get("triggering_asset_events") or {}
    drift_events = []
    for asset, asset_events in events.items():
        for event in asset_events:
            drift_events.append(
                {
                    "asset": getattr(asset, "name", None) or str(asset),
                    "event_id": getattr(event, "id", None),
                    "timestamp": str(getattr(event, "timestamp", "")),
                    "source_dag_id": getattr(event, "source_dag_id", None),
                    "source_run_id": getattr(event, "source_run_id", None),
                    "extra": dict(getattr(event, "extra", None) or {}),
                }
            )
    run_type = str(getattr(context.get("dag_run"), "run_type", "") or "")
    if drift_events:
        cause = "drift"
    elif "scheduled" in run_type:
        cause = "schedule"
    elif "asset" in run_type:
        cause = "asset"
    else:
        cause = "manual"
    summary: dict[str, Any] = {
        "cause": cause,
        "run_type": run_type,
        "drift_events": drift_events[:MAX_TRIGGER_EVENTS],
    }
    params = context.get("params") or {}
    if params.get("skip_vs_champion") in (True, "true", "True"):
        summary["forced"] = {"skip_vs_champion": True, "reason": params.get("force_reason") or ""}
    return summary
