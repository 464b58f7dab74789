"""Celery config for warm workers: Airflow's default plus ``mlops_provider.preload`` in ``imports``.

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=mlops_provider.celery_config.CELERY_CONFIG

Only a Celery worker imports ``imports`` (before it forks its pool processes); the scheduler, which
reads this config to publish tasks, stays light.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": [*DEFAULT_CELERY_CONFIG.get("imports", ()), "mlops_provider.preload"],
}
