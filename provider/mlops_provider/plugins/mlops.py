"""The Airflow plugin of the provider (registered through the ``airflow.plugins`` entry point)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_provider.links.mlflow import MLflowModelVersionLink, MLflowRunLink
from mlops_provider.links.reports import DriftReportLink, ValidationReportLink
from mlops_provider.plugins.reports import URL_PREFIX
from mlops_provider.plugins.reports import app as reports_app


class MLOpsPlugin(AirflowPlugin):
    """
    Registers the operator extra links so the UI can render them for serialized DAGs, and the
    FastAPI app serving validation/drift reports at ``/mlops/reports/...`` (authenticated).
    """

    name = "mlops"
    operator_extra_links = [
        MLflowRunLink(),
        MLflowModelVersionLink(),
        ValidationReportLink(),
        DriftReportLink(),
    ]
    fastapi_apps = [{"app": reports_app, "url_prefix": URL_PREFIX, "name": "MLOps reports"}]
