"""The DAG factory: every YAML in a folder becomes ``<name>_retrain``, ``<name>_drift_monitor``,
``<name>_batch_score``, ``<name>_rollback`` and, with ``feedback``, ``<name>_performance_monitor``; a
bad config becomes a placeholder DAG tagged ``invalid-config``.

Airflow re-parses the DAG file in every task process: there, only the DAG being run is built
(``get_parsing_context()``), so 100 configs cost one DAG's construction per task.
"""

from __future__ import annotations

import functools
import logging
import os
from itertools import pairwise
from typing import Any

from airflow.sdk import DAG, BaseOperator, get_parsing_context

from mlops_provider.core.lineage import config_hash
from mlops_provider.core.paths import mlops_home
from mlops_provider.templates import dag_args, docs
from mlops_provider.templates.heap import paused_gc
from mlops_provider.templates.jinja import (
    macros,
    safe_template,
    training_data_guard,
    training_data_uri,
    xcom_value,
)
from mlops_provider.templates.loader import LoadedConfig, load_configs
from mlops_provider.templates.notify import attach_notifications
from mlops_provider.templates.params import cached_schema_checks, retrain_params
from mlops_provider.templates.performance import SUFFIX as PERFORMANCE_SUFFIX
from mlops_provider.templates.performance import performance_dag
from mlops_provider.templates.placeholder import (
    INVALID_TAG,
    InvalidModelConfigError,
    placeholder_dag,
    placeholder_dag_id,
)
from mlops_provider.templates.rollback import rollback_dag
from mlops_provider.templates.schema import ModelConfig

__all__ = ["INVALID_TAG", "InvalidModelConfigError", "build_dags", "placeholder_dag_id", "safe_template"]

log = logging.getLogger(__name__)

DAG_SUFFIXES = ("_retrain", "_drift_monitor", "_batch_score", "_rollback", PERFORMANCE_SUFFIX)


class _Builder:
    def __init__(self, item: LoadedConfig) -> None:
        assert item.config is not None  # only valid configs get here
        self.item = item
        self.config: ModelConfig = item.config
        self.name = self.config.model.name
        self.hash = config_hash(self.config.model_dump(mode="json"))

    def path(self, value: str | None) -> str | None:
        return None if value is None else safe_template(self.item.resolve(value))

    def validate_task(self, task_id: str, data_uri: str, labelled: bool = True) -> BaseOperator | None:
        """``labelled=False``: a batch to score or check for drift, whose labels may come later."""
        if self.config.validation is None:
            return None
        from mlops_provider.operators.validation import ValidateDataOperator

        return ValidateDataOperator(
            task_id=task_id,
            data_uri=data_uri,
            suite=self.item.resolve(self.config.validation.suite),
            on_failure=self.config.validation.on_failure,
            base_dir=str(self.item.base_dir),
            data_conn_id=self.config.data.conn_id,
            optional_columns=None if labelled else [self.config.data.target],
            doc_md=docs.VALIDATE,
        )

    # -- <name>_retrain ------------------------------------------------------------------------
    def retrain_schedule(self) -> Any:
        """The config's cron or the drift (or performance) asset, whichever comes first; the assets alone
        without a cron."""
        from airflow.sdk import AssetOrTimeSchedule

        from mlops_provider.assets import drift_asset, performance_asset

        asset: Any = drift_asset(self.name)
        if self.config.feedback is not None:
            asset = asset | performance_asset(self.name)
        timetable = dag_args.schedule(self.config.schedule)
        if timetable is None:
            return asset
        if timetable == "@once":
            return "@once"
        return AssetOrTimeSchedule(timetable=timetable, assets=asset)

    def model_safety(self) -> dict[str, Any]:
        """How every task that loads this model may load it (``training.allow_pickle``/``trusted_types``)."""
        c = self.config.training
        return {"allow_pickle": c.allow_pickle, "extra_trusted_types": list(c.trusted_types)}

    def feedback_scoring(self) -> dict[str, Any]:
        """With feedback: the id kept, probabilities, shadow versions scored, the batch recorded."""
        c = self.config
        if c.feedback is None:
            return {"id_columns": [c.scoring.id_column] if c.scoring.id_column else None}
        shadows = ["previous_champion", *(["challenger"] if c.promotion.mode == "shadow" else [])]
        return {
            "id_columns": [c.scoring.id_column],
            "probabilities": c.model.task == "classification",
            "shadow_aliases": shadows,
            "record_batch": True,
        }

    def data_prefixes(self) -> list[str]:
        """``data.allowed_training_prefixes`` resolved against the YAML's folder."""
        return [self.item.resolve(p) for p in self.config.data.allowed_training_prefixes]

    def retrain(self) -> DAG:
        c = self.config
        data_uri = training_data_uri(str(self.path(c.data.train)))
        guard = training_data_guard(
            self.item.resolve(c.data.train), self.data_prefixes(), str(self.item.base_dir)
        )
        with DAG(
            dag_id=f"{self.name}_retrain",
            description=f"Retrain {self.name}: validate, train, evaluate, register, gated promotion",
            schedule=self.retrain_schedule(),
            catchup=False,
            max_active_runs=1,
            **dag_args.dag_defaults(),
            tags=dag_args.tags(c, "retrain"),
            default_args=dag_args.default_args(c),
            doc_md=docs.retrain_doc(c, str(self.item.path)),
            user_defined_macros={**macros(), "mlops_training_data": guard},
            render_template_as_native_obj=True,
        ) as dag:
            validate = self.validate_task("validate_data", data_uri)
            chain = [*([validate] if validate is not None else []), *self.retrain_tasks(data_uri, validate)]
            for upstream, downstream in pairwise(chain):
                dag_args.depends(downstream, upstream)
        # The trigger form, set once the tasks exist: every task built under a DAG with Params deep-copies
        # them (a quarter of the factory's parse time). Tasks read them at run time from the DAG anyway
        # (process_params merges dag.params), and setting them runs the same conversion and validation.
        dag.params = retrain_params(c.promotion.approval)  # type: ignore[assignment]
        return dag

    def training_placement(self) -> dict[str, Any]:
        """Where the training task runs: ``training.queue``, ``pool`` and ``pool_slots``, each only when set."""
        t = self.config.training
        placement: dict[str, Any] = {"queue": t.queue, "pool": t.pool}
        if t.pool_slots != 1:
            placement["pool_slots"] = t.pool_slots
        return {key: value for key, value in placement.items() if value}

    def retrain_tasks(self, data_uri: str, validate: BaseOperator | None) -> list[BaseOperator]:
        """Train, evaluate, register and promote (in the DAG being built)."""
        from mlops_provider.operators.evaluation import EvaluateModelOperator
        from mlops_provider.operators.registry import RegisterModelOperator
        from mlops_provider.operators.training import TrainModelOperator

        c = self.config
        validation_result = (
            "{{ (ti.xcom_pull(task_ids='validate_data') or {}).get('status', 'not_run') }}"
            if validate is not None
            else "not_run"
        )
        train = TrainModelOperator(
            task_id="train_model",
            model_name=self.name,
            data_uri=data_uri,
            target=c.data.target,
            features=list(c.data.features) if c.data.features else None,
            estimator=c.training.estimator,
            estimator_params=dict(c.training.params),
            estimator_modules=list(c.training.allowed_modules),
            task_type=c.model.task,
            test_size=c.training.test_size,
            random_state=c.training.random_state,
            config_hash=self.hash,
            validation_result=validation_result,
            base_dir=str(self.item.base_dir),
            allowed_data_prefixes=self.data_prefixes(),
            default_data_uri=str(self.path(c.data.train)),
            data_conn_id=c.data.conn_id,
            mlflow_conn_id=c.mlflow_conn_id,
            allow_cloudpickle=c.training.allow_pickle,
            extra_trusted_types=list(c.training.trusted_types),
            max_rows=c.training.max_rows,
            over_max_rows=c.training.over_max_rows,
            doc_md=docs.TRAIN,
            **self.training_placement(),
        )
        evaluate = EvaluateModelOperator(
            task_id="evaluate_model",
            run_id=xcom_value("train_model", "run_id"),
            task_type=c.model.task,
            slice_column=c.evaluation.slices.column if c.evaluation.slices else None,
            primary_metric=c.evaluation.primary_metric,
            **dag_args.metric_args(c),
            mlflow_conn_id=c.mlflow_conn_id,
            **self.model_safety(),
            doc_md=docs.EVALUATE,
        )
        register = RegisterModelOperator(
            task_id="register_model",
            model_name=self.name,
            run_id=xcom_value("train_model", "run_id"),
            model_card=c.model.model_dump(include={"description", "owners", "limitations"}),
            mlflow_conn_id=c.mlflow_conn_id,
            doc_md=docs.REGISTER,
        )
        return [train, evaluate, register, self.promote_task()]

    def promote_task(self) -> BaseOperator:
        from mlops_provider.templates.notify import promote_operator  # PromoteModelOperator (+ notices)

        c = self.config
        return promote_operator(c.notify)(
            task_id="promote_model",
            model_name=self.name,
            version=xcom_value("register_model", "version"),
            task_type=c.model.task,
            thresholds={m: b.model_dump(exclude_none=True) for m, b in c.evaluation.thresholds.items()},
            vs_champion={m: d.model_dump() for m, d in c.evaluation.vs_champion.items()},
            slices=c.evaluation.slices.model_dump() if c.evaluation.slices else None,
            **dag_args.metric_args(c),
            robustness=c.evaluation.robustness.model_dump() if c.evaluation.robustness else None,
            first_run=c.evaluation.first_run,
            alias=c.promotion.alias,
            approval="{{ params.approval }}",
            approval_floor=c.promotion.approval,
            skip_vs_champion="{{ params.skip_vs_champion }}",
            allow_forced=c.promotion.allow_forced,
            force_reason="{{ params.force_reason }}",
            on_refuse=c.promotion.on_refuse,
            mode=c.promotion.mode,
            mlflow_conn_id=c.mlflow_conn_id,
            retries=c.retries,  # lock waits and MLflow outages are retryable; refusals never are
            **self.model_safety(),
            doc_md=docs.PROMOTE,
        )

    # -- <name>_drift_monitor ------------------------------------------------------------------
    def drift_monitor(self) -> DAG | None:
        from mlops_provider.operators.drift import DriftCheckOperator

        c = self.config
        if c.data.current is None:
            return None
        current = self.path(c.data.current)
        with DAG(
            dag_id=f"{self.name}_drift_monitor",
            description=f"Watch {self.name}'s incoming data for drift against the champion's training data",
            schedule=dag_args.schedule(c.drift.schedule),
            catchup=False,
            max_active_runs=1,
            **dag_args.dag_defaults(),
            tags=dag_args.tags(c, "drift"),
            default_args=dag_args.default_args(c),
            doc_md=docs.drift_doc(c, str(self.item.path)),
            user_defined_macros=macros(),
        ) as dag:
            validate = self.validate_task("validate_current", str(current), labelled=False)
            check = DriftCheckOperator(
                task_id="check_drift",
                model_name=self.name,
                current_uri=str(current),
                reference_uri=self.path(c.data.reference),
                columns=list(c.data.features) if c.data.features else None,
                drift_share=c.drift.drift_share,
                min_rows=c.drift.min_rows,
                numeric_method=c.drift.numeric_method,
                categorical_method=c.drift.categorical_method,
                threshold=c.drift.threshold,
                max_rows=c.drift.max_rows,
                base_dir=str(self.item.base_dir),
                data_conn_id=c.data.conn_id,
                mlflow_conn_id=c.mlflow_conn_id,
                doc_md=docs.DRIFT,
            )
            if validate is not None:
                dag_args.depends(check, validate)
        return dag

    def shared_args(self, kind: str) -> dict[str, Any]:
        return {
            **dag_args.dag_defaults(),
            "tags": dag_args.tags(self.config, kind),
            "default_args": dag_args.default_args(self.config),
        }

    def rollback(self) -> DAG:
        return rollback_dag(self.config, str(self.item.path), self.shared_args("rollback"))

    def performance(self) -> DAG | None:
        path, base = str(self.item.path), str(self.item.base_dir)
        args = self.shared_args("performance")
        return performance_dag(self.config, path, base, self.path, self.scoring_output, args)

    @functools.cached_property
    def scoring_output(self) -> str:
        """Where batch scoring writes (relative paths resolve against MLOPS_HOME)."""
        output = self.config.scoring.output.replace("{{ model_name }}", self.name)
        return output if os.path.isabs(output) or "://" in output else str(mlops_home() / output)

    # -- <name>_batch_score --------------------------------------------------------------------
    def batch_score(self) -> DAG | None:
        from mlops_provider.templates.scoring import batch_score_dag

        return batch_score_dag(self)


def build_dags(
    config_dir: str | os.PathLike[str], *, strict: bool = False, only_dag_id: str | None = None
) -> list[DAG]:
    """
    The DAGs for every model config (``*.yaml``) in ``config_dir``.

    :param config_dir: folder of model configs; relative paths inside a config resolve against it.
    :param strict: raise :class:`InvalidModelConfigError` (an import error of the DAG file) instead of
        building placeholder DAGs for bad configs.
    :param only_dag_id: build only this DAG (default: the DAG a task process is running, from
        ``get_parsing_context()``; ``None`` outside task processes builds everything).
    """
    if only_dag_id is None:
        only_dag_id = get_parsing_context().dag_id
    model_name = next(
        (only_dag_id.removesuffix(s) for s in DAG_SUFFIXES if only_dag_id and only_dag_id.endswith(s)),
        None,
    )
    dag_args.DAG_DEFAULTS.clear()  # configuration is read again at each parse
    with paused_gc():  # loading and building allocate a lot: see templates.heap
        items = load_configs(config_dir, mentioning=model_name)
        bad = [item for item in items if not item.ok]
        for item in bad:
            for problem in item.problems:
                log.error("Invalid model config: %s", problem)
        if strict and bad:
            raise InvalidModelConfigError([p for item in bad for p in item.problems])
        with cached_schema_checks():  # Airflow validates each retrain DAG's Params: see templates.params
            return _build(items, only_dag_id)


def _build(items: list[LoadedConfig], only_dag_id: str | None) -> list[DAG]:
    dags: list[DAG] = []
    for item in items:
        if not item.ok:
            if only_dag_id in (None, placeholder_dag_id(item.path)):
                dags.append(placeholder_dag(item))
            continue
        builder = _Builder(item)
        for suffix, make in zip(
            DAG_SUFFIXES,
            (
                builder.retrain,
                builder.drift_monitor,
                builder.batch_score,
                builder.rollback,
                builder.performance,
            ),
            strict=True,
        ):
            if only_dag_id is not None and only_dag_id != f"{builder.name}{suffix}":
                continue
            dag = make()
            if dag is not None:
                dags.append(attach_notifications(dag, builder.config))
    return dags
