"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from mlops_provider import __version__

_INTEGRATION = "MLOps (MLflow, Great Expectations, Evidently, scikit-learn)"


def _modules(*names: str) -> list[dict[str, object]]:
    return [{"integration-name": _INTEGRATION, "python-modules": list(names)}]


MLFLOW_CONNECTION_TYPE: dict[str, object] = {
    "connection-type": "mlflow",
    "hook-class-name": "mlops_provider.hooks.mlflow.MLflowHook",
    "hook-name": "MLflow",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {
            "host": "Tracking URI",
            "login": "Username (basic auth)",
            "password": "Password (basic auth)",
        },
        "placeholders": {
            "host": "http://mlflow:5000  (or sqlite:///path/mlflow.db)",
            "login": "optional",
            "password": "optional",
        },
    },
    "conn-fields": {
        "registry_uri": {
            "label": "Registry URI",
            "description": "Model registry URI; defaults to the tracking URI.",
            "schema": {"type": ["string", "null"]},
        },
        "token": {
            "label": "Token",
            "description": "Bearer token (instead of username/password).",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "ui_url": {
            "label": "MLflow UI URL",
            "description": "Base URL for the task links; defaults to an http(s) tracking URI.",
            "schema": {"type": ["string", "null"]},
        },
        "s3_endpoint_url": {
            "label": "S3 endpoint URL",
            "description": "For artifacts written by the client to S3-compatible storage.",
            "schema": {"type": ["string", "null"]},
        },
        "aws_access_key_id": {
            "label": "S3 access key id",
            "schema": {"type": ["string", "null"]},
        },
        "aws_secret_access_key": {
            "label": "S3 secret access key",
            "schema": {"type": ["string", "null"], "format": "password"},
        },
        "timeout": {
            "label": "HTTP timeout (s)",
            "description": "Per request; with retries an unreachable server fails within 60 s.",
            "schema": {"type": ["integer", "null"], "default": 15},
        },
        "max_retries": {
            "label": "HTTP retries",
            "schema": {"type": ["integer", "null"], "default": 2},
        },
    },
}


def get_provider_info() -> dict[str, object]:
    return {
        "package-name": "airflow-provider-mlops",
        "name": "MLOps",
        "description": "Validate, train, gate, promote, score and watch ML models: Great Expectations, "
        "scikit-learn, MLflow and Evidently in one retraining loop.",
        "versions": [__version__],
        "integrations": [{"integration-name": _INTEGRATION, "tags": ["software"]}],
        "hooks": _modules(
            "mlops_provider.hooks.mlflow",
            "mlops_provider.hooks.models",
            "mlops_provider.hooks.registry",
            "mlops_provider.hooks.model_card",
            "mlops_provider.hooks.data",
            "mlops_provider.hooks.drift",
            "mlops_provider.hooks.evidently",
            "mlops_provider.hooks.performance",
            "mlops_provider.hooks.feedback",
            "mlops_provider.hooks.scoring",
        ),
        "operators": _modules(
            "mlops_provider.operators.validation",
            "mlops_provider.operators.drift",
            "mlops_provider.operators.training",
            "mlops_provider.operators.evaluation",
            "mlops_provider.operators.registry",
            "mlops_provider.operators.scoring",
            "mlops_provider.operators.scoring_map",
            "mlops_provider.operators.performance",
        ),
        "sensors": _modules("mlops_provider.sensors.drift", "mlops_provider.sensors.registry"),
        "triggers": _modules("mlops_provider.triggers.drift", "mlops_provider.triggers.registry"),
        "extra-links": [
            "mlops_provider.links.mlflow.MLflowRunLink",
            "mlops_provider.links.mlflow.MLflowModelVersionLink",
            "mlops_provider.links.reports.ValidationReportLink",
            "mlops_provider.links.reports.DriftReportLink",
            "mlops_provider.links.model_card.ModelCardLink",
        ],
        "plugins": [{"name": "mlops", "plugin-class": "mlops_provider.plugins.mlops.MLOpsPlugin"}],
        "connection-types": [MLFLOW_CONNECTION_TYPE],
    }
