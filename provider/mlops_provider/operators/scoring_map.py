"""Mapped batch scoring: plan the groups of input files, let mapped ``BatchScoreOperator`` tasks score
one group each (on any Celery worker), then publish their parts as one output.

A DAG (what ``<name>_batch_score`` builds with ``scoring.partitions_per_task``)::

    plan = PlanBatchScoringOperator(task_id="plan_scoring", ..., partitions_per_task=4)
    score = BatchScoreOperator.partial(task_id="score_batch", ...).expand(part=plan.output)
    publish = PublishBatchScoresOperator(task_id="publish_scores", ...)
    plan >> score >> publish

The plan pins the versions (``@alias`` and every shadow alias resolved once) and the files; each
mapped task scores its group into part files and records them (``_parts/<group>.json``); the publisher
checks that every group wrote its part for THIS plan with those versions and as many rows as its files
hold, then writes the manifest (the output appears whole) and deletes the parts no manifest lists. A
retried or cleared mapped task rewrites only its own group; a re-planned run needs every group again.
See :mod:`mlops_provider.core.manifest` for the folder's layout.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.core import lineage
from mlops_provider.core.manifest import Plan, check_results, make_groups, unseen_shares
from mlops_provider.exceptions import airflow_errors
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.hooks.scoring import (
    BatchReader,
    ScoringOutput,
    check_unseen,
    record_scored_batch,
    shadow_versions,
)
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.mlflow import MLflowModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class PlanBatchScoringOperator(LeanSetattrMixin, MLflowHookMixin, BaseOperator):
    """
    Plan a mapped scoring run: resolve ``@alias`` (and the shadow aliases) once, list the batch's files
    (a glob, a folder at any depth, a published folder's manifest), count their rows, group them
    ``partitions_per_task`` to a task, and write the plan to ``<output_uri>/_parts/plan.json``.

    Returns the group numbers, for ``BatchScoreOperator.partial(...).expand(part=plan.output)``. No
    version under the alias, or a batch without rows: skipped (so are the mapped tasks and the publisher).

    :param model_name: registered model name. (templated)
    :param data_uri: the batch: path, glob, folder or URI (CSV/Parquet). (templated)
    :param output_uri: the output folder (no file suffix). (templated)
    :param alias: the served alias. (templated)
    :param shadow_aliases: aliases whose versions also score the batch, never served. (templated)
    :param partitions_per_task: input files per mapped task.
    :param base_dir: folder relative local paths resolve against. (templated)
    :param data_conn_id: Airflow connection for remote data. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    """

    template_fields: Sequence[str] = (
        "model_name",
        "data_uri",
        "output_uri",
        "alias",
        "shadow_aliases",
        "base_dir",
        "data_conn_id",
        "mlflow_conn_id",
    )
    ui_color = "#d0ffd8"
    hook_class = MLflowRegistryHook

    def __init__(
        self,
        *,
        model_name: str,
        data_uri: str,
        output_uri: str,
        alias: str = "champion",
        shadow_aliases: Sequence[str] | None = None,
        partitions_per_task: int = 1,
        base_dir: str | None = None,
        data_conn_id: str | None = None,
        mlflow_conn_id: str = MLflowRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.data_uri = data_uri
        self.output_uri = output_uri
        self.alias = alias
        self.shadow_aliases = shadow_aliases
        self.partitions_per_task = partitions_per_task
        self.base_dir = base_dir
        self.data_conn_id = data_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> list[int]:
        per_task = self.partitions_per_task
        if isinstance(per_task, bool) or not isinstance(per_task, int) or per_task < 1:
            raise AirflowFailException(f"partitions_per_task must be a positive integer, got {per_task!r}")
        data = DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir)
        output = ScoringOutput(data, self.output_uri)
        if not output.is_folder:
            raise AirflowFailException(
                f"output_uri {output.uri!r}: mapped scoring writes a folder, give one without a file suffix"
            )
        reader = BatchReader(data, self.data_uri, 1)
        version = self.hook.alias_version(self.model_name, self.alias)
        if version is None:
            raise AirflowSkipException(
                f"{self.model_name}@{self.alias} does not exist (no champion yet): nothing to score {reader.uri} with"
            )
        files = reader.files()
        groups = make_groups(files, [reader.rows(f) for f in files], per_task)
        versions = {
            self.alias: str(version),
            **shadow_versions(self.hook, self.model_name, self.shadow_aliases, version),
        }
        plan = Plan(uuid.uuid4().hex, self.model_name, reader.uri, versions, groups)
        if plan.rows == 0:
            raise AirflowSkipException(f"{reader.uri} has no rows: nothing to score, no output written")
        output.write_plan(plan)
        self.log.info(
            "Plan %s: %d rows in %d file(s), %d group(s) of up to %d file(s); versions %s",
            plan.plan_id,
            plan.rows,
            len(files),
            len(groups),
            per_task,
            versions,
        )
        return [g.index for g in groups]


class PublishBatchScoresOperator(LeanSetattrMixin, MLflowHookMixin, BaseOperator):
    """
    Publish a mapped scoring run: check that every group of the plan wrote its part for this plan
    (same versions, as many rows as its files hold), apply ``max_unseen_share`` to the whole batch,
    then write the manifests of the served and the shadow output and delete unlisted parts. Nothing is
    published when a check fails. Returns what ``BatchScoreOperator`` returns.

    :param model_name: registered model name. (templated)
    :param output_uri: the output folder the plan and parts are in. (templated)
    :param alias: the served alias. (templated)
    :param max_unseen_share: largest share (0-1) of rows with an unseen category in any column. (templated)
    :param on_unseen: ``warn`` or ``fail`` above it. (templated)
    :param record_batch: record the scored batch in MLflow for the performance monitor.
    :param base_dir: folder relative local paths resolve against. (templated)
    :param data_conn_id: Airflow connection for remote data. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    """

    template_fields: Sequence[str] = (
        "model_name",
        "output_uri",
        "alias",
        "max_unseen_share",
        "on_unseen",
        "base_dir",
        "data_conn_id",
        "mlflow_conn_id",
    )
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#d0ffd8"
    hook_class = MLflowRegistryHook

    def __init__(
        self,
        *,
        model_name: str,
        output_uri: str,
        alias: str = "champion",
        max_unseen_share: float | None = None,
        on_unseen: str = "warn",
        record_batch: bool = False,
        base_dir: str | None = None,
        data_conn_id: str | None = None,
        mlflow_conn_id: str = MLflowRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.output_uri = output_uri
        self.alias = alias
        self.max_unseen_share = max_unseen_share
        self.on_unseen = on_unseen
        self.record_batch = record_batch
        self.base_dir = base_dir
        self.data_conn_id = data_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core.scoring import check_unseen_options

        with airflow_errors():
            max_share = check_unseen_options(self.max_unseen_share, self.on_unseen)
        output = ScoringOutput(DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir), self.output_uri)
        plan = output.read_plan()
        results = {g.index: output.read_group(g.index) for g in plan.groups}
        with airflow_errors():
            check_results(plan, results, self.alias)
        done = [r for r in results.values() if r is not None]
        shares = unseen_shares(done, plan.rows)
        served_version = plan.versions[self.alias]
        check_unseen(
            shares, max_share, self.on_unseen, f"{plan.source}, scored by version {served_version}", self.log
        )
        ti = context["ti"]
        about = {
            "model_name": self.model_name,
            "versions": plan.versions,
            "source": plan.source,
            "plan_id": plan.plan_id,
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
        }
        served_files = [n for r in done for n in r.files[self.alias]]
        held = output.rows_in(served_files)
        if held != plan.rows:
            raise AirflowFailException(
                f"nothing published for {plan.source}: the parts hold {held} rows, the plan counts {plan.rows}"
            )
        written = output.publish(served_files, plan.rows, about)
        shadow = {
            a: v for a, v in plan.versions.items() if a != self.alias and all(a in r.files for r in done)
        }
        for alias in sorted(set(plan.versions) - set(shadow) - {self.alias}):
            self.log.warning("Shadow @%s left out: not every group scored it", alias)
        shadow_written = None
        if shadow:
            files = [n for r in done for a in shadow for n in r.files[a]]
            shadow_written = output.shadow().publish(files, plan.rows * len(shadow), about)
        MLflowModelVersionLink.persist(context, self.hook.model_version_url(self.model_name, served_version))
        summary = {
            "model_name": self.model_name,
            "version": served_version,
            "rows": plan.rows,
            "output_uri": written,
            "unseen_share": shares,
            "shadow": shadow,
            "shadow_output_uri": shadow_written,
            "groups": len(plan.groups),
        }
        if self.record_batch:
            stamp = {"scoring_date": lineage.logical_date(context), "scored_at": datetime.now(UTC)}
            summary["monitoring_run_id"] = record_scored_batch(
                self.mlflow_conn_id, context, self.alias, summary, stamp
            )
        return summary
