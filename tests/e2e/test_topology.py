"""The production topology end to end: REST-triggered retrain, drift across processes, human approval."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    DRIFT,
    MLFLOW_SENTINEL,
    MODEL,
    RETRAIN,
    S3_SECRET,
    SENSOR_DAG,
    SUMMER_BATCH_DATE,
    Topology,
)

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 480  # bounds, not waits: every wait polls for a state (a loaded 2-core machine is slow)


def versions_of_run(topology: Topology, dag_run_id: str) -> list[dict[str, Any]]:
    """Model versions whose training run came from this DAG run (MLflow REST, plain HTTP)."""
    found = topology.mlflow(
        "GET", "model-versions/search", {"filter": f"name = '{MODEL}'", "max_results": 200}
    )
    out = []
    for version in found.get("model_versions", []):
        run = topology.mlflow("GET", "runs/get", {"run_id": version["run_id"]})["run"]
        tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        if tags.get("mlops.dag_run_id") == dag_run_id:
            out.append({**version, "run_tags": tags, "run_status": run["info"]["status"]})
    return out


def champion_version(topology: Topology) -> str | None:
    try:
        found = topology.mlflow("GET", "registered-models/alias", {"name": MODEL, "alias": "champion"})
    except Exception:
        return None
    return found["model_version"]["version"]


def running_mlflow_runs(topology: Topology) -> list[str]:
    experiments = topology.mlflow("GET", "experiments/search", {"max_results": 100})["experiments"]
    ids = [e["experiment_id"] for e in experiments]
    found = topology.mlflow(
        "POST",
        "runs/search",
        {"experiment_ids": ids, "filter": "attributes.status = 'RUNNING'", "max_results": 100},
    )
    return [r["info"]["run_id"] for r in found.get("runs", [])]


def s3_keys(topology: Topology, prefix: str) -> dict[str, int]:
    s3 = topology.s3()
    keys: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow", Prefix=prefix):
        for obj in page.get("Contents", []):
            keys[obj["Key"]] = obj["Size"]
    return keys


def test_retrain_triggered_through_rest(topology: Topology) -> None:
    run_id = topology.api.trigger(RETRAIN)
    state = topology.api.wait_run(RETRAIN, run_id, timeout=RUN_TIMEOUT)
    assert state == "success", (topology.api.task_states(RETRAIN, run_id), topology.log_tail("worker"))

    # MLflow (REST): exactly one new version from this run, lineage tags, champion alias.
    versions = versions_of_run(topology, run_id)
    assert len(versions) == 1, versions
    version = versions[0]
    tags = version["run_tags"]
    assert tags["mlops.dag_id"] == RETRAIN
    assert tags["mlops.task_id"] == "train_model"
    assert tags["mlops.trigger.cause"] == "manual"
    assert tags["mlops.training_data_uri"] == "s3://data/seattle_weather/train/*.csv"
    assert tags["mlops.training_data_fingerprint"]
    assert tags["mlops.validation_result"] == "passed"
    assert tags["mlops.config_hash"].startswith("sha256:")
    assert int(tags["mlops.training_data_rows"]) == topology.data["train_rows"]  # type: ignore[attr-defined]
    mv_tags = {t["key"]: t["value"] for t in version.get("tags", [])}
    assert mv_tags.get("mlops.training_run_id") == version["run_id"]
    assert champion_version(topology) == version["version"]

    # S3: the model and the holdout are in the bucket, under the run's artifact prefix.
    keys = s3_keys(topology, "artifacts/")
    run_keys = [k for k in keys if f"/{version['run_id']}/" in k or k.endswith(version["run_id"])]
    assert any(k.endswith("holdout/holdout.parquet") for k in run_keys), sorted(keys)[:20]
    logged_model_keys = [k for k in keys if "/models/" in k and k.endswith("MLmodel")]
    assert logged_model_keys, sorted(keys)[:20]

    # Airflow's PostgreSQL metadata: the run, its tasks, and training on the `training` queue.
    rows = topology.airflow_sql(
        "select state, run_type, triggered_by from dag_run where dag_id = %s and run_id = %s",
        (RETRAIN, run_id),
    )
    assert rows == [("success", "manual", rows[0][2])], rows
    queues = dict(
        topology.airflow_sql(
            "select task_id, queue from task_instance where dag_id = %s and run_id = %s", (RETRAIN, run_id)
        )
    )
    assert queues["train_model"] == "training"
    assert queues["register_model"] == "default"
    hostnames = topology.airflow_sql(
        "select distinct hostname from task_instance where dag_id = %s and run_id = %s", (RETRAIN, run_id)
    )
    assert all(h for (h,) in hostnames)


def test_drift_event_starts_retrain_and_deferred_sensor_resumes(topology: Topology) -> None:
    before = champion_version(topology)
    if before is None:  # this test alone: make the first champion
        first = topology.api.trigger(RETRAIN)
        assert topology.api.wait_run(RETRAIN, first, timeout=RUN_TIMEOUT) == "success"
        before = champion_version(topology)
    known = set(topology.api.run_ids(RETRAIN))
    sensor_run = topology.api.trigger(SENSOR_DAG, conf={"from_version": before})
    topology.api.wait_task(SENSOR_DAG, sensor_run, "wait_for_new_champion", {"deferred"}, timeout=RUN_TIMEOUT)

    drift_run = topology.api.trigger(DRIFT, logical_date=f"{SUMMER_BATCH_DATE}T00:00:00Z")
    assert topology.api.wait_run(DRIFT, drift_run, timeout=RUN_TIMEOUT) == "success", (
        topology.api.task_states(DRIFT, drift_run)
    )
    summary = topology.api.get(
        f"/api/v2/dags/{DRIFT}/dagRuns/{drift_run}/taskInstances/check_drift/xcomEntries/return_value"
    )["value"]
    assert summary["status"] == "drift", summary

    # The scheduler starts the retrain DAG from the Asset event (no client call).
    deadline = time.monotonic() + 240  # a bound: the scheduler reacts within seconds when idle
    while not (new := [r for r in topology.api.run_ids(RETRAIN) if r not in known]):
        assert time.monotonic() < deadline, "the drift Asset event did not start the retrain DAG"
        time.sleep(1)
    retrain_run = new[0]
    assert topology.api.wait_run(RETRAIN, retrain_run, timeout=RUN_TIMEOUT) == "success"
    rows = topology.airflow_sql(
        "select run_type from dag_run where dag_id = %s and run_id = %s", (RETRAIN, retrain_run)
    )
    assert rows[0][0] == "asset_triggered"
    trained = topology.api.get(
        f"/api/v2/dags/{RETRAIN}/dagRuns/{retrain_run}/taskInstances/train_model/xcomEntries/return_value"
    )["value"]
    assert trained["trigger"]["cause"] == "drift", trained["trigger"]
    assert trained["trigger"]["drift_events"][0]["source_dag_id"] == DRIFT, trained["trigger"]

    # The deferred sensor resumes through the triggerer once the alias moved.
    assert topology.api.wait_run(SENSOR_DAG, sensor_run, timeout=RUN_TIMEOUT) == "success"
    after = champion_version(topology)
    assert after != before
    triggers = topology.airflow_sql(
        "select count(*) from task_instance_history where dag_id = %s and run_id = %s",
        (SENSOR_DAG, sensor_run),
    )
    sensor_ti = topology.airflow_sql(
        "select next_method, trigger_id from task_instance where dag_id = %s and run_id = %s",
        (SENSOR_DAG, sensor_run),
    )
    assert sensor_ti, triggers
    assert "Trigger" in topology.log_tail("triggerer", 20000) or "trigger" in topology.log_tail(
        "triggerer", 20000
    )


def test_manual_approval_through_rest(topology: Topology) -> None:
    run_id = topology.api.trigger(RETRAIN, conf={"approval": "manual"})
    topology.api.wait_task(
        RETRAIN, run_id, "promote_model", {"awaiting_input", "deferred"}, timeout=RUN_TIMEOUT
    )
    path = f"/api/v2/dags/{RETRAIN}/dagRuns/{run_id}/taskInstances/promote_model/-1/hitlDetails"
    pending = topology.api.get(path)
    assert pending["response_received"] is False, pending
    assert "Approve" in pending["options"]
    answer = topology.reviewer.patch(path, {"chosen_options": ["Approve"]})
    assert answer["chosen_options"] == ["Approve"]
    assert topology.api.wait_run(RETRAIN, run_id, timeout=RUN_TIMEOUT) == "success", topology.api.task_states(
        RETRAIN, run_id
    )
    done = topology.api.get(path)
    assert done["response_received"] is True
    assert (done.get("responded_by_user") or {}).get("name") == "reviewer", done
    summary = topology.api.get(
        f"/api/v2/dags/{RETRAIN}/dagRuns/{run_id}/taskInstances/promote_model/xcomEntries/return_value"
    )["value"]
    assert summary["decision"] == "promoted"
    assert summary["decided_by"] == "human:reviewer"
    versions = versions_of_run(topology, run_id)
    assert len(versions) == 1
    assert champion_version(topology) == versions[0]["version"]


def test_no_secret_reaches_a_task_log_an_xcom_or_mlflow(topology: Topology) -> None:
    """After the runs above: the MLflow password and the S3 secret key appear nowhere users can read."""
    secrets = (MLFLOW_SENTINEL, S3_SECRET)
    logs = [p for p in (Path(topology.env["AIRFLOW_HOME"]) / "logs").rglob("*") if p.is_file()]
    assert any("train_model" in str(p) for p in logs), "no task log was written"
    for path in logs:
        text = path.read_text(errors="replace")
        assert not [s for s in secrets if s in text], path
    values = topology.airflow_sql("select value::text from xcom")
    assert values, "no XCom was written"
    assert not [v for (v,) in values if v and any(s in v for s in secrets)]
    runs = topology.mlflow(
        "POST", "runs/search", {"experiment_ids": experiment_ids(topology), "max_results": 500}
    )
    dumped = json.dumps(runs)
    assert runs.get("runs"), runs
    assert not [s for s in secrets if s in dumped]
    versions = json.dumps(topology.mlflow("GET", "model-versions/search", {"filter": f"name='{MODEL}'"}))
    assert not [s for s in secrets if s in versions]


def experiment_ids(topology: Topology) -> list[str]:
    found = topology.mlflow("POST", "experiments/search", {"max_results": 100})
    return [e["experiment_id"] for e in found.get("experiments", [])]
