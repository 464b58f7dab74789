"""The Airflow plugin of the provider (registered through the ``airflow.plugins`` entry point)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlops_provider.links.mlflow import MLflowModelVersionLink, MLflowRunLink
from mlops_provider.links.reports import DriftReportLink, ValidationReportLink
from mlops_provider.plugins.app import URL_PREFIX, app


class MLOpsPlugin(AirflowPlugin):
    """
    Registers the operator extra links so the UI can render them for serialized DAGs, the FastAPI app
    at ``/mlops`` (validation/drift reports, the Models API and page; authenticated), and the "Models"
    entry of the UI's navigation.
    """

    name = "mlops"
    operator_extra_links = [
        MLflowRunLink(),
        MLflowModelVersionLink(),
        ValidationReportLink(),
        DriftReportLink(),
    ]
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "MLOps"}]
    # The UI frames ``href`` at /plugin/models (a page under it, e.g. /mlops/models/<name>, deep-links
    # as /plugin/models/mlops/models/<name>).
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/models",
            "destination": "nav",
            "url_route": "models",
            "nav_top_level": True,
            "icon": f"{URL_PREFIX}/static/models-icon.svg",
            "icon_dark_mode": f"{URL_PREFIX}/static/models-icon-dark.svg",
        }
    ]
