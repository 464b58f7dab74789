"""The e2e DAGs folder's Airflow DAG file: the model configs beside it, as in production, plus a DAG
with a deferrable ModelAliasSensor (resumed by the triggerer)."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG

from mlops_provider.sensors.registry import ModelAliasSensor
from mlops_provider.templates import build_dags

for _dag in build_dags(Path(__file__).parent / "configs"):
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
        timeout=600,
    )
