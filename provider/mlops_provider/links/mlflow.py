"""Extra links to the MLflow UI. Operators persist the URL (built by the MLflow hook) at execute time;
links only read XCom."""

from __future__ import annotations

from mlops_provider.links.base import XComUrlLink


class MLflowRunLink(XComUrlLink):
    """The MLflow run a task logged to."""

    name = "MLflow run"
    key = "mlflow_run_url"


class MLflowModelVersionLink(XComUrlLink):
    """The registered model version a task created, promoted or used."""

    name = "MLflow model version"
    key = "mlflow_model_version_url"
