"""The Airflow plugin of the provider (registered through the ``airflow.plugins`` entry point)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_provider.links.mlflow import MLflowModelVersionLink, MLflowRunLink
from mlops_provider.links.reports import DriftReportLink, ValidationReportLink
from mlops_provider.plugins.app import URL_PREFIX, app


class MLOpsPlugin(AirflowPlugin):
    """
    Registers the operator extra links so the UI can render them for serialized DAGs, and the
    FastAPI app at ``/mlops``: validation/drift reports, the Models API and page (authenticated).
    """

    name = "mlops"
    operator_extra_links = [
        MLflowRunLink(),
        MLflowModelVersionLink(),
        ValidationReportLink(),
        DriftReportLink(),
    ]
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "MLOps"}]
