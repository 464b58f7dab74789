"""Where a task finds the config's custom metric functions, and the metric plan built from them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import airflow_errors

if TYPE_CHECKING:
    from mlops_provider.core.metric_plan import MetricPlan


def metric_roots(context: Any = None) -> tuple[str, ...]:
    """The folders custom metric modules may live in: the DAG file's folder and ``[core] dags_folder``."""
    from airflow.configuration import conf

    roots = []
    fileloc = getattr((context or {}).get("dag"), "fileloc", None)
    if fileloc:  # first: the run's own DAG bundle version, where there are several
        roots.append(str(Path(fileloc).parent))
    roots.append(conf.get("core", "dags_folder", fallback=""))
    return tuple(dict.fromkeys(r for r in roots if r and Path(r).is_dir()))


def metric_plan(task_type: str, custom_metrics: Any, cost_matrix: Any, context: Any = None) -> MetricPlan:
    """The metric plan of a task's arguments; bad values fail the task naming the key."""
    from mlops_provider.core.metric_plan import MetricPlan

    with airflow_errors():
        return MetricPlan.build(task_type, custom_metrics, cost_matrix, metric_roots(context))
