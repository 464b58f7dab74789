"""Warm task processes: import the libraries the operators use once, in a long-lived parent.

Every Airflow 3 task runs in a process forked from its executor's worker, and each one imports
pandas, scikit-learn, MLflow (and its SQL store), skops and Great Expectations again: 0.7-2 s per
task here, 6-8 s per retrain DAG run. Imported once in the parent, they are inherited by every forked
task (copy-on-write), as Airflow already does for its own modules. The imported objects are then
frozen (``gc.freeze``) so that no forked task spends 0.3 s walking them in a full garbage collection.

LocalExecutor (the scheduler forks its workers from a forkserver that imports this module)::

    AIRFLOW__SCHEDULER__MP_START_METHOD=forkserver
    AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD=mlops_provider.preload

CeleryExecutor: ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=mlops_provider.celery_config.CELERY_CONFIG``
(Airflow's default Celery config plus this module in ``imports``: the worker imports it before it
forks its pool).

Cost: ~8 s once when the parent starts and ~470 MB resident in it, shared by its children. Never
import this module from a DAG file: it is exactly what DAG parsing must not load. Set
``MLOPS_PRELOAD`` to a comma-separated list of modules to replace the default list.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import time

import mlops_provider  # noqa: F401  (OMP_NUM_THREADS default before OpenMP loads)

log = logging.getLogger(__name__)

DEFAULT_MODULES = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "scipy.stats",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.inspection",
    "sklearn.model_selection",
    "skops.io",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.models",
    "mlflow.pyfunc",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "boto3",
    "great_expectations",
    "evidently",
    "evidently.presets",
    # Airflow's own task start-up (a worker forked from the scheduler inherits these; 0.2 s per task)
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.serialization.serialized_objects",
    "mlops_provider.core.training",
    "mlops_provider.core.metrics",
    "mlops_provider.core.validation",
    "mlops_provider.core.drift",
    "mlops_provider.core.gate",
    "mlops_provider.hooks.registry",
    "mlops_provider.hooks.gate",
    "mlops_provider.hooks.data",
    "mlops_provider.hooks.drift",
    "mlops_provider.hooks.evidently",
    # what a task process's DAG file parse imports (the templates' pydantic schema, the operators)
    "mlops_provider.templates.builder",
    "mlops_provider.operators.validation",
    "mlops_provider.operators.training",
    "mlops_provider.operators.evaluation",
    "mlops_provider.operators.registry",
    "mlops_provider.operators.drift",
    "mlops_provider.operators.scoring",
    "mlops_provider.sensors.drift",
    "mlops_provider.sensors.registry",
)


def modules() -> list[str]:
    configured = os.environ.get("MLOPS_PRELOAD")
    if configured is not None:
        return [name.strip() for name in configured.split(",") if name.strip()]
    return list(DEFAULT_MODULES)


def preload(names: list[str] | None = None) -> dict[str, float]:
    """Import ``names`` (default: :func:`modules`); a missing one is logged and skipped. Seconds per module."""
    seconds: dict[str, float] = {}
    for name in modules() if names is None else names:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as err:  # an optional library missing must not stop the scheduler
            log.warning("mlops_provider.preload: cannot import %s (%s); tasks will import it", name, err)
            continue
        seconds[name] = time.perf_counter() - started
    return seconds


def warm_airflow() -> None:
    """
    Load Airflow's plugins and listener manager here too: a LocalExecutor worker forked from the
    scheduler inherits them; one forked from this forkserver would load them in every task.
    """
    try:
        from airflow.sdk.listener import get_listener_manager

        get_listener_manager()
    except Exception as err:
        log.warning("mlops_provider.preload: Airflow's listener manager did not load (%s)", err)


preload()
warm_airflow()
gc.freeze()
