"""Tag keys that tie a model version to its data, its run and its decisions (MLflow tags)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mlops_provider.core.errors import InvalidInputError

PREFIX = "mlops."
TRAINING_DATA_URI = "mlops.training_data_uri"
TRAINING_DATA_FINGERPRINT = "mlops.training_data_fingerprint"
TRAINING_DATA_ROWS = "mlops.training_data_rows"  # the rows read (and fingerprinted): the sample's, if any
# Set only when training used a deterministic sample of data above training.max_rows:
TRAINING_ROWS_TOTAL = "mlops.training_rows_total"  # the rows the training data held
TRAINING_SAMPLE_ROWS = "mlops.training_sample_rows"  # the rows sampled (as TRAINING_DATA_ROWS)
TRAINING_SAMPLE_SEED = "mlops.training_sample_seed"  # the sample's seed (training.random_state)
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
TRIGGER_USER = "mlops.trigger.triggered_by"  # who triggered the DAG run (Airflow user), when someone did
TRIGGER_FORCED = "mlops.trigger.forced"  # JSON: a forced retrain's request (reason, who)
MAX_TRIGGER_EVENTS = 5
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"  # relative to the training run's artifacts
VALIDATION_RESULTS = ("passed", "warned", "failed", "not_run")


def config_hash(config: Any) -> str:
    """A stable hash of a JSON-serialisable model config."""
    payload = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:16]


DRIFT_ASSET_PREFIX = "x-mlops://drift/"
PERFORMANCE_ASSET_PREFIX = "x-mlops://performance/"
ASSET_KINDS = {DRIFT_ASSET_PREFIX: "drift", PERFORMANCE_ASSET_PREFIX: "performance"}


def asset_kind(uri: Any) -> str:
    """``drift`` or ``performance`` for the provider's Assets (by URI), ``asset`` for any other."""
    text = str(uri or "")
    return next((kind for prefix, kind in ASSET_KINDS.items() if text.startswith(prefix)), "asset")


def trigger_summary(context: Any) -> dict[str, Any]:
    """
    Why the running DAG run started: ``cause`` (the nightly schedule, a performance or drift Asset event
    (performance first when both), another Asset event, or a person), the run type, ``triggered_by`` (the Airflow user who triggered the run,
    ``None`` for the scheduler), the drift events (id, source run, their ``extra``) and, when the run
    asks for a forced retrain, ``forced`` with its reason and who asked (whether the config allows it
    is the promote task's to decide). Reads only the task context.
    """
    events = context.get("triggering_asset_events") or {}
    drift_events = []
    for asset, asset_events in events.items():
        for event in asset_events:
            drift_events.append(
                {
                    "asset": getattr(asset, "name", None) or str(asset),
                    "kind": asset_kind(getattr(asset, "uri", None)),
                    "event_id": getattr(event, "id", None),
                    "timestamp": str(getattr(event, "timestamp", "")),
                    "source_dag_id": getattr(event, "source_dag_id", None),
                    "source_run_id": getattr(event, "source_run_id", None),
                    "extra": dict(getattr(event, "extra", None) or {}),
                }
            )
    kinds = {event["kind"] for event in drift_events}
    raw_type = getattr(context.get("dag_run"), "run_type", "")
    run_type = str(getattr(raw_type, "value", raw_type) or "")  # the Task SDK's DagRunType enum: its value
    if "performance" in kinds:  # labels showed the champion is wrong: the stronger evidence
        cause = "performance"
    elif "drift" in kinds:
        cause = "drift"
    elif "scheduled" in run_type:
        cause = "schedule"
    elif "asset" in run_type or drift_events:
        cause = "asset"
    else:
        cause = "manual"
    summary: dict[str, Any] = {
        "cause": cause,
        "run_type": run_type,
        "triggered_by": triggering_user(context),
        "drift_events": drift_events[:MAX_TRIGGER_EVENTS],
    }
    params = context.get("params") or {}
    if params.get("skip_vs_champion") in (True, "true", "True"):
        summary["forced"] = {
            "skip_vs_champion": True,
            "reason": params.get("force_reason") or "",
            "by": summary["triggered_by"],
        }
    return summary


def trigger_tags(summary: Mapping[str, Any]) -> dict[str, str]:
    """The who/forced part of :func:`trigger_summary` as run tags (only what is present)."""
    tags = {}
    if summary.get("triggered_by"):
        tags[TRIGGER_USER] = str(summary["triggered_by"])[:250]
    if summary.get("forced"):
        tags[TRIGGER_FORCED] = json.dumps(summary["forced"], default=str, sort_keys=True)[:4000]
    return tags


def triggering_user(context: Mapping[str, Any]) -> str | None:
    """The Airflow user who triggered the running DAG run (``None`` for scheduled and asset runs)."""
    user = getattr(context.get("dag_run"), "triggering_user_name", None)
    return str(user) if user else None


def task_identity(context: Mapping[str, Any]) -> dict[str, str]:
    """dag id / dag run id / task id / try number of the running task (empty strings outside Airflow)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    return {
        "dag_id": str(getattr(ti, "dag_id", "") or ""),
        "dag_run_id": str(getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "") or ""),
        "task_id": str(getattr(ti, "task_id", "") or ""),
        "try_number": str(getattr(ti, "try_number", "") or ""),
    }


def logical_date(context: Mapping[str, Any]) -> Any:
    """The DAG run's logical date, else its ``run_after`` (``None`` outside a DAG run)."""
    dag_run = context.get("dag_run")
    return (
        context.get("logical_date")
        or getattr(dag_run, "logical_date", None)
        or getattr(dag_run, "run_after", None)
    )


def normalise_validation_result(value: Any) -> str:
    """``passed`` | ``warned`` | ``failed`` | ``not_run`` from a string or a validation summary dict."""
    if value is None or value == "":
        return "not_run"
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                import ast

                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    value = text
        else:
            value = text
    if isinstance(value, Mapping):
        for key in ("result", "status", "outcome"):
            if isinstance(value.get(key), str):
                return normalise_validation_result(value[key])
        if isinstance(value.get("success"), bool):
            return "passed" if value["success"] else "failed"
        raise InvalidInputError(f"validation_result: cannot read a status from {dict(value)!r}")
    if isinstance(value, bool):
        return "passed" if value else "failed"
    text = str(value).lower()
    aliases = {"success": "passed", "pass": "passed", "warn": "warned", "warning": "warned", "fail": "failed"}
    text = aliases.get(text, text)
    if text not in VALIDATION_RESULTS:
        raise InvalidInputError(
            f"validation_result must be one of {', '.join(VALIDATION_RESULTS)}, got {value!r}"
        )
    return text


def as_bool(value: Any, name: str) -> bool:
    """A bool from a bool or its rendered template text ("True", "false", "1", "")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "", "none"):
        return False
    raise InvalidInputError(f"{name} must be true or false, got {value!r}")


def who(identity: Mapping[str, str]) -> str:
    """``airflow:<dag>/<run>/<task>``: the actor recorded for decisions a task makes."""
    if identity.get("dag_id"):
        return f"airflow:{identity['dag_id']}/{identity['dag_run_id']}/{identity['task_id']}"
    return "airflow"
