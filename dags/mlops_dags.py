"""Airflow DAG file: every model config in dags/configs/ becomes its retrain, drift-monitor and batch-score DAGs.

A bad config shows as a DAG tagged ``invalid-config`` naming the file, key and problem; the good
ones still load. Check configs before committing: ``python -m mlops_provider.templates validate dags/configs``.
"""

from __future__ import annotations

from pathlib import Path

from mlops_provider.templates import build_dags

for _dag in build_dags(Path(__file__).parent / "configs"):
    globals()[_dag.dag_id] = _dag
