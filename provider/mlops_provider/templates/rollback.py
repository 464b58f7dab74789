"""``<name>_rollback``: a person moves the champion back, through Airflow (authorized and audited).

Triggered only by hand (no schedule). The trigger form asks for the version to restore (empty: the
version holding ``@previous_champion``) and a reason, both recorded in the alias history with who
triggered the run. :class:`~mlops_provider.operators.registry.RollbackModelOperator` does the move once
per task instance: a retry or a clear-and-rerun never flips the alias back and forth.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param

from mlops_provider.templates.schema import ModelConfig

VERSION_PATTERN = r"^[1-9][0-9]{0,9}$"
TO_VERSION_HELP = (
    "The model version to restore (a number). Leave empty for the version that holds "
    "@previous_champion (the champion before the last promotion)."
)
REASON_HELP = "Why the champion is rolled back: recorded on the version and in the alias history."


def rollback_params() -> dict[str, Param]:
    """The trigger form; a reason is required (no default), a version must be a plain number."""
    return {
        "to_version": Param(
            None,
            type=["null", "string"],
            pattern=VERSION_PATTERN,
            title="Version to restore",
            description=TO_VERSION_HELP,
        ),
        "reason": Param(
            type="string",
            minLength=3,
            maxLength=500,
            title="Reason",
            description=REASON_HELP,
        ),
    }


def rollback_doc(config: ModelConfig, path: str) -> str:
    return (
        f"## Roll back `{config.model.name}`\n\nMoves `@{config.promotion.alias}` back to the version that "
        "holds `@previous_champion` (or the version given in the trigger form), after checking it exists "
        "and its model files are intact. Who triggered it and why are recorded in the alias history and "
        f"on the version.\n\nGenerated from `{path}` by `mlops_provider.templates.build_dags`."
    )


def rollback_dag(config: ModelConfig, path: str, dag_args: dict[str, Any]) -> DAG:
    """The model's rollback DAG (``dag_args``: the arguments every generated DAG shares)."""
    from mlops_provider.operators.registry import RollbackModelOperator

    name = config.model.name
    with DAG(
        dag_id=f"{name}_rollback",
        description=f"Roll {name}'s @{config.promotion.alias} back to an earlier version (by hand)",
        schedule=None,
        max_active_runs=1,
        doc_md=rollback_doc(config, path),
        **dag_args,
    ) as dag:
        RollbackModelOperator(  # rendered as text: a reason like "123" stays a string
            task_id="rollback",
            model_name=name,
            to_version="{{ params.to_version or '' }}",  # empty: @previous_champion
            alias=config.promotion.alias,
            reason="{{ params.reason }}",
            mlflow_conn_id=config.mlflow_conn_id,
        )
    dag.params = rollback_params()  # type: ignore[assignment]  # after the task: see builder.retrain
    return dag
