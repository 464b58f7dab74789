"""Mapped batch scoring in the production topology: two Celery workers on the ``scoring`` queue share one
run's mapped tasks, and the publishing task writes one output to S3."""

from __future__ import annotations

import io
import json
import re

import pytest

from tests.e2e.conftest import SUMMER_BATCH_DATE, Topology

pytestmark = pytest.mark.slow

MAPPED = "weather_mapped"
RUN_TIMEOUT = 480  # a bound, not a wait: every wait polls for a state
FILES = 4


def upload_batch(topology: Topology) -> int:
    """The summer batch as four Parquet files in the day's folder; its row count."""
    import pandas as pd

    s3 = topology.s3()
    body = s3.get_object(Bucket="data", Key=f"seattle_weather/batches/{SUMMER_BATCH_DATE}.csv")["Body"].read()
    frame = pd.read_csv(io.BytesIO(body))
    size = -(-len(frame) // FILES)
    for i in range(FILES):
        buffer = io.BytesIO()
        frame.iloc[i * size : (i + 1) * size].to_parquet(buffer, index=False)
        key = f"{MAPPED}/batches/{SUMMER_BATCH_DATE}/part-{i}.parquet"
        s3.put_object(Bucket="data", Key=key, Body=buffer.getvalue())
    return len(frame)


def map_indexes_run_by(topology: Topology, worker: str, run_id: str) -> set[int]:
    """The map indexes of ``score_batch`` that ``worker`` executed in ``run_id`` (from its log)."""
    found = set()
    for line in topology.log_tail(worker, chars=2_000_000).splitlines():
        if "Executing workload" in line and "task_id='score_batch'" in line and run_id in line:
            match = re.search(r"map_index=(\d+)", line)
            if match:
                found.add(int(match.group(1)))
    return found


def test_two_workers_share_the_mapped_scoring_and_one_output_is_published(topology: Topology) -> None:
    for name in ("scorer-1", "scorer-2"):
        topology.start_airflow(
            name, "celery", "worker", "--queues", "scoring", "--concurrency", "1", "--skip-serve-logs"
        )
    rows = upload_batch(topology)
    retrain = topology.api.trigger(f"{MAPPED}_retrain")
    state = topology.api.wait_run(f"{MAPPED}_retrain", retrain, timeout=RUN_TIMEOUT)
    assert state == "success", topology.api.task_states(f"{MAPPED}_retrain", retrain)

    dag_id = f"{MAPPED}_batch_score"
    run_id = topology.api.trigger(dag_id, logical_date=f"{SUMMER_BATCH_DATE}T00:00:00Z")
    state = topology.api.wait_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    instances = topology.api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    assert state == "success", [(t["task_id"], t["map_index"], t["state"]) for t in instances]
    mapped = sorted(t["map_index"] for t in instances if t["task_id"] == "score_batch")
    assert mapped == list(range(FILES))
    assert {t["queue"] for t in instances if t["task_id"] == "score_batch"} == {"scoring"}

    by_worker = {name: map_indexes_run_by(topology, name, run_id) for name in ("scorer-1", "scorer-2")}
    assert all(by_worker.values()), by_worker  # both workers took mapped tasks
    assert set().union(*by_worker.values()) == set(range(FILES))

    s3 = topology.s3()
    prefix = f"predictions/{MAPPED}/{run_id}"
    listed = json.loads(s3.get_object(Bucket="data", Key=f"{prefix}/_manifest.json")["Body"].read())
    assert listed["rows"] == rows
    assert len(listed["versions"]) == 1
    import pandas as pd

    parts = [
        pd.read_parquet(io.BytesIO(s3.get_object(Bucket="data", Key=f"{prefix}/{name}")["Body"].read()))
        for name in listed["files"]
    ]
    scored = pd.concat(parts, ignore_index=True)
    assert list(scored["row"]) == list(range(rows))
    assert set(scored["model_version"]) == set(listed["versions"].values())
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="data", Prefix=f"{prefix}/").get("Contents", [])}
    assert {k for k in keys if "/part-" in k} == {f"{prefix}/{name}" for name in listed["files"]}
