"""MLflow records of monitoring checks, and the registered-model summary tags the Models page reads.

* :meth:`MonitoringHook.record_check` writes one run per check in the experiment ``<model>-monitoring``
  (experiment tags ``mlops.model``, ``mlops.kind=monitoring``), found again by its ``mlops.check_key``
  tag: a retry or clear-and-rerun of the task instance updates that run. When concurrent first tries
  both created one, every writer keeps the oldest (start time, then run id) and deletes the others.
  It then sets ``mlops.last_check.<check>`` and ``mlops.revision`` on the registered model, if the
  model is registered (a check before any registration only records its run).
* :func:`set_model_tags` sets registered-model tags and a new ``mlops.revision`` (set last, so a reader
  that sees the new revision sees the new tags); the registry hook uses it for its own summary tags.

The shapes (tags, metrics, bounded JSON) come from :mod:`mlops_provider.core.monitoring`. A failure is
translated by :meth:`~mlops_provider.hooks.mlflow.MLflowHook.client`: unreachable MLflow is retried.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlops_provider.core.monitoring import (
    CHECK_KEY_TAG,
    KIND_TAG,
    LAST_CHECK_TAG,
    MODEL_TAG,
    OPTIONAL_RUN_TAGS,
    REVISION_TAG,
    CheckRecord,
    last_check_value,
    monitoring_experiment,
    revision,
    supersedes,
)
from mlops_provider.hooks.mlflow import MLflowHook, error_code, is_mlflow_error

if TYPE_CHECKING:
    from mlflow import MlflowClient


def set_model_tags(client: MlflowClient, model_name: str, tags: Mapping[str, str]) -> bool:
    """Set registered-model ``tags`` then a new revision; ``False`` (nothing set) if it is not registered."""
    try:
        for key, value in {**tags, REVISION_TAG: revision()}.items():
            _set_model_tag(client, model_name, key, value)
    except Exception as err:
        if is_mlflow_error(err) and error_code(err) == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def _set_model_tag(client: MlflowClient, model_name: str, key: str, value: str, tries: int = 3) -> None:
    """MLflow's SQL store sets a tag by select-then-insert: two writers of a new key race, and the loser
    gets the table's unique-key error. Setting a tag is idempotent, so the loser sets it again."""
    for attempt in range(tries):
        try:
            client.set_registered_model_tag(model_name, key, value)
            return
        except Exception as err:
            text = str(err).lower()
            lost_race = is_mlflow_error(err) and ("unique constraint" in text or "duplicate key" in text)
            if not lost_race or attempt == tries - 1:
                raise


class MonitoringHook(MLflowHook):
    """Monitoring runs and summary tags (see the module docstring).

    Usage::

        record = drift_record(model="weather", summary=summary, columns=columns, identity=identity,
                              logical_date=logical_date, checked_at=now)
        run_id = MonitoringHook().record_check(record)
    """

    def record_check(self, record: CheckRecord) -> str:
        """Write ``record`` as the task instance's monitoring run (created or updated); its run id."""
        experiment_id = self.monitoring_experiment_id(record.model)
        with self.client(f"recording the {record.check} check of {record.model!r}") as client:
            run_id = self._run_of(client, experiment_id, record)
            self._write(client, run_id, record)
            tag = LAST_CHECK_TAG.format(check=record.check)
            tags = (
                {tag: last_check_value(record, run_id)}
                if supersedes(self._tag(client, record, tag), record)
                else {}
            )
            if not set_model_tags(client, record.model, tags):
                self.log.info(
                    "%s is not a registered model yet: only its monitoring run is recorded", record.model
                )
        self.log.info("Recorded the %s check of %s as MLflow run %s", record.check, record.model, run_id)
        return run_id

    @staticmethod
    def _tag(client: MlflowClient, record: CheckRecord, tag: str) -> str | None:
        """The registered model's ``tag`` (None when it is not registered or has none)."""
        try:
            value = client.get_registered_model(record.model).tags.get(tag)
            return None if value is None else str(value)
        except Exception as err:
            if is_mlflow_error(err) and error_code(err) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def monitoring_experiment_id(self, model: str) -> str:
        """The id of ``<model>-monitoring``, created (or restored) with its tags when needed."""
        name = monitoring_experiment(model)
        tags = {MODEL_TAG: model, KIND_TAG: "monitoring"}
        with self.client(f"creating experiment {name!r}") as client:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    return str(client.create_experiment(name, artifact_location=self._location(), tags=tags))
                except Exception as err:
                    experiment = client.get_experiment_by_name(name)  # created concurrently
                    if experiment is None or not is_mlflow_error(err):
                        raise
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            for key, value in tags.items():
                if experiment.tags.get(key) != value:
                    client.set_experiment_tag(experiment.experiment_id, key, value)
            return str(experiment.experiment_id)

    def _location(self) -> str | None:
        # monitoring runs log no artifacts; a fixed folder keeps hostile model names out of paths
        location = self.settings.artifact_location
        return f"{location.rstrip('/')}/monitoring" if location else None

    def _run_of(self, client: MlflowClient, experiment_id: str, record: CheckRecord) -> str:
        runs = self._runs(client, experiment_id, record.key)
        if not runs:
            client.create_run(
                experiment_id, start_time=record.checked_at_ms, tags=record.tags, run_name=record.run_name
            )
            runs = self._runs(client, experiment_id, record.key)
        kept, *duplicates = runs
        for duplicate in duplicates:
            self.log.warning(
                "Deleting monitoring run %s: run %s records the same task instance",
                duplicate.info.run_id,
                kept.info.run_id,
            )
            client.delete_run(duplicate.info.run_id)
        return str(kept.info.run_id)

    @staticmethod
    def _runs(client: MlflowClient, experiment_id: str, key: str) -> list[Any]:
        """The task instance's active runs, oldest first (start time, then run id: the same order for all)."""
        found = client.search_runs([experiment_id], f"tags.`{CHECK_KEY_TAG}` = '{key}'", max_results=50)
        return sorted(found, key=lambda run: (run.info.start_time or 0, run.info.run_id))

    @staticmethod
    def _write(client: MlflowClient, run_id: str, record: CheckRecord) -> None:
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, 0) for key, value in record.metrics.items()]
        tags = [RunTag(key, value) for key, value in record.tags.items()]
        client.log_batch(run_id, metrics=metrics, tags=tags)
        stale = set(OPTIONAL_RUN_TAGS) - set(record.tags)
        for key in stale & set(client.get_run(run_id).data.tags):
            client.delete_tag(run_id, key)  # an earlier try had it, this one has not
        client.set_terminated(run_id, "FINISHED", end_time=now)
