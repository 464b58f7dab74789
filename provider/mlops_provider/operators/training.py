"""Train a scikit-learn model on a dataset URI and log it, with its lineage, to MLflow."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.core import lineage
from mlops_provider.core.data_sample import check_max_rows
from mlops_provider.exceptions import airflow_errors
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.models import MODEL_ARTIFACT, MLflowModelHook, TrainingRunLog
from mlops_provider.hooks.openlineage import TrainingLineageMixin
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.mlflow import MLflowRunLink

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from mlops_provider.core.training import TrainingResult

TRAIN_METRICS_MAX_ROWS = 20_000
INPUT_EXAMPLE_ROWS = 5
OVER_MAX_ROWS = ("fail", "sample")


def sample_tags(sample: Mapping[str, int] | None) -> dict[str, str]:
    """The lineage tags of a training sample (none without one)."""
    if not sample:
        return {}
    return {
        lineage.TRAINING_ROWS_TOTAL: str(sample["of"]),
        lineage.TRAINING_SAMPLE_ROWS: str(sample["rows"]),
        lineage.TRAINING_SAMPLE_SEED: str(sample["seed"]),
    }


def _json_param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:6000]


class TrainModelOperator(LeanSetattrMixin, MLflowHookMixin, TrainingLineageMixin, BaseOperator):
    """
    Train a scikit-learn estimator on a dataset and log the model, its metrics and lineage to MLflow.

    The data set is split into training rows and a holdout with a fixed seed (stratified for
    classification); the holdout is logged as the artifact ``holdout/holdout.parquet`` so evaluation and
    the promotion gate score every model on it. A retry of the same task instance reuses the run it
    already finished (same data fingerprint and config) and ends any run it left RUNNING as KILLED.

    :param model_name: registered model name; the default experiment name. (templated)
    :param data_uri: training data: path, glob or URI (CSV/Parquet). (templated)
    :param target: target column. (templated)
    :param estimator: import path of an estimator class in ``sklearn``/``xgboost``/``lightgbm`` (e.g.
        ``sklearn.ensemble.RandomForestClassifier``), or of a factory function returning an
        estimator/Pipeline from a module in ``estimator_modules``; nothing else is imported or called
        (:mod:`mlops_provider.core.estimators`). (templated)
    :param estimator_modules: your modules whose estimator classes and factory functions are
        accepted (the config's ``training.allowed_modules``). (templated)
    :param features: feature columns; default every column but the target. (templated)
    :param estimator_params: keyword arguments for the estimator (or factory). Not ``params``: Airflow
        merges DAG params into an operator's ``params`` argument. (templated)
    :param task_type: ``classification`` or ``regression``; stored as ``ml_task_type``. (templated)
    :param test_size: fraction of rows held out.
    :param random_state: seed for the split and every unset ``random_state`` of the estimator.
    :param experiment_name: MLflow experiment; default ``model_name``. (templated)
    :param config_hash: hash of the model config, recorded as lineage. (templated)
    :param validation_result: outcome of the upstream data validation (``passed``/``warned``/
        ``failed``/``not_run`` or a validation summary dict). (templated)
    :param base_dir: folder relative local paths resolve against. (templated)
    :param allowed_data_prefixes: when given (the factory gives the config's
        ``data.allowed_training_prefixes``), ``data_uri`` must be ``default_data_uri`` or lie inside one
        of these folders/bucket paths, compared as resolved paths by whole segments; ``None`` (the
        default) checks nothing. (templated)
    :param default_data_uri: the configured training data, always accepted. (templated)
    :param data_conn_id: Airflow connection for remote data URIs. (templated)
    :param max_rows: the most rows to train on (the config's ``training.max_rows``); ``None`` (default):
        no limit, the whole data is read into memory. (templated)
    :param over_max_rows: data above ``max_rows``: ``fail`` (default) fails without retry, naming the
        URI, its row count and the limit; ``sample`` trains on a deterministic sample of ``max_rows``
        rows (seed ``random_state``, memory bounded by the sample), recorded in the run's lineage tags
        ``mlops.training_rows_total``, ``mlops.training_sample_rows`` and ``mlops.training_sample_seed``
        (and so on the version). The fingerprint is of the rows trained on. (templated)
    :param allow_cloudpickle: log a model skops cannot serialise with cloudpickle (loading it then needs
        ``allow_pickle`` everywhere it is loaded); otherwise such a model fails the task.
    :param extra_trusted_types: skops types the model may hold besides scikit-learn, numpy and scipy
        (checked at log time: a model the loaders would refuse is never registered). (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"run_id", "experiment_id", "model_uri", "holdout_uri", "training_data_uri",
        "training_data_fingerprint", "training_rows_total", "sample", "n_train", "n_holdout",
        "task_type", "trigger"}``; ``sample`` is ``{"rows", "of", "seed"}`` or ``None``; ``trigger``
        says why the DAG run started (see :func:`mlops_provider.core.lineage.trigger_summary`) and is
        also recorded as the run tags ``mlops.trigger.*``
    """

    template_fields: Sequence[str] = (
        "extra_trusted_types",
        "model_name",
        "data_uri",
        "target",
        "estimator",
        "estimator_modules",
        "features",
        "estimator_params",
        "ml_task_type",
        "experiment_name",
        "config_hash",
        "validation_result",
        "base_dir",
        "allowed_data_prefixes",
        "default_data_uri",
        "data_conn_id",
        "max_rows",
        "over_max_rows",
        "mlflow_conn_id",
    )
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#d4e8ff"
    hook_class = MLflowModelHook

    def __init__(
        self,
        *,
        model_name: str,
        data_uri: str,
        target: str,
        estimator: str,
        features: Sequence[str] | None = None,
        estimator_params: Mapping[str, Any] | None = None,
        task_type: str = "classification",
        test_size: float = 0.2,
        random_state: int = 42,
        experiment_name: str | None = None,
        config_hash: str | None = None,
        validation_result: str | Mapping[str, Any] | None = None,
        base_dir: str | None = None,
        estimator_modules: Sequence[str] | None = None,
        allowed_data_prefixes: Sequence[str] | None = None,
        default_data_uri: str | None = None,
        data_conn_id: str | None = None,
        max_rows: int | None = None,
        over_max_rows: str = "fail",
        allow_cloudpickle: bool = False,
        extra_trusted_types: Sequence[str] | None = None,
        mlflow_conn_id: str = MLflowModelHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.data_uri = data_uri
        self.target = target
        self.estimator = estimator
        self.features = features
        self.estimator_params = estimator_params
        self.ml_task_type = task_type
        self.test_size = test_size
        self.random_state = random_state
        self.experiment_name = experiment_name
        self.config_hash = config_hash
        self.validation_result = validation_result
        self.base_dir = base_dir
        self.estimator_modules = estimator_modules
        self.allowed_data_prefixes = allowed_data_prefixes
        self.default_data_uri = default_data_uri
        self.data_conn_id = data_conn_id
        self.max_rows = max_rows
        self.over_max_rows = over_max_rows
        self.allow_cloudpickle = allow_cloudpickle
        self.extra_trusted_types = extra_trusted_types
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        if not isinstance(self.model_name, str) or not self.model_name.strip():
            raise AirflowFailException(f"model_name must be a non-empty string, got {self.model_name!r}")
        with airflow_errors():
            validation = lineage.normalise_validation_result(self.validation_result)
            max_rows = check_max_rows(self.max_rows, "max_rows")
        if self.over_max_rows not in OVER_MAX_ROWS:
            raise AirflowFailException(
                f"over_max_rows must be one of {', '.join(OVER_MAX_ROWS)}, got {self.over_max_rows!r}"
            )
        data = DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir)
        uri = data.resolve(self.data_uri)
        self._check_data_scope()
        frame, sample = self._read(data, uri, max_rows)
        data_fingerprint = data.fingerprint(frame)
        result = self._train(frame, uri)
        trigger = lineage.trigger_summary(context)
        self.log.info("Run started by %s: %s", trigger["cause"], trigger)
        identity = lineage.task_identity(context)
        tags = self._lineage_tags(uri, data_fingerprint, len(frame), result, validation, identity, trigger)
        tags.update(sample_tags(sample))
        experiment_id = self.hook.ensure_experiment(self.experiment_name or self.model_name)
        run_id = self._reuse_or_clean(experiment_id, identity, data_fingerprint)
        if run_id is None:
            run_id = self._log_run(experiment_id, result, tags)
        artifact_uri = self.hook.artifact_uri(run_id)
        MLflowRunLink.persist(context, self.hook.run_url(experiment_id, run_id))
        summary = {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "model_uri": f"runs:/{run_id}/{MODEL_ARTIFACT}",
            "holdout_uri": f"{artifact_uri.rstrip('/')}/{lineage.HOLDOUT_ARTIFACT}",
            "training_data_uri": uri,
            "training_data_fingerprint": data_fingerprint,
            "training_rows_total": sample["of"] if sample else len(frame),
            "sample": sample,
            "n_train": len(result.train),
            "n_holdout": len(result.holdout),
            "task_type": self.ml_task_type,
            "trigger": trigger,
        }
        return self.keep_for_lineage(summary, rows=len(frame), dtypes=frame.dtypes)

    def _read(
        self, data: DataHook, uri: str, max_rows: int | None
    ) -> tuple[pd.DataFrame, dict[str, int] | None]:
        """The rows to train on and, when they are a sample, ``{"rows", "of", "seed"}``; above
        ``max_rows`` with ``over_max_rows="fail"``, fail (no retry) after counting, before loading."""
        if max_rows is None:
            return data.read_frame(uri), None
        total = data.count_rows(uri)
        if total <= max_rows:
            return data.read_frame(uri), None
        if self.over_max_rows != "sample":
            raise AirflowFailException(
                f"{uri}: {total} rows, above the limit of {max_rows} (training.max_rows, the operator's "
                "max_rows): raise the limit, or train on a deterministic sample with "
                "training.over_max_rows: sample (over_max_rows='sample')"
            )
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, int):
            raise AirflowFailException(f"random_state must be an integer, got {self.random_state!r}")
        frame, _ = data.read_sample(uri, max_rows, seed=self.random_state, total=total)
        self.log.info(
            "%s holds %d rows, above max_rows=%d: training on a deterministic sample of %d rows (seed %s)",
            uri,
            total,
            max_rows,
            len(frame),
            self.random_state,
        )
        return frame, {"rows": len(frame), "of": total, "seed": self.random_state}

    def _check_data_scope(self) -> None:
        """A trigger's data override: only the configured data or inside an allowed prefix."""
        if self.allowed_data_prefixes is None:
            return
        from mlops_provider.core.data_scope import check_training_data

        prefixes = self.allowed_data_prefixes
        if isinstance(prefixes, str):  # a rendered template of one prefix
            prefixes = [prefixes]
        with airflow_errors():
            check_training_data(
                self.data_uri, default=self.default_data_uri, prefixes=prefixes, base_dir=self.base_dir
            )

    def _train(self, frame: pd.DataFrame, uri: str) -> TrainingResult:
        from mlops_provider.core.training import TrainingSpec, train

        spec = TrainingSpec(
            target=self.target,
            estimator=self.estimator,
            features=self.features,
            params=self.estimator_params,
            task_type=self.ml_task_type,
            test_size=self.test_size,
            random_state=self.random_state,
            allowed_modules=tuple(self.estimator_modules or ()),
        )
        with airflow_errors(f"training {self.model_name!r} on {uri}"):
            result = train(frame, spec, where=uri)
        self.log.info(
            "Trained %s on %d rows (%d holdout, %d rows without target dropped), features %s",
            self.estimator,
            len(result.train),
            len(result.holdout),
            result.dropped_missing_target,
            result.features,
        )
        return result

    def _lineage_tags(
        self,
        uri: str,
        data_fingerprint: str,
        rows: int,
        result: TrainingResult,
        validation: str,
        identity: Mapping[str, str],
        trigger: Mapping[str, Any],
    ) -> dict[str, str]:
        from mlops_provider import __version__

        return {
            lineage.TRAINING_DATA_URI: uri,
            lineage.TRAINING_DATA_FINGERPRINT: data_fingerprint,
            lineage.TRAINING_DATA_ROWS: str(rows),
            lineage.FEATURES: json.dumps(result.features),
            lineage.TARGET: self.target,
            lineage.TASK_TYPE: self.ml_task_type,
            lineage.VALIDATION_RESULT: validation,
            lineage.CONFIG_HASH: self.config_hash or "",
            lineage.CODE_VERSION: __version__,
            lineage.DAG_ID: identity["dag_id"],
            lineage.RUN_ID: identity["dag_run_id"],
            lineage.TASK_ID: identity["task_id"],
            lineage.TRY_NUMBER: identity["try_number"],
            lineage.TRIGGER_CAUSE: trigger["cause"],
            lineage.TRIGGER_DRIFT_EVENTS: _json_param(trigger["drift_events"]),
            **lineage.trigger_tags(trigger),
            "mlops.model_name": self.model_name,
            "mlops.estimator": self.estimator,
        }

    def _reuse_or_clean(
        self, experiment_id: str, identity: Mapping[str, str], data_fingerprint: str
    ) -> str | None:
        """End runs an earlier try of this task left RUNNING; return a FINISHED one with the same inputs."""
        if not (identity["dag_id"] and identity["dag_run_id"] and identity["task_id"]):
            return None
        reusable = None
        for run in self.hook.runs_of_task(experiment_id, identity):
            status = run.info.status
            if status == "RUNNING":
                self.log.warning("Ending run %s left RUNNING by an earlier try as KILLED", run.info.run_id)
                self.hook.end_run(run.info.run_id, "KILLED")
            elif (
                reusable is None
                and status == "FINISHED"
                and self._same_inputs(run.data.tags, data_fingerprint)
            ):
                reusable = run.info.run_id
        if reusable:
            self.log.info(
                "Reusing run %s finished by an earlier try of this task (same data and config)", reusable
            )
        return reusable

    def _same_inputs(self, tags: Mapping[str, str], data_fingerprint: str) -> bool:
        return (
            tags.get(lineage.TRAINING_DATA_FINGERPRINT) == data_fingerprint
            and tags.get(lineage.CONFIG_HASH, "") == (self.config_hash or "")
            and tags.get("mlops.estimator") == self.estimator
            and tags.get("mlops.params") == _json_param(self.estimator_params or {})
            and tags.get("mlops.complete") == "true"
        )

    def _log_run(self, experiment_id: str, result: TrainingResult, tags: dict[str, str]) -> str:
        from mlops_provider.core.metrics import compute_metrics

        # training-set metrics are a sanity check (over/underfitting): a fixed sample is enough
        X_fit, y_fit = result.X_train, result.train[self.target]
        if len(X_fit) > TRAIN_METRICS_MAX_ROWS:
            X_fit = X_fit.sample(n=TRAIN_METRICS_MAX_ROWS, random_state=self.random_state)
            y_fit = y_fit.loc[X_fit.index]
        train_report = compute_metrics(result.model, X_fit, y_fit, self.ml_task_type)
        params = {
            "estimator": self.estimator,
            "task_type": self.ml_task_type,
            "test_size": self.test_size,
            "random_state": self.random_state,
            "n_features": len(result.features),
            "preprocessed": result.preprocessed,
            **{f"param.{k}": _json_param(v) for k, v in (self.estimator_params or {}).items()},
        }
        metrics = {f"train_{k}": v for k, v in train_report.values.items() if v is not None}
        metrics.update({"n_train": len(result.train), "n_holdout": len(result.holdout)})
        identity = f"{tags[lineage.DAG_ID]}.{tags[lineage.TASK_ID]}" if tags[lineage.DAG_ID] else "manual"
        return self.hook.log_training_run(
            TrainingRunLog(
                experiment_id=experiment_id,
                run_name=f"{self.model_name}-{identity}",
                tags={**tags, "mlops.params": _json_param(self.estimator_params or {})},
                params=params,
                metrics=metrics,
                model=result.model,
                input_example=result.X_train.head(INPUT_EXAMPLE_ROWS),
                holdout=result.holdout,
                allow_cloudpickle=bool(self.allow_cloudpickle),
                extra_trusted_types=tuple(self.extra_trusted_types or ()),
            )
        )
