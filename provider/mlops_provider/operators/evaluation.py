"""Evaluate a trained model on its holdout: metrics, per-slice metrics, permutation importance."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.core import lineage
from mlops_provider.hooks.mlflow import MLflowHook, MLflowHookMixin
from mlops_provider.links.mlflow import MLflowRunLink

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context
    from mlflow import MlflowClient

METRIC_PREFIX = "holdout_"
IMPORTANCE_ARTIFACT = "evaluation/permutation_importance.json"
SLICES_ARTIFACT = "evaluation/slice_metrics.json"
# Written last by EvaluateModelOperator; PromoteModelOperator reuses the challenger's numbers from it.
HOLDOUT_RECORD_ARTIFACT = "evaluation/holdout_metrics.json"
HOLDOUT_RECORD_FORMAT = 1


@dataclass
class RunLineage:
    """What a training run recorded about its inputs (its mlops.* tags)."""

    run_id: str
    features: list[str]
    target: str
    task_type: str | None
    experiment_id: str = ""

    @classmethod
    def of(cls, client: MlflowClient, run_id: str) -> RunLineage:
        run = client.get_run(run_id)
        tags = run.data.tags
        where = f"MLflow run {run_id}"
        try:
            features = json.loads(tags[lineage.FEATURES])
            target = tags[lineage.TARGET]
        except (KeyError, ValueError):
            raise AirflowFailException(
                f"{where} has no lineage tags {lineage.FEATURES!r}/{lineage.TARGET!r}: "
                "it was not logged by TrainModelOperator"
            ) from None
        return cls(
            run_id=run_id,
            features=list(features),
            target=target,
            task_type=tags.get(lineage.TASK_TYPE),
            experiment_id=run.info.experiment_id,
        )


def load_holdout(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """The holdout a training run logged (artifact ``holdout/holdout.parquet``)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, lineage.HOLDOUT_ARTIFACT, tmp)
        except Exception as err:  # MlflowException or OSError, depending on the artifact store
            raise AirflowFailException(
                f"MLflow run {run_id}: cannot read its holdout artifact {lineage.HOLDOUT_ARTIFACT!r} ({err})"
            ) from None
        return pd.read_parquet(path)


def read_holdout_record(client: MlflowClient, run_id: str) -> tuple[Any, str]:
    """
    The evaluation record (``evaluation/holdout_metrics.json``) of a training run, parsed, or ``None``
    and why not. A missing record is normal (no EvaluateModelOperator ran on the run); other MLflow
    errors propagate.
    """
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, HOLDOUT_RECORD_ARTIFACT, tmp)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return None, f"run {run_id} has no {HOLDOUT_RECORD_ARTIFACT} (EvaluateModelOperator did not run)"
        except OSError as err:
            return None, f"cannot read {HOLDOUT_RECORD_ARTIFACT} of run {run_id} ({err})"
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f), ""
        except (OSError, ValueError) as err:
            return None, f"{HOLDOUT_RECORD_ARTIFACT} of run {run_id} is not readable JSON ({err})"


def _brief(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _metrics_problem(
    metrics: Any, non_finite: Any, names: Sequence[str], required: set[str], what: str
) -> str:
    """Why ``metrics``/``non_finite`` are not what compute_metrics returns for ``names``; "" if they are."""
    from mlops_provider.core.metrics import is_finite_number

    if not isinstance(metrics, Mapping) or not isinstance(non_finite, list):
        return f"{what}: metrics/non_finite are not a mapping and a list"
    unknown = set(metrics) - set(names)
    if unknown:
        return f"{what}: unknown metric(s) {sorted(unknown)}"
    absent = required - set(metrics)
    if absent:
        return f"{what}: lacks metric(s) {sorted(absent)}"
    if any(v is not None and not is_finite_number(v) for v in metrics.values()):
        return f"{what}: a metric value is neither a finite number nor null"
    if set(non_finite) != {k for k, v in metrics.items() if v is None}:
        return f"{what}: non_finite {_brief(non_finite)} does not list exactly the null metrics"
    return ""


def holdout_record_mismatch(
    record: Any,
    *,
    run_id: str,
    model_source: str | None,
    holdout: Any,
    task_type: str,
    features: Sequence[str],
    target: str,
    gated: set[str],
    slice_column: str | None,
) -> str:
    """
    Why EvaluateModelOperator's ``record`` (``evaluation/holdout_metrics.json``) does not describe what
    promote would score; "" when its challenger numbers can be used as they are. ``model_source`` is the
    model version's source (``models:/<logged model id>`` or ``runs:/<run_id>/model``).
    """
    from mlops_provider import __version__
    from mlops_provider.core.data import fingerprint
    from mlops_provider.core.metrics import OPTIONAL_METRICS, metric_names

    if not isinstance(record, Mapping):
        return "the record is not a JSON object"
    model_uri = f"runs:/{run_id}/model"
    for key, expected in (
        ("format", HOLDOUT_RECORD_FORMAT),
        ("model_uri", model_uri),
        ("holdout_artifact", lineage.HOLDOUT_ARTIFACT),
        ("code_version", __version__),
        ("task_type", task_type),
        ("features", list(features)),
        ("target", target),
        ("rows", len(holdout)),
    ):
        if record.get(key) != expected:
            return f"its {key} {_brief(record.get(key))} is not {_brief(expected)}"
    model_id = record.get("model_id")
    sources = {model_uri, *([f"models:/{model_id}"] if isinstance(model_id, str) and model_id else [])}
    if model_source not in sources:
        return f"the version's model {model_source!r} is not the evaluated {' or '.join(sorted(sources))}"
    if record.get("holdout_fingerprint") != fingerprint(holdout):
        return "it was computed on a holdout with other content (fingerprint differs)"
    try:
        names = metric_names(task_type)
    except ValueError as err:
        return str(err)
    always = set(names) - OPTIONAL_METRICS
    problem = _metrics_problem(
        record.get("metrics"), record.get("non_finite"), names, always | set(gated), "its metrics"
    )
    if problem:
        return problem
    if slice_column is None:
        return ""
    if record.get("slice_column") != slice_column:
        return f"its slice_column {_brief(record.get('slice_column'))} is not {slice_column!r}"
    slices = record.get("slices")
    if not isinstance(slices, Mapping) or not slices:
        return "it holds no slice metrics"
    rows = 0
    for label, report in slices.items():
        if not isinstance(report, Mapping) or not isinstance(report.get("rows"), int):
            return f"slice {label!r} is not a metric report"
        problem = _metrics_problem(
            report.get("metrics"), report.get("non_finite"), names, always, f"slice {label!r}"
        )
        if problem:
            return problem
        rows += report["rows"]
    if rows != len(holdout):
        return f"its slices cover {rows} rows, the holdout has {len(holdout)}"
    return ""


def logged_model_id(client: MlflowClient, run_id: str, experiment_id: str, name: str = "model") -> str | None:
    """
    The id of the logged model ``runs:/<run_id>/<name>`` resolves to (MLflow 3 logged models); ``None``
    when the tracking server cannot tell or the run holds no such model, or several.
    """
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_logged_models(
            experiment_ids=[experiment_id],
            filter_string=f"name = '{name}' AND source_run_id = '{run_id}'",
            max_results=2,
        )
    except MlflowException:  # e.g. a server without logged models: the record just names no model id
        return None
    return found[0].model_id if len(found) == 1 else None


def load_model(model_uri: str) -> Any:
    """The sklearn model at ``model_uri`` (skops or pickle, as logged)."""
    import mlflow

    from mlops_provider.operators.training import quiet_serialization

    with quiet_serialization():
        return mlflow.sklearn.load_model(model_uri)


def holdout_xy(
    holdout: pd.DataFrame, features: Sequence[str], target: str, where: str
) -> tuple[pd.DataFrame, pd.Series]:
    missing = [c for c in [*features, target] if c not in holdout.columns]
    if missing:
        raise AirflowFailException(f"{where}: holdout lacks column(s) {', '.join(map(repr, missing))}")
    return holdout[list(features)], holdout[target]


class EvaluateModelOperator(MLflowHookMixin, BaseOperator):
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

    Slices: a numeric ``slice_column`` with more than 10 distinct values is cut into quartile buckets
    (labels like ``(12.5, 17.0]``); otherwise each value (and "<missing>") is a slice.

    :param run_id: MLflow run id from TrainModelOperator. (templated)
    :param task_type: ``classification``/``regression``; default: the run's lineage tag. Stored as
        ``ml_task_type`` (``BaseOperator.task_type`` is the class name). (templated)
    :param slice_column: column of the holdout to slice by (may be a non-feature column). (templated)
    :param primary_metric: metric to report as primary; default f1_macro / rmse. (templated)
    :param compute_importance: compute permutation feature importance.
    :param importance_max_rows: rows sampled for permutation importance.
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"run_id", "metrics", "primary_metric", "slices", "non_finite"}``
    """

    template_fields: Sequence[str] = (
        "run_id",
        "ml_task_type",
        "slice_column",
        "primary_metric",
        "mlflow_conn_id",
    )
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#d4e8ff"

    def __init__(
        self,
        *,
        run_id: str,
        task_type: str | None = None,
        slice_column: str | None = None,
        primary_metric: str | None = None,
        compute_importance: bool = True,
        importance_max_rows: int = 2000,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.ml_task_type = task_type
        self.slice_column = slice_column
        self.primary_metric = primary_metric
        self.compute_importance = compute_importance
        self.importance_max_rows = importance_max_rows
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlflow.exceptions import MlflowException

        from mlops_provider import __version__
        from mlops_provider.core.data import fingerprint
        from mlops_provider.core.metrics import (
            DEFAULT_PRIMARY,
            compute_metrics,
            metric_names,
            permutation_importance_report,
            slice_metrics,
        )

        if not isinstance(self.run_id, str) or not self.run_id.strip():
            raise AirflowFailException(f"run_id must be a non-empty string, got {self.run_id!r}")
        with self.hook.session() as client:
            try:
                run_lineage = RunLineage.of(client, self.run_id)
                task_type = self.ml_task_type or run_lineage.task_type or "classification"
                try:
                    names = metric_names(task_type)
                except ValueError as err:
                    raise AirflowFailException(str(err)) from None
                if run_lineage.task_type and run_lineage.task_type != task_type:
                    raise AirflowFailException(
                        f"task_type {task_type!r} differs from the {run_lineage.task_type!r} run {self.run_id} was trained for"
                    )
                primary = self.primary_metric or DEFAULT_PRIMARY[task_type]
                if primary not in names:
                    raise AirflowFailException(f"primary_metric {primary!r} is not one of {', '.join(names)}")
                holdout = load_holdout(client, self.run_id)
                where = f"MLflow run {self.run_id}"
                X, y = holdout_xy(holdout, run_lineage.features, run_lineage.target, where)
                model_uri = f"runs:/{self.run_id}/model"
                model_id = logged_model_id(client, self.run_id, run_lineage.experiment_id)
                model = load_model(model_uri)
                report = compute_metrics(model, X, y, task_type)
                slices: dict[str, Any] = {}
                if self.slice_column:
                    if self.slice_column not in holdout.columns:
                        raise AirflowFailException(
                            f"{where}: slice_column {self.slice_column!r} is not a column of the holdout "
                            f"({', '.join(map(str, holdout.columns))})"
                        )
                    slices = slice_metrics(model, X, y, holdout[self.slice_column], task_type)
                importance = (
                    permutation_importance_report(model, X, y, task_type, max_rows=self.importance_max_rows)
                    if self.compute_importance
                    else None
                )
                self._record(client, report.values, report.non_finite, slices, importance)
                record = {
                    "format": HOLDOUT_RECORD_FORMAT,
                    "model_uri": model_uri,
                    "model_id": model_id,
                    "holdout_artifact": lineage.HOLDOUT_ARTIFACT,
                    "holdout_fingerprint": fingerprint(holdout),
                    "code_version": __version__,
                    "task_type": task_type,
                    "features": run_lineage.features,
                    "target": run_lineage.target,
                    "rows": report.rows,
                    "metrics": report.values,
                    "non_finite": report.non_finite,
                    "slice_column": self.slice_column or None,
                    "slices": slices if self.slice_column else None,
                }
                # last: its presence means the evaluation above was recorded completely
                client.log_dict(self.run_id, record, HOLDOUT_RECORD_ARTIFACT)
            except MlflowException as err:
                raise self.hook.unavailable(err) from err
        MLflowRunLink.persist(
            context, MLflowRunLink.url(self.hook.settings, run_lineage.experiment_id, self.run_id)
        )
        if report.non_finite:
            self.log.warning("Non-finite metric(s) on the holdout of %s: %s", self.run_id, report.non_finite)
        return {
            "run_id": self.run_id,
            "task_type": task_type,
            "rows": report.rows,
            "metrics": report.values,
            "primary_metric": {"name": primary, "value": report.values.get(primary)},
            "slices": {label: s["metrics"] for label, s in slices.items()},
            "non_finite": report.non_finite,
        }

    def _record(
        self,
        client: MlflowClient,
        values: Mapping[str, float | None],
        non_finite: list[str],
        slices: Mapping[str, Any],
        importance: list[dict[str, Any]] | None,
    ) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{METRIC_PREFIX}{k}", v, now, 0) for k, v in values.items() if v is not None]
        client.log_batch(self.run_id, metrics=metrics)
        client.set_tag(self.run_id, "mlops.non_finite_metrics", json.dumps(non_finite))
        if slices:
            client.log_dict(self.run_id, {"column": self.slice_column, "slices": slices}, SLICES_ARTIFACT)
        if importance is not None:
            client.log_dict(
                self.run_id,
                {"scoring_rows_max": self.importance_max_rows, "features": importance},
                IMPORTANCE_ARTIFACT,
            )
