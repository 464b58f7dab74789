"""MLflow runs, artifacts and models: the training run and its lineage, the holdout, the evaluation
record, and every model log and load the provider makes.

Models are logged with skops, and only when every type they hold is on the provider's allowlist;
cloudpickle only for models skops cannot serialise and only when the log opts in. The sha256 of the
logged model is recorded as the run tag ``mlops.model_sha256`` (registration copies it to the version).
Every load goes through :mod:`mlops_provider.hooks.model_safety` under the hook's ``load_policy``:
the hash is checked, pickle refused, skops types checked against the provider's allowlist, before
anything is deserialised. Requirements are pinned from this environment (inferring them costs seconds
per model).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.core import lineage
from mlops_provider.core.scoring import ColumnSpec
from mlops_provider.exceptions import InvalidInputError, MLflowRequestError
from mlops_provider.hooks.mlflow import (
    REFUSED_CODES,
    MLflowHook,
    download_listed,
    error_code,
    is_mlflow_error,
    run_artifact_repo,
)
from mlops_provider.hooks.model_safety import (
    SHA256_TAG,
    ModelArtifact,
    ModelLoadPolicy,
    check_digest,
    check_loadable,
    deserialize,
    download_model,
    logged_digest,
    parse_model_uri,
    pip_requirements,
    quiet_serialization,
    read_artifact,
    signature_inputs,
    skops_options,
)

if TYPE_CHECKING:
    import pandas as pd

MODEL_ARTIFACT = "model"
METRIC_PREFIX = "holdout_"
IMPORTANCE_ARTIFACT = "evaluation/permutation_importance.json"
SLICES_ARTIFACT = "evaluation/slice_metrics.json"
# Written last by EvaluateModelOperator; PromoteModelOperator reuses the challenger's numbers from it.
HOLDOUT_RECORD_ARTIFACT = "evaluation/holdout_metrics.json"
COMPLETE_TAG = "mlops.complete"


@dataclass
class RunLineage:
    """What a training run recorded about its inputs (its mlops.* tags)."""

    run_id: str
    features: list[str]
    target: str
    task_type: str | None
    experiment_id: str = ""
    complete: bool = False


@dataclass
class TrainingRunLog:
    """Everything a training run logs: the fitted model and what describes it."""

    experiment_id: str
    run_name: str
    tags: Mapping[str, str]
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    model: Any
    input_example: Any
    holdout: Any
    # cloudpickle (code runs at load) for a model skops cannot serialise; otherwise such a model fails
    allow_cloudpickle: bool = False
    extra_trusted_types: Sequence[str] = ()


@dataclass
class LoadedModel:
    """A verified, loaded model: the estimator, its logged input signature (None if none) and sha256."""

    model: Any
    inputs: list[ColumnSpec] | None
    digest: str


def serialization_options(model: Any, policy: ModelLoadPolicy | None = None) -> dict[str, Any]:
    """skops when the provider can load the model back; cloudpickle only if ``policy`` opts in."""
    with quiet_serialization():
        return skops_options(model, policy or ModelLoadPolicy())


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


class MLflowModelHook(MLflowHook):
    """Runs, artifacts and models (see the module docstring); every call translated by ``errors``.

    :param load_policy: what model loads may do (default: the secure :class:`ModelLoadPolicy`).
    """

    def __init__(
        self,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        load_policy: ModelLoadPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(mlflow_conn_id, **kwargs)
        self.load_policy = load_policy or ModelLoadPolicy()
        self._run_repos: dict[str, Any] = {}  # run id -> its artifact repository

    # -- runs ----------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Any:
        """The run; an unknown id fails the task naming it."""
        with self.client(f"reading run {run_id}") as client:
            try:
                return client.get_run(run_id)
            except Exception as err:
                if error_code(err) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise MLflowRequestError(f"MLflow run {run_id!r} does not exist") from None
                raise

    def run_lineage(self, run_id: str) -> RunLineage:
        """The lineage tags of a run logged by TrainModelOperator; fails naming the run otherwise."""
        run = self.get_run(run_id)
        tags = run.data.tags
        try:
            features = json.loads(tags[lineage.FEATURES])
            target = tags[lineage.TARGET]
        except (KeyError, ValueError):
            raise MLflowRequestError(
                f"MLflow run {run_id} has no lineage tags {lineage.FEATURES!r}/{lineage.TARGET!r}: "
                "it was not logged by TrainModelOperator"
            ) from None
        return RunLineage(
            run_id=run_id,
            features=list(features),
            target=target,
            task_type=tags.get(lineage.TASK_TYPE),
            experiment_id=run.info.experiment_id,
            complete=tags.get(COMPLETE_TAG) == "true",
        )

    def runs_of_task(self, experiment_id: str, identity: Mapping[str, str]) -> list[Any]:
        """Runs a task instance (dag id, dag run id, task id) logged, oldest first."""
        query = " and ".join(
            f"tags.`{key}` = '{_quote(value)}'"
            for key, value in (
                (lineage.DAG_ID, identity["dag_id"]),
                (lineage.RUN_ID, identity["dag_run_id"]),
                (lineage.TASK_ID, identity["task_id"]),
            )
        )
        with self.client("searching earlier runs of this task") as client:
            return list(
                client.search_runs(
                    [experiment_id], query, max_results=100, order_by=["attributes.start_time ASC"]
                )
            )

    def end_run(self, run_id: str, status: str) -> None:
        """Mark a run terminated with ``status`` (``KILLED``, ``FAILED``, ``FINISHED``)."""
        with self.client(f"ending run {run_id}") as client:
            client.set_terminated(run_id, status)

    def artifact_uri(self, run_id: str) -> str:
        return str(self.get_run(run_id).info.artifact_uri)

    def log_training_run(self, log: TrainingRunLog) -> str:
        """Log params, metrics, the model (with signature and input example) and the holdout; the run id."""
        import mlflow
        from mlflow.models import infer_signature

        policy = ModelLoadPolicy(
            extra_trusted_types=(*self.load_policy.extra_trusted_types, *log.extra_trusted_types),
            allow_cloudpickle_fallback=log.allow_cloudpickle or self.load_policy.allow_cloudpickle_fallback,
        )
        options = serialization_options(log.model, policy)  # refuses before any run is started
        with self.session(), self.errors("logging the training run"):
            signature = infer_signature(log.input_example, log.model.predict(log.input_example))
            run = mlflow.start_run(
                experiment_id=log.experiment_id, run_name=log.run_name, tags=dict(log.tags)
            )
            run_id = str(run.info.run_id)
            try:
                mlflow.log_params(dict(log.params))
                mlflow.log_metrics(dict(log.metrics))
                with quiet_serialization():
                    info = mlflow.sklearn.log_model(
                        log.model,
                        name=MODEL_ARTIFACT,
                        signature=signature,
                        input_example=log.input_example,
                        pip_requirements=pip_requirements(log.model),
                        **options,
                    )
                mlflow.set_tag(SHA256_TAG, logged_digest(info.model_uri))
                _log_frame(log.holdout, lineage.HOLDOUT_ARTIFACT)
                mlflow.set_tag(COMPLETE_TAG, "true")
            except BaseException:
                self._end_failed(run_id)
                raise
            mlflow.end_run("FINISHED")
            return run_id

    def _end_failed(self, run_id: str) -> None:
        """
        The interrupted-run contract: a try that raises ends its run FAILED; if MLflow cannot be told,
        the run stays RUNNING and the next try of the task instance ends it KILLED. The original error
        is the one the task reports.
        """
        import mlflow

        try:
            mlflow.end_run("FAILED")
        except Exception as err:
            self.log.warning(
                "Could not end MLflow run %s as FAILED (%s); the next try ends it KILLED",
                run_id,
                self._scrub(str(err)),
            )

    # -- models --------------------------------------------------------------------------------
    def load_model(self, model_uri: str) -> Any:
        """The sklearn model at ``model_uri`` (``runs:/...`` or ``models:/<name>/<version>``), verified."""
        return self.load_verified(model_uri).model

    def load_verified(self, model_uri: str) -> LoadedModel:
        """
        Download, check the recorded sha256 and the load policy, then deserialise (see
        :mod:`~mlops_provider.hooks.model_safety`); the model with its logged input signature.
        """
        with self._checked_artifact(model_uri) as (artifact, trusted, what):
            with quiet_serialization():
                model = deserialize(artifact, trusted, self.load_policy, what)
            return LoadedModel(model, signature_inputs(artifact), artifact.digest)

    def verify_model(self, model_uri: str) -> str:
        """Every check :meth:`load_verified` makes, without deserialising; the artifact's sha256."""
        with self._checked_artifact(model_uri) as (artifact, _, _):
            return artifact.digest

    @contextmanager
    def _checked_artifact(self, model_uri: str) -> Iterator[tuple[ModelArtifact, list[str], str]]:
        expected, what = self._recorded_digest(model_uri)
        with tempfile.TemporaryDirectory() as tmp:
            with self.session(), self.errors(f"downloading {model_uri}"):
                local = download_model(model_uri, tmp)
            artifact = read_artifact(local, what)
            check_digest(artifact, expected, self.load_policy, what)
            with quiet_serialization():
                trusted = check_loadable(artifact, self.load_policy, what)
            yield artifact, trusted, what

    def _recorded_digest(self, model_uri: str) -> tuple[str | None, str]:
        """The sha256 recorded for the model (version tag, else its run's) and how to name it."""
        kind, owner, item = parse_model_uri(model_uri)
        if kind == "run":
            return self.get_run(owner).data.tags.get(SHA256_TAG), f"model {item!r} of MLflow run {owner}"
        what = f"{owner} version {item}"
        with self.client(f"reading {what}") as client:
            mv = client.get_model_version(owner, item)
        if str(mv.status) != "READY":
            raise InvalidInputError(f"{what} is {mv.status}, not READY: its model cannot be loaded yet")
        expected = (mv.tags or {}).get(SHA256_TAG)
        if expected is None and mv.run_id:
            try:
                expected = self.get_run(mv.run_id).data.tags.get(SHA256_TAG)
            except MLflowRequestError:  # the run was deleted: the version's tags are all there is
                expected = None
        return expected, what

    def logged_model_id(self, run_id: str, experiment_id: str, name: str = MODEL_ARTIFACT) -> str | None:
        """The MLflow 3 logged-model id ``runs:/<run_id>/<name>`` resolves to; ``None`` when unknown."""
        with self.session() as client:
            try:
                found = client.search_logged_models(
                    experiment_ids=[experiment_id],
                    filter_string=f"name = '{name}' AND source_run_id = '{run_id}'",
                    max_results=2,
                )
            except Exception as err:  # a server without logged models: the record names no model id
                if is_mlflow_error(err):
                    return None
                raise self.translate_error(err, "searching logged models") from None
        return found[0].model_id if len(found) == 1 else None

    # -- artifacts -----------------------------------------------------------------------------
    def load_holdout(self, run_id: str) -> pd.DataFrame:
        """The holdout a training run logged (artifact ``holdout/holdout.parquet``)."""
        import pandas as pd

        with self.session(), tempfile.TemporaryDirectory() as tmp:
            try:
                path = self._run_file(run_id, lineage.HOLDOUT_ARTIFACT, tmp)
            except Exception as err:
                if not (
                    isinstance(err, FileNotFoundError)
                    or (is_mlflow_error(err) and error_code(err) in REFUSED_CODES)
                ):
                    raise self.translate_error(err, f"reading the holdout of run {run_id}") from None
                path, why = None, self._scrub(str(err))
            else:
                why = "no such file"
            if path is None:
                raise MLflowRequestError(
                    f"MLflow run {run_id}: cannot read its holdout artifact {lineage.HOLDOUT_ARTIFACT!r} ({why})"
                )
            return pd.read_parquet(path)

    def read_evaluation_record(self, run_id: str) -> tuple[Any, str]:
        """
        The evaluation record (``evaluation/holdout_metrics.json``) of a training run, parsed, or
        ``None`` and why not. A missing record is normal; other MLflow errors are translated.
        """
        missing = f"run {run_id} has no {HOLDOUT_RECORD_ARTIFACT} (EvaluateModelOperator did not run)"
        with self.session(), tempfile.TemporaryDirectory() as tmp:
            try:
                path = self._run_file(run_id, HOLDOUT_RECORD_ARTIFACT, tmp)
            except OSError as err:
                return None, f"cannot read {HOLDOUT_RECORD_ARTIFACT} of run {run_id} ({err})"
            except Exception as err:
                if error_code(err) == "RESOURCE_DOES_NOT_EXIST":
                    return None, missing
                if is_mlflow_error(err):
                    raise self.translate_error(
                        err, f"reading the evaluation record of run {run_id}"
                    ) from None
                raise
            if path is None:
                return None, missing
            try:
                return json.loads(path.read_text(encoding="utf-8")), ""
            except (OSError, ValueError) as err:
                return None, f"{HOLDOUT_RECORD_ARTIFACT} of run {run_id} is not readable JSON ({err})"

    def _run_file(self, run_id: str, path: str, dst: str) -> Path | None:
        """``path`` of the run's own artifacts downloaded into ``dst`` (inside a session); None when the
        run has no such file. The run's artifact store is looked up once per hook."""
        if (repo := self._run_repos.get(run_id)) is None:
            with self.session() as client:
                repo = self._run_repos[run_id] = run_artifact_repo(
                    client.get_run(run_id), self.settings.tracking_uri
                )
        return download_listed(repo, (path,), dst)[path]

    def log_evaluation(
        self,
        run_id: str,
        values: Mapping[str, float | None],
        non_finite: Sequence[str],
        slices: Mapping[str, Any] | None = None,
        importance: Mapping[str, Any] | None = None,
    ) -> None:
        """Holdout metrics (``holdout_*``), the non-finite list, slice metrics and importance."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(f"{METRIC_PREFIX}{k}", v, now, 0) for k, v in values.items() if v is not None]
        with self.client(f"logging the evaluation of run {run_id}") as client:
            client.log_batch(run_id, metrics=metrics)
            client.set_tag(run_id, "mlops.non_finite_metrics", json.dumps(list(non_finite)))
            if slices:
                client.log_dict(run_id, dict(slices), SLICES_ARTIFACT)
            if importance is not None:
                client.log_dict(run_id, dict(importance), IMPORTANCE_ARTIFACT)

    def write_evaluation_record(self, run_id: str, record: Mapping[str, Any]) -> None:
        """The record promote may reuse; written last, so its presence means the rest is logged."""
        with self.client(f"writing the evaluation record of run {run_id}") as client:
            client.log_dict(run_id, dict(record), HOLDOUT_RECORD_ARTIFACT)


def _log_frame(frame: pd.DataFrame, artifact: str) -> None:
    import mlflow

    directory, _, name = artifact.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(path, artifact_path=directory or None)
