"""The Airflow Assets the provider emits; cheap to import (used at DAG parse time)."""

from __future__ import annotations

from airflow.sdk import Asset


def drift_asset(model_name: str) -> Asset:
    """The Asset a drift check of ``model_name`` emits an event on when drift is confirmed."""
    return Asset(name=f"{model_name}_drift", uri=f"mlops://drift/{model_name}", group="mlops")
