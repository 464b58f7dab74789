"""Faults the production topology survives: MLflow restarted, a worker killed, S3 gone for a moment."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.e2e.conftest import MODEL, RETRAIN, Topology
from tests.e2e.test_topology import champion_version, running_mlflow_runs, versions_of_run

pytestmark = pytest.mark.slow


def runs_of_dag_run(topology: Topology, dag_run_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """MLflow runs (REST) logged by ``train_model`` in this DAG run, optionally with one status."""
    experiment = topology.mlflow("GET", "experiments/get-by-name", {"experiment_name": MODEL})["experiment"]
    query = f"tags.`mlops.dag_run_id` = '{dag_run_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    found = topology.mlflow(
        "POST",
        "runs/search",
        {"experiment_ids": [experiment["experiment_id"]], "filter": query, "max_results": 50},
    )
    return found.get("runs", [])


def wait_for_running_mlflow_run(topology: Topology, dag_run_id: str, timeout: float = 180) -> str:
    """The moment ``train_model`` has an MLflow run open (logging the model): return its id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = runs_of_dag_run(topology, dag_run_id, "RUNNING")
        except Exception:  # the experiment does not exist yet
            running = []
        if running:
            return running[0]["info"]["run_id"]
        time.sleep(0.05)
    raise TimeoutError(f"train_model of {dag_run_id} opened no MLflow run within {timeout}s")


def try_numbers(topology: Topology, dag_run_id: str) -> dict[str, int]:
    rows = topology.airflow_sql(
        "select task_id, try_number from task_instance where dag_id = %s and run_id = %s",
        (RETRAIN, dag_run_id),
    )
    return dict(rows)


def metrics_of(run: dict[str, Any]) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", []) if m["key"].startswith("train_")}


def test_mlflow_server_restarted_mid_run(topology: Topology) -> None:
    run_id = topology.api.trigger(RETRAIN)
    topology.api.wait_task(RETRAIN, run_id, "train_model", {"running"}, timeout=180)
    topology.stop("mlflow", signal.SIGTERM)
    time.sleep(2)
    topology.start_mlflow()  # same port, same PostgreSQL store; ~15-25 s until healthy

    state = topology.api.wait_run(RETRAIN, run_id, timeout=240)
    assert state == "success", (topology.api.task_states(RETRAIN, run_id), try_numbers(topology, run_id))
    assert sum(try_numbers(topology, run_id).values()) > len(try_numbers(topology, run_id)), (
        "no task was retried: the restart did not hit the run"
    )
    versions = versions_of_run(topology, run_id)
    assert len(versions) == 1, versions
    assert champion_version(topology) == versions[0]["version"]
    assert not runs_of_dag_run(topology, run_id, "RUNNING")


def test_worker_killed_during_training(topology: Topology) -> None:
    run_id = topology.api.trigger(RETRAIN)
    killed_run = wait_for_running_mlflow_run(topology, run_id)
    topology.stop("worker", signal.SIGKILL)  # the worker and its task processes, abruptly
    topology.start_worker()
    # The scheduler notices the missing heartbeat (20 s here), fails the try, and retries it.
    state = topology.api.wait_run(RETRAIN, run_id, timeout=240)
    assert state == "success", (topology.api.task_states(RETRAIN, run_id), topology.log_tail("scheduler"))
    assert try_numbers(topology, run_id)["train_model"] >= 2

    runs = {r["info"]["run_id"]: r for r in runs_of_dag_run(topology, run_id)}
    assert runs[killed_run]["info"]["status"] == "KILLED", "the killed try's MLflow run was left open"
    assert not running_mlflow_runs(topology)
    versions = versions_of_run(topology, run_id)
    assert len(versions) == 1, versions
    final = runs[versions[0]["run_id"]]
    assert final["info"]["run_id"] != killed_run
    # Same data, same seed: the retry trained the very same model.
    killed_tags = {t["key"]: t["value"] for t in runs[killed_run]["data"]["tags"]}
    final_tags = {t["key"]: t["value"] for t in final["data"]["tags"]}
    assert final_tags["mlops.training_data_fingerprint"] == killed_tags["mlops.training_data_fingerprint"]
    assert metrics_of(final) == metrics_of(runs[killed_run])
    assert metrics_of(final)


def test_s3_unavailable_for_a_moment(topology: Topology) -> None:
    run_id = topology.api.trigger(RETRAIN)
    interrupted = wait_for_running_mlflow_run(topology, run_id)  # artifacts are being uploaded
    topology.stop("s3", signal.SIGKILL)
    time.sleep(4)
    topology.start_s3()

    state = topology.api.wait_run(RETRAIN, run_id, timeout=240)
    assert state == "success", (topology.api.task_states(RETRAIN, run_id), try_numbers(topology, run_id))
    versions = versions_of_run(topology, run_id)
    assert len(versions) == 1, versions
    version = versions[0]
    runs = {r["info"]["run_id"]: r for r in runs_of_dag_run(topology, run_id)}
    if version["run_id"] != interrupted:  # the upload failed and the task retried
        assert runs[interrupted]["info"]["status"] == "KILLED"
    assert not running_mlflow_runs(topology)

    # No partial artifact is visible: the registered model is complete and loads, no upload is pending.
    s3 = topology.s3()
    assert not s3.list_multipart_uploads(Bucket="mlflow").get("Uploads")
    listing = topology.mlflow("GET", "artifacts/list", {"run_id": version["run_id"], "path": "holdout"})
    assert [f["path"] for f in listing["files"]] == ["holdout/holdout.parquet"]
    import mlflow

    mlflow.set_tracking_uri(topology.mlflow_url)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version['version']}")
        import pandas as pd

        sample = pd.DataFrame({"precipitation": [0.0], "temp_max": [20.0], "temp_min": [10.0], "wind": [3.0]})
        assert len(model.predict(sample)) == 1
    finally:
        mlflow.set_tracking_uri(None)
