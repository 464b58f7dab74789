"""``<name>_batch_score``: validate the incoming batch, then score it with the served alias.

One task scores the whole batch, streaming it chunk by chunk (memory bounded by ``scoring.chunk_size``).
With ``scoring.partitions_per_task`` the work is mapped (Airflow dynamic task mapping): ``plan_scoring``
pins the versions and groups the batch's files, ``score_batch`` runs once per group on any worker
(``scoring.queue``), and ``publish_scores`` checks every group's part and publishes the output folder.
With validation the batch is validated the same way, one mapped task per group, combined into one
verdict (``validate_current``) before anything is scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, BaseOperator

from mlops_provider.templates import dag_args, docs
from mlops_provider.templates.jinja import macros, safe_template

if TYPE_CHECKING:
    from mlops_provider.templates.builder import _Builder


def batch_score_dag(builder: _Builder) -> DAG | None:
    c = builder.config
    if c.data.current is None:
        return None
    with DAG(
        dag_id=f"{builder.name}_batch_score",
        description=f"Score {builder.name}'s incoming batch with the {c.promotion.alias} model",
        schedule=dag_args.schedule(c.scoring.schedule),
        catchup=False,
        max_active_runs=1,
        **builder.shared_args("scoring"),
        doc_md=docs.score_doc(c, str(builder.item.path)),
        user_defined_macros=macros(),
    ) as dag:
        if c.scoring.partitions_per_task is None:
            _single_task(builder)
        else:
            _mapped(builder)
    return dag


def _score_args(builder: _Builder) -> dict[str, Any]:
    c = builder.config
    return {
        "model_name": builder.name,
        "data_uri": str(builder.path(c.data.current)),
        "output_uri": safe_template(builder.scoring_output),
        "alias": c.promotion.alias,
        "chunk_size": c.scoring.chunk_size,
        "base_dir": str(builder.item.base_dir),
        "data_conn_id": c.data.conn_id,
        "mlflow_conn_id": c.mlflow_conn_id,
        **builder.model_safety(),
        **({"queue": c.scoring.queue} if c.scoring.queue else {}),
        "doc_md": docs.SCORE,
    }


def _single_task(builder: _Builder) -> None:
    from mlops_provider.operators.scoring import BatchScoreOperator

    c = builder.config
    current = str(builder.path(c.data.current))
    validate = builder.validate_task("validate_current", current, labelled=False)
    score = BatchScoreOperator(
        task_id="score_batch",
        max_unseen_share=c.scoring.max_unseen_share,
        on_unseen=c.scoring.on_unseen,
        **_score_args(builder),
        **builder.feedback_scoring(),
    )
    if validate is not None:
        dag_args.depends(score, validate)


def _mapped(builder: _Builder) -> None:
    from mlops_provider.operators.scoring import BatchScoreOperator
    from mlops_provider.operators.scoring_map import PlanBatchScoringOperator, PublishBatchScoresOperator

    c = builder.config
    args = _score_args(builder)
    feedback = builder.feedback_scoring()
    plan = PlanBatchScoringOperator(
        task_id="plan_scoring",
        model_name=builder.name,
        data_uri=args["data_uri"],
        output_uri=args["output_uri"],
        alias=c.promotion.alias,
        shadow_aliases=feedback.get("shadow_aliases"),
        partitions_per_task=int(c.scoring.partitions_per_task or 1),
        base_dir=args["base_dir"],
        data_conn_id=c.data.conn_id,
        mlflow_conn_id=c.mlflow_conn_id,
        doc_md=docs.SCORE,
    )
    checked = _mapped_validation(builder, plan, args["output_uri"])
    score = BatchScoreOperator.partial(
        task_id="score_batch",
        id_columns=feedback.get("id_columns"),
        probabilities=feedback.get("probabilities", False),
        **args,
    ).expand(part=plan.output)
    publish = PublishBatchScoresOperator(
        task_id="publish_scores",
        model_name=builder.name,
        output_uri=args["output_uri"],
        alias=c.promotion.alias,
        max_unseen_share=c.scoring.max_unseen_share,
        on_unseen=c.scoring.on_unseen,
        record_batch=feedback.get("record_batch", False),
        base_dir=args["base_dir"],
        data_conn_id=c.data.conn_id,
        mlflow_conn_id=c.mlflow_conn_id,
        doc_md=docs.SCORE,
    )
    if checked is not None:
        score.set_upstream(checked)
    publish.set_upstream(score)


def _mapped_validation(builder: _Builder, plan: BaseOperator, output_uri: str) -> BaseOperator | None:
    """Mapped validation of each group, combined into one verdict; None without validation."""
    c = builder.config
    if c.validation is None:
        return None
    from mlops_provider.core.manifest import PARTS_DIR, PLAN
    from mlops_provider.operators.validation import CombineValidationOperator, ValidateDataOperator

    plan_uri = f"{output_uri}/{PARTS_DIR}/{PLAN}"
    common: dict[str, Any] = {
        "data_uri": str(builder.path(c.data.current)),
        "suite": builder.item.resolve(c.validation.suite),
        "on_failure": c.validation.on_failure,
        "base_dir": str(builder.item.base_dir),
        "data_conn_id": c.data.conn_id,
        "optional_columns": [c.data.target],
        "plan_uri": plan_uri,
    }
    partitions = ValidateDataOperator.partial(
        task_id="validate_partitions",
        doc_md=docs.VALIDATE,
        **common,
    ).expand(part=plan.output)
    combined = CombineValidationOperator(
        task_id="validate_current",
        validate_task_id="validate_partitions",
        doc_md=docs.VALIDATE,
        **common,
    )
    combined.set_upstream(partitions)
    return combined
