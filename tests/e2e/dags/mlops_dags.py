"""The e2e DAGs folder's DAG file: the model configs beside it, as in production, with test tweaks.

Tweaks (what a deployment may do in its own DAG file too): heavy training goes to the Celery
``training`` queue, and retries wait 2 s instead of 30 s exponential so the fault tests stay short.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG

from mlops_provider.sensors.registry import ModelAliasSensor
from mlops_provider.templates import build_dags

for _dag in build_dags(Path(__file__).parent / "configs"):
    for _task in _dag.tasks:
        if _task.retries:
            _task.retry_delay = timedelta(seconds=2)
            _task.retry_exponential_backoff = False
        if _task.task_id == "train_model":
            _task.queue = "training"
    globals()[_dag.dag_id] = _dag

with DAG(
    dag_id="e2e_wait_for_new_champion",
    schedule=None,
    catchup=False,
    params={"from_version": None},
) as wait_for_new_champion:
    ModelAliasSensor(
        task_id="wait_for_new_champion",
        model_name="seattle_weather",
        alias="champion",
        from_version="{{ params.from_version }}",
        deferrable=True,
        poke_interval=2,
        timeout=240,
    )
