"""A bad model config never hides the good ones: it becomes a placeholder DAG tagged ``invalid-config``
whose description names the file, key and problem, and whose only task fails with them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.templates.loader import ConfigProblem, LoadedConfig

INVALID_TAG = "invalid-config"


class InvalidModelConfigError(ValueError):
    """Raised by ``build_dags(strict=True)``: lists every problem as ``file: key: problem``."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("invalid model config(s):\n" + "\n".join(f"  {p}" for p in problems))


class ReportConfigErrorOperator(BaseOperator):
    """The only task of a placeholder DAG: fails with the config problem (a retry cannot fix it)."""

    template_fields = ()
    ui_color = "#f8d7da"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        raise AirflowFailException(self.message)


def placeholder_dag_id(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name)
    return f"invalid_config__{stem}"


def placeholder_dag(item: LoadedConfig) -> DAG:
    problems = "; ".join(f"{p.key}: {p.message}" for p in item.problems)
    message = f"Invalid model config {item.path}: {problems}"
    with DAG(
        dag_id=placeholder_dag_id(item.path),
        description=message[:1000],
        schedule=None,
        catchup=False,
        tags=[INVALID_TAG, "mlops"],
        doc_md="## Invalid model config\n\nFix the file and the model's DAGs appear.\n\n"
        + "\n".join(f"- `{p}`" for p in item.problems),
    ) as dag:
        ReportConfigErrorOperator(task_id="report_config_error", message=message, retries=0)
    return dag
