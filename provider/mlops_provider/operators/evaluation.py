"""Evaluate a trained model on its holdout: metrics, per-slice metrics, permutation importance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.exceptions import airflow_errors
from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.model_safety import ModelLoadPolicy
from mlops_provider.hooks.models import MLflowModelHook
from mlops_provider.hooks.openlineage import EvaluationLineageMixin
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.mlflow import MLflowRunLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.core.metric_plan import MetricPlan
    from mlops_provider.hooks.models import RunLineage


class EvaluateModelOperator(LeanSetattrMixin, MLflowHookMixin, EvaluationLineageMixin, BaseOperator):
    """
    Score a training run's model on the holdout it logged and record the metrics on the run.

    Metrics are logged with the prefix ``holdout_``; per-slice metrics and permutation importance are
    logged as JSON artifacts ``evaluation/slice_metrics.json`` and
    ``evaluation/permutation_importance.json``. Non-finite metric values are returned as ``null`` and
    listed in ``non_finite`` (and not logged as numbers).

    Last, once everything else is logged, the record ``evaluation/holdout_metrics.json`` names what was
    scored (model, holdout fingerprint, task type, features, target, provider version) with the metrics
    and slice metrics: PromoteModelOperator reuses the challenger's numbers from it instead of loading
    the model again, when all of that matches what it would score.

    The model is loaded only after its recorded sha256 matches, and never with pickle or skops types
    outside the provider's allowlist unless opted in (see :mod:`mlops_provider.hooks.model_safety`).

    Slices: a numeric ``slice_column`` with more than 10 distinct values is cut into quartile buckets
    (labels like ``(12.5, 17.0]``); otherwise each value (and "<missing>") is a slice.

    :param run_id: MLflow run id from TrainModelOperator. (templated)
    :param task_type: ``classification``/``regression``; default: the run's lineage tag. Stored as
        ``ml_task_type`` (``BaseOperator.task_type`` is the class name). (templated)
    :param slice_column: column of the holdout to slice by (may be a non-feature column). (templated)
    :param primary_metric: metric to report as primary; default f1_macro / rmse. (templated)
    :param custom_metrics: ``{name: {function: "module:function", greater_is_better}}``: business
        metrics ``(y_true, y_pred, y_proba, X) -> float`` from a module in the DAGs folder. (templated)
    :param cost_matrix: ``{actual_class: {predicted_class: cost}}`` (classification): the metric
        ``expected_cost``, the mean cost per row. (templated)
    :param compute_importance: compute permutation feature importance.
    :param importance_max_rows: rows sampled for permutation importance.
    :param mlflow_conn_id: MLflow connection. (templated)
    :param allow_pickle: load a pickle/cloudpickle model (can run arbitrary code; trusted store only).
    :param extra_trusted_types: skops types trusted besides scikit-learn, numpy and scipy. (templated)
    :param allow_unverified_models: load a model without a recorded sha256 (logged by older code).
    :return: ``{"run_id", "metrics", "primary_metric", "slices", "non_finite"}``
    """

    template_fields: Sequence[str] = (
        "run_id",
        "ml_task_type",
        "slice_column",
        "primary_metric",
        "custom_metrics",
        "cost_matrix",
        "mlflow_conn_id",
        "extra_trusted_types",
    )
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#d4e8ff"
    hook_class = MLflowModelHook

    def __init__(
        self,
        *,
        run_id: str,
        task_type: str | None = None,
        slice_column: str | None = None,
        primary_metric: str | None = None,
        custom_metrics: dict[str, Any] | None = None,
        cost_matrix: dict[str, Any] | None = None,
        compute_importance: bool = True,
        importance_max_rows: int = 2000,
        mlflow_conn_id: str = MLflowModelHook.default_conn_name,
        allow_pickle: bool = False,
        extra_trusted_types: Sequence[str] | None = None,
        allow_unverified_models: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.ml_task_type = task_type
        self.slice_column = slice_column
        self.primary_metric = primary_metric
        self.custom_metrics = custom_metrics
        self.cost_matrix = cost_matrix
        self.compute_importance = compute_importance
        self.importance_max_rows = importance_max_rows
        self.mlflow_conn_id = mlflow_conn_id
        self.allow_pickle = allow_pickle
        self.extra_trusted_types = extra_trusted_types
        self.allow_unverified_models = allow_unverified_models

    def execute(self, context: Context) -> dict[str, Any]:
        if not isinstance(self.run_id, str) or not self.run_id.strip():
            raise AirflowFailException(f"run_id must be a non-empty string, got {self.run_id!r}")
        self.hook.load_policy = ModelLoadPolicy.from_args(
            allow_pickle=self.allow_pickle,
            extra_trusted_types=self.extra_trusted_types,
            allow_unverified=self.allow_unverified_models,
        )
        run = self.hook.run_lineage(self.run_id)
        task_type, primary, plan = self._task_and_primary(run, context)
        holdout = self.hook.load_holdout(self.run_id)
        with airflow_errors():
            report, slices, importance = self._score(holdout, run, plan)
        self._record(run, holdout, task_type, report, slices, importance)
        MLflowRunLink.persist(context, self.hook.run_url(run.experiment_id, self.run_id))
        if report.non_finite:
            self.log.warning("Non-finite metric(s) on the holdout of %s: %s", self.run_id, report.non_finite)
        for name, error in report.errors.items():
            self.log.error("Custom metric %s has no value: %s", name, error)
        return {
            "run_id": self.run_id,
            "task_type": task_type,
            "rows": report.rows,
            "metrics": report.values,
            "primary_metric": {"name": primary, "value": report.values.get(primary)},
            "slices": {label: s["metrics"] for label, s in slices.items()},
            "non_finite": report.non_finite,
            **({"metric_errors": report.errors} if report.errors else {}),
        }

    def _task_and_primary(self, run: RunLineage, context: Context) -> tuple[str, str, MetricPlan]:
        from mlops_provider.core.metrics import DEFAULT_PRIMARY, metric_names
        from mlops_provider.hooks.metric_plan import metric_plan

        task_type = self.ml_task_type or run.task_type or "classification"
        with airflow_errors():
            metric_names(task_type)
        plan = metric_plan(task_type, self.custom_metrics, self.cost_matrix, context)
        names = plan.names
        if run.task_type and run.task_type != task_type:
            raise AirflowFailException(
                f"task_type {task_type!r} differs from the {run.task_type!r} run {self.run_id} was trained for"
            )
        primary = self.primary_metric or DEFAULT_PRIMARY[task_type]
        if primary not in names:
            raise AirflowFailException(f"primary_metric {primary!r} is not one of {', '.join(names)}")
        return task_type, primary, plan

    def _score(self, holdout: Any, run: RunLineage, plan: MetricPlan) -> tuple[Any, dict[str, Any], Any]:
        from mlops_provider.core.metrics import compute_metrics, permutation_importance_report, slice_metrics
        from mlops_provider.core.records import holdout_xy

        X, y = holdout_xy(holdout, run.features, run.target, f"MLflow run {self.run_id}")
        if self.slice_column and self.slice_column not in holdout.columns:
            raise AirflowFailException(
                f"MLflow run {self.run_id}: slice_column {self.slice_column!r} is not a column of the "
                f"holdout ({', '.join(map(str, holdout.columns))})"
            )
        model = self.hook.load_model(f"runs:/{self.run_id}/model")
        task_type = plan.task_type
        report = compute_metrics(model, X, y, task_type, plan)
        slices = (
            slice_metrics(model, X, y, holdout[self.slice_column], task_type, plan)
            if self.slice_column
            else {}
        )
        importance = (
            permutation_importance_report(model, X, y, task_type, max_rows=self.importance_max_rows)
            if self.compute_importance
            else None
        )
        return report, slices, importance

    def _record(
        self, run: RunLineage, holdout: Any, task_type: str, report: Any, slices: Any, importance: Any
    ) -> None:
        from mlops_provider import __version__
        from mlops_provider.core.records import holdout_record

        self.hook.log_evaluation(
            self.run_id,
            report.values,
            report.non_finite,
            slices={"column": self.slice_column, "slices": slices} if slices else None,
            importance=(
                {"scoring_rows_max": self.importance_max_rows, "features": importance}
                if importance is not None
                else None
            ),
        )
        record = holdout_record(
            run_id=self.run_id,
            model_id=self.hook.logged_model_id(self.run_id, run.experiment_id),
            holdout=holdout,
            code_version=__version__,
            task_type=task_type,
            features=run.features,
            target=run.target,
            report=report.as_dict(),
            slice_column=self.slice_column,
            slices=slices,
        )
        self.hook.write_evaluation_record(self.run_id, record)  # last: the rest is recorded
