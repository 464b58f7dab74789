"""The Airflow Assets the provider emits; cheap to import (used at DAG parse time)."""

from __future__ import annotations

from airflow.sdk import Asset


def drift_asset(model_name: str) -> Asset:
    """
    The Asset a drift check of ``model_name`` emits an event on when drift is confirmed.

    The ``x-`` scheme marks a custom URI: Airflow then skips provider URI normalizers, whose discovery
    would import boto3 (through the amazon provider) at DAG parse time.
    """
    return Asset(name=f"{model_name}_drift", uri=f"x-mlops://drift/{model_name}", group="mlops")


def performance_asset(model_name: str) -> Asset:
    """The Asset the performance monitor of ``model_name`` emits an event on when the champion's live
    metric has dropped past the configured limit (labels, not only inputs, say it is wrong)."""
    return Asset(name=f"{model_name}_performance", uri=f"x-mlops://performance/{model_name}", group="mlops")
