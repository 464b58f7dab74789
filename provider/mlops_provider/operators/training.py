"""Train a scikit-learn model on a dataset URI and log it, with its lineage, to MLflow."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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

    from mlops_provider.core.training import TrainingResult

VALIDATION_RESULTS = ("passed", "warned", "failed", "not_run")
MODEL_ARTIFACT = "model"
TRAIN_METRICS_MAX_ROWS = 20_000
INPUT_EXAMPLE_ROWS = 5
# Distributions a logged sklearn model needs at load time; versions are read from this environment.
_PIP_DISTRIBUTIONS = ("scikit-learn", "pandas", "numpy", "scipy", "skops", "cloudpickle")


def task_identity(context: Context | Mapping[str, Any]) -> dict[str, str]:
    """dag id / dag run id / task id / try number of the running task (empty strings outside Airflow)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    return {
        "dag_id": str(getattr(ti, "dag_id", "") or ""),
        "dag_run_id": str(getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "") or ""),
        "task_id": str(getattr(ti, "task_id", "") or ""),
        "try_number": str(getattr(ti, "try_number", "") or ""),
    }


def normalise_validation_result(value: Any) -> str:
    """``passed`` | ``warned`` | ``failed`` | ``not_run`` from a string or a validation summary dict."""
    if value is None or value == "":
        return "not_run"
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                import ast

                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    value = text
        else:
            value = text
    if isinstance(value, Mapping):
        for key in ("result", "status", "outcome"):
            if isinstance(value.get(key), str):
                return normalise_validation_result(value[key])
        if isinstance(value.get("success"), bool):
            return "passed" if value["success"] else "failed"
        raise ValueError(f"validation_result: cannot read a status from {dict(value)!r}")
    if isinstance(value, bool):
        return "passed" if value else "failed"
    text = str(value).lower()
    aliases = {"success": "passed", "pass": "passed", "warn": "warned", "warning": "warned", "fail": "failed"}
    text = aliases.get(text, text)
    if text not in VALIDATION_RESULTS:
        raise ValueError(f"validation_result must be one of {', '.join(VALIDATION_RESULTS)}, got {value!r}")
    return text


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged sklearn model (never inferred by MLflow: that costs seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for dist in _PIP_DISTRIBUTIONS:
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return pins


@contextmanager
def quiet_serialization() -> Iterator[None]:
    """
    skops looks functions up by scanning every loaded module; Airflow's deprecated-attribute shims
    answer with a warning each (over 1000 lines per model in a task log). Silence them for the block.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def serialization_options(model: Any) -> dict[str, Any]:
    """
    skops (no arbitrary code at load) with the types this very model needs marked trusted; cloudpickle
    for models skops cannot serialise.
    """
    try:
        import skops.io as sio

        with quiet_serialization():
            trusted = sio.get_untrusted_types(data=sio.dumps(model))
        return {"serialization_format": "skops", "skops_trusted_types": trusted}
    except Exception:  # skops refuses some estimators: fall back explicitly
        return {"serialization_format": "cloudpickle"}


def _json_param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:6000]


class TrainModelOperator(MLflowHookMixin, BaseOperator):
    """
    Train a scikit-learn estimator on a dataset and log the model, its metrics and lineage to MLflow.

    The data set is split into training rows and a holdout with a fixed seed (stratified for
    classification); the holdout is logged as the artifact ``holdout/holdout.parquet`` so evaluation and
    the promotion gate score every model on it. A retry of the same task instance reuses the run it
    already finished (same data fingerprint and config) and ends any run it left RUNNING as KILLED.

    :param model_name: registered model name; the default experiment name. (templated)
    :param data_uri: training data: path, glob or URI (CSV/Parquet). (templated)
    :param target: target column. (templated)
    :param estimator: import path of a scikit-learn estimator class or of a factory returning an
        estimator/Pipeline, e.g. ``sklearn.ensemble.RandomForestClassifier``. (templated)
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
    :param data_conn_id: Airflow connection for remote data URIs. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"run_id", "experiment_id", "model_uri", "holdout_uri", "training_data_uri",
        "training_data_fingerprint", "n_train", "n_holdout", "task_type", "trigger"}``; ``trigger``
        says why the DAG run started (see :func:`mlops_provider.core.lineage.trigger_summary`) and is
        also recorded as the run tags ``mlops.trigger.*``
    """

    template_fields: Sequence[str] = (
        "model_name",
        "data_uri",
        "target",
        "estimator",
        "features",
        "estimator_params",
        "ml_task_type",
        "experiment_name",
        "config_hash",
        "validation_result",
        "base_dir",
        "data_conn_id",
        "mlflow_conn_id",
    )
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#d4e8ff"

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
        data_conn_id: str | None = None,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
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
        self.data_conn_id = data_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core.data import fingerprint, read_frame, resolve_uri
        from mlops_provider.core.training import TrainingInputError, TrainingSpec, train
        from mlops_provider.hooks.storage import filesystem_for

        if not isinstance(self.model_name, str) or not self.model_name.strip():
            raise AirflowFailException(f"model_name must be a non-empty string, got {self.model_name!r}")
        try:
            validation = normalise_validation_result(self.validation_result)
        except ValueError as err:
            raise AirflowFailException(str(err)) from None
        uri = resolve_uri(self.data_uri, self.base_dir)
        frame = read_frame(uri, filesystem_for(uri, self.data_conn_id))
        data_fingerprint = fingerprint(frame)
        spec = TrainingSpec(
            target=self.target,
            estimator=self.estimator,
            features=self.features,
            params=self.estimator_params,
            task_type=self.ml_task_type,
            test_size=self.test_size,
            random_state=self.random_state,
        )
        try:
            result = train(frame, spec, where=uri)
        except (TrainingInputError, ValueError) as err:
            raise AirflowFailException(f"training {self.model_name!r} on {uri}: {err}") from None
        trigger = lineage.trigger_summary(context)
        self.log.info("Run started by %s: %s", trigger["cause"], trigger)
        self.log.info(
            "Trained %s on %d rows (%d holdout, %d rows without target dropped), features %s",
            self.estimator,
            len(result.train),
            len(result.holdout),
            result.dropped_missing_target,
            result.features,
        )
        identity = task_identity(context)
        tags = {
            lineage.TRAINING_DATA_URI: uri,
            lineage.TRAINING_DATA_FINGERPRINT: data_fingerprint,
            lineage.TRAINING_DATA_ROWS: str(len(frame)),
            lineage.FEATURES: json.dumps(result.features),
            lineage.TARGET: self.target,
            lineage.TASK_TYPE: self.ml_task_type,
            lineage.VALIDATION_RESULT: validation,
            lineage.CONFIG_HASH: self.config_hash or "",
            lineage.CODE_VERSION: _code_version(),
            lineage.DAG_ID: identity["dag_id"],
            lineage.RUN_ID: identity["dag_run_id"],
            lineage.TASK_ID: identity["task_id"],
            lineage.TRY_NUMBER: identity["try_number"],
            lineage.TRIGGER_CAUSE: trigger["cause"],
            lineage.TRIGGER_DRIFT_EVENTS: _json_param(trigger["drift_events"]),
            "mlops.model_name": self.model_name,
            "mlops.estimator": self.estimator,
        }
        from mlflow.exceptions import MlflowException

        with self.hook.session() as client:
            try:
                experiment_id = self.hook.ensure_experiment(client, self.experiment_name or self.model_name)
                run_id = self._reuse_or_clean(client, experiment_id, identity, data_fingerprint)
                if run_id is None:
                    run_id = self._log_run(client, experiment_id, result, tags, data_fingerprint)
                artifact_uri = client.get_run(run_id).info.artifact_uri
            except MlflowException as err:
                if err.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
                    raise AirflowFailException(
                        f"MLflow refused the training run of {self.model_name!r}: {err}"
                    ) from None
                raise self.hook.unavailable(err) from err
            except OSError as err:
                raise self.hook.unavailable(err) from err
        MLflowRunLink.persist(context, MLflowRunLink.url(self.hook.settings, experiment_id, run_id))
        return {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "model_uri": f"runs:/{run_id}/{MODEL_ARTIFACT}",
            "holdout_uri": f"{artifact_uri.rstrip('/')}/{lineage.HOLDOUT_ARTIFACT}",
            "training_data_uri": uri,
            "training_data_fingerprint": data_fingerprint,
            "n_train": len(result.train),
            "n_holdout": len(result.holdout),
            "task_type": self.ml_task_type,
            "trigger": trigger,
        }

    # -- MLflow -------------------------------------------------------------------------------------
    def _reuse_or_clean(
        self, client: MlflowClient, experiment_id: str, identity: Mapping[str, str], data_fingerprint: str
    ) -> str | None:
        """End runs an earlier try of this task left RUNNING; return a FINISHED one with the same inputs."""
        if not (identity["dag_id"] and identity["dag_run_id"] and identity["task_id"]):
            return None
        query = " and ".join(
            f"tags.`{key}` = '{_quote(value)}'"
            for key, value in (
                (lineage.DAG_ID, identity["dag_id"]),
                (lineage.RUN_ID, identity["dag_run_id"]),
                (lineage.TASK_ID, identity["task_id"]),
            )
        )
        reusable = None
        for run in client.search_runs(
            [experiment_id], query, max_results=100, order_by=["attributes.start_time ASC"]
        ):
            status = run.info.status
            if status == "RUNNING":
                self.log.warning("Ending run %s left RUNNING by an earlier try as KILLED", run.info.run_id)
                client.set_terminated(run.info.run_id, "KILLED")
            elif (
                status == "FINISHED"
                and reusable is None
                and run.data.tags.get(lineage.TRAINING_DATA_FINGERPRINT) == data_fingerprint
                and run.data.tags.get(lineage.CONFIG_HASH, "") == (self.config_hash or "")
                and run.data.tags.get("mlops.estimator") == self.estimator
                and run.data.tags.get("mlops.params") == _json_param(self.estimator_params or {})
                and run.data.tags.get("mlops.complete") == "true"
            ):
                reusable = run.info.run_id
        if reusable:
            self.log.info(
                "Reusing run %s finished by an earlier try of this task (same data and config)", reusable
            )
        return reusable

    def _log_run(
        self,
        client: MlflowClient,
        experiment_id: str,
        result: TrainingResult,
        tags: dict[str, str],
        data_fingerprint: str,
    ) -> str:
        import mlflow
        from mlflow.models import infer_signature

        from mlops_provider.core.metrics import compute_metrics

        # training-set metrics are a sanity check (over/underfitting): a fixed sample is enough
        X_fit, y_fit = result.X_train, result.train[self.target]
        if len(X_fit) > TRAIN_METRICS_MAX_ROWS:
            X_fit = X_fit.sample(n=TRAIN_METRICS_MAX_ROWS, random_state=self.random_state)
            y_fit = y_fit.loc[X_fit.index]
        train_report = compute_metrics(result.model, X_fit, y_fit, self.ml_task_type)
        example = result.X_train.head(INPUT_EXAMPLE_ROWS)
        signature = infer_signature(example, result.model.predict(example))
        params = {
            "estimator": self.estimator,
            "task_type": self.ml_task_type,
            "test_size": self.test_size,
            "random_state": self.random_state,
            "n_features": len(result.features),
            "preprocessed": result.preprocessed,
            **{f"param.{k}": _json_param(v) for k, v in (self.estimator_params or {}).items()},
        }
        run_tags = {**tags, "mlops.params": _json_param(self.estimator_params or {})}
        identity = f"{tags[lineage.DAG_ID]}.{tags[lineage.TASK_ID]}" if tags[lineage.DAG_ID] else "manual"
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=f"{self.model_name}-{identity}", tags=run_tags
        ) as run:
            mlflow.log_params(params)
            mlflow.log_metrics({f"train_{k}": v for k, v in train_report.values.items() if v is not None})
            mlflow.log_metrics({"n_train": len(result.train), "n_holdout": len(result.holdout)})
            with quiet_serialization():
                mlflow.sklearn.log_model(
                    result.model,
                    name=MODEL_ARTIFACT,
                    signature=signature,
                    input_example=example,
                    pip_requirements=pip_requirements(),
                    **serialization_options(result.model),
                )
            _log_frame(result.holdout, lineage.HOLDOUT_ARTIFACT)
            mlflow.set_tag("mlops.complete", "true")
            return run.info.run_id


def _log_frame(frame: pd.DataFrame, artifact: str) -> None:
    import mlflow

    directory, _, name = artifact.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(path, artifact_path=directory or None)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _code_version() -> str:
    from mlops_provider import __version__

    return __version__
