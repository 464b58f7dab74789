"""Extra links to the MLflow UI. Operators persist the URL at execute time; links only read XCom."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from mlops_provider.hooks.mlflow import MLflowSettings


class _XComUrlLink(BaseOperatorLink):
    """A link whose URL the operator pushed to XCom under ``key``."""

    name: ClassVar[str]
    key: ClassVar[str]

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        try:
            value = XCom.get_value(key=self.key, ti_key=ti_key)
        except Exception:  # a link must never break the UI
            return ""
        return value if isinstance(value, str) else ""

    @classmethod
    def persist(cls, context: Context, url: str | None) -> None:
        if url:
            context["ti"].xcom_push(key=cls.key, value=url)


class MLflowRunLink(_XComUrlLink):
    """The MLflow run a task logged to."""

    name = "MLflow run"
    key = "mlflow_run_url"

    @staticmethod
    def url(settings: MLflowSettings, experiment_id: str, run_id: str) -> str | None:
        base = settings.ui_base_url()
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else None


class MLflowModelVersionLink(_XComUrlLink):
    """The registered model version a task created, promoted or used."""

    name = "MLflow model version"
    key = "mlflow_model_version_url"

    @staticmethod
    def url(settings: MLflowSettings, model_name: str, version: str | int) -> str | None:
        base = settings.ui_base_url()
        return f"{base}/#/models/{model_name}/versions/{version}" if base else None
