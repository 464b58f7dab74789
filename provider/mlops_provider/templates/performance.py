"""``<name>_performance_monitor``: late labels joined to the scored batches; live metrics; acting on them.

Generated when the config has a ``feedback`` section. One task,
:class:`~mlops_provider.operators.performance.PerformanceMonitorOperator`, on ``feedback.schedule``: it
records every check in MLflow (the Models page's live-performance chart), emits the model's
performance Asset event when the champion degraded (the retrain DAG is scheduled on it), and, as the
config allows, rolls the champion back or decides a shadow challenger.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG

from mlops_provider.core.data_scope import template_folder
from mlops_provider.templates import dag_args
from mlops_provider.templates.schema import ModelConfig

SUFFIX = "_performance_monitor"


def performance_doc(config: ModelConfig, path: str) -> str:
    feedback = config.feedback
    assert feedback is not None
    rollback = (
        "rolls the champion back when the previous champion, scored in shadow on the same labelled rows, "
        "beats it by the `vs_champion` rules"
        if feedback.rollback == "auto"
        else "never rolls back by itself (`rollback: off`)"
    )
    shadow = (
        f"; a challenger that passed the gate waits as `@challenger` until {config.promotion.shadow_min_labels} "
        "labelled live rows decide"
        if config.promotion.mode == "shadow"
        else ""
    )
    return (
        f"## Live performance of `{config.model.name}`\n\nJoins the labels in `{feedback.labels}` to the "
        f"predictions scored in the last {feedback.window_days} day(s) (by the scoring run's logical date), "
        f"computes the live metrics per version and alias, and marks the champion `degraded` when a metric "
        f"drops past `degrade` below its own holdout value (at least {feedback.min_labels} labelled rows, "
        f"else `insufficient_labels`, never an alarm). A degraded champion emits the performance event the "
        f"retrain DAG runs on. It {rollback}{shadow}.\n\nGenerated from `{path}` by "
        "`mlops_provider.templates.build_dags`."
    )


def _metrics(config: ModelConfig) -> list[str]:
    feedback = config.feedback
    assert feedback is not None
    evaluation = config.evaluation
    return list(dict.fromkeys([evaluation.primary_metric, *feedback.degrade, *evaluation.vs_champion]))


def performance_dag(
    config: ModelConfig, path: str, base_dir: str, resolve: Any, output: str, args: dict[str, Any]
) -> DAG | None:
    """The model's performance monitor (``resolve``: a config path to a URI; ``output``: the scoring
    output URI template; ``args``: shared DAG args)."""
    from mlops_provider.operators.performance import PerformanceMonitorOperator

    feedback = config.feedback
    if feedback is None:
        return None
    name = config.model.name
    with DAG(
        dag_id=f"{name}{SUFFIX}",
        description=f"Join {name}'s late labels to its predictions: live metrics, degradation, rollback",
        schedule=dag_args.schedule(feedback.schedule),
        catchup=False,
        max_active_runs=1,
        doc_md=performance_doc(config, path),
        **args,
    ) as dag:
        PerformanceMonitorOperator(
            task_id="check_performance",
            model_name=name,
            labels_uri=resolve(feedback.labels),
            id_column=str(config.scoring.id_column),
            label_column=feedback.label_column or config.data.target,
            task_type=config.model.task,
            primary_metric=config.evaluation.primary_metric,
            metrics=_metrics(config),
            **dag_args.metric_args(config),
            degrade={m: {"max_drop": d.max_drop} for m, d in feedback.degrade.items()},
            vs_champion={m: d.model_dump() for m, d in config.evaluation.vs_champion.items()},
            window_days=feedback.window_days,
            min_labels=feedback.min_labels,
            rollback=feedback.rollback,
            mode=config.promotion.mode,
            shadow_min_labels=config.promotion.shadow_min_labels,
            alias=config.promotion.alias,
            predictions_prefix=template_folder(output),
            base_dir=base_dir,
            data_conn_id=config.data.conn_id,
            mlflow_conn_id=config.mlflow_conn_id,
        )
    return dag
