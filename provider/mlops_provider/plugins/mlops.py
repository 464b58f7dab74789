"""The Airflow plugin of the provider (registered through the ``airflow.plugins`` entry point)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_provider.links.mlflow import MLflowModelVersionLink, MLflowRunLink


class MLOpsPlugin(AirflowPlugin):
    """Registers the operator extra links so the UI can render them for serialized DAGs."""

    name = "mlops"
    operator_extra_links = [MLflowRunLink(), MLflowModelVersionLink()]
