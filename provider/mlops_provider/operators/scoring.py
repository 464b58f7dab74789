"""Batch scoring with the champion model, pinned to one version for the whole run; other versions in shadow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.core import lineage
from mlops_provider.core.manifest import Group, Plan, part_prefix
from mlops_provider.core.scoring import as_shares
from mlops_provider.exceptions import airflow_errors
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.openlineage import ScoringLineageMixin
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.hooks.scoring import (
    BatchReader,
    ScoringOutput,
    ScoringRun,
    check_unseen,
    new_attempt,
    record_scored_batch,
    shadow_versions,
)
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.mlflow import MLflowModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context


class BatchScoreOperator(LeanSetattrMixin, MLflowHookMixin, ScoringLineageMixin, BaseOperator):
    """
    Score a dataset with ``models:/<model_name>@<alias>`` and write the predictions atomically.

    The alias is resolved ONCE to a version and that exact version (``models:/<name>/<version>``) scores
    every chunk, so a promotion during the run cannot mix two models. The output holds the
    ``id_columns``, ``row`` (the input row number), ``prediction``, with ``probabilities`` one
    ``proba_<class>`` per class, ``model_version``, ``alias``, ``scored_at`` and ``scoring_date`` (the
    run's logical date; see :mod:`mlops_provider.core.predictions`); it is written to a temporary name
    and then renamed (or moved, on object stores). No champion, or a batch without rows: the task is
    skipped (and nothing is written).

    ``shadow_aliases`` (e.g. ``challenger``, ``previous_champion``) that point at another version score
    the same batch too, one model load each, into ``<output>.shadow.<ext>``: never served, kept for the
    performance monitor. A shadow version that cannot score the batch is logged and left out; the
    served predictions never depend on it. With ``record_batch`` the batch is recorded in MLflow
    (``<model>-monitoring``, ``mlops.check=scoring``), which is how the performance monitor finds it.

    Before scoring, the model is verified (its recorded sha256; no pickle; skops types on the
    provider's allowlist: see :mod:`mlops_provider.hooks.model_safety`) and the batch is checked against
    the model's logged signature and the model itself (:mod:`mlops_provider.core.scoring`): missing
    columns, text in a numeric column, numbers in a text column, infinite values, and missing values
    the model cannot take each fail the task without a retry, naming the columns. The share of rows
    with a category the model never saw is returned per column (``unseen_share``); above
    ``max_unseen_share`` the task warns or fails (``on_unseen``).

    :param model_name: registered model name. (templated)
    :param data_uri: data to score (path, glob or URI; CSV/Parquet). (templated)
    :param output_uri: where to write predictions (``.csv`` or ``.parquet``). (templated)
    :param alias: alias to resolve. (templated)
    :param chunk_size: rows per predict call.
    :param id_columns: input columns copied to the output (e.g. an id). (templated)
    :param base_dir: folder relative local paths resolve against. (templated)
    :param data_conn_id: Airflow connection for remote data URIs (input and output). (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param max_unseen_share: largest share (0-1) of rows with an unseen category allowed in any column;
        ``None``: no limit, shares only reported. (templated)
    :param on_unseen: ``warn`` or ``fail`` when a column exceeds ``max_unseen_share``. (templated)
    :param allow_pickle: load a pickle/cloudpickle model (can run arbitrary code; trusted registry only).
    :param extra_trusted_types: skops types trusted besides scikit-learn, numpy and scipy. (templated)
    :param allow_unverified_models: load a version without a recorded sha256 (logged by older code).
    :param probabilities: also write a classifier's class probabilities.
    :param shadow_aliases: aliases whose versions score the batch in shadow when they exist. (templated)
    :param record_batch: record the scored batch in MLflow for the performance monitor.
    :return: ``{"model_name", "version", "rows", "output_uri", "unseen_share", "shadow",
        "shadow_output_uri", "monitoring_run_id"}``
    """

    template_fields: Sequence[str] = (
        "model_name",
        "data_uri",
        "output_uri",
        "alias",
        "id_columns",
        "base_dir",
        "data_conn_id",
        "mlflow_conn_id",
        "max_unseen_share",
        "on_unseen",
        "extra_trusted_types",
        "shadow_aliases",
    )
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#d0ffd8"
    hook_class = MLflowRegistryHook

    def __init__(
        self,
        *,
        model_name: str,
        data_uri: str,
        output_uri: str,
        alias: str = "champion",
        chunk_size: int = 100_000,
        id_columns: Sequence[str] | None = None,
        base_dir: str | None = None,
        data_conn_id: str | None = None,
        mlflow_conn_id: str = MLflowRegistryHook.default_conn_name,
        max_unseen_share: float | None = None,
        on_unseen: str = "warn",
        allow_pickle: bool = False,
        extra_trusted_types: Sequence[str] | None = None,
        allow_unverified_models: bool = False,
        probabilities: bool = False,
        shadow_aliases: Sequence[str] | None = None,
        record_batch: bool = False,
        part: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.data_uri = data_uri
        self.output_uri = output_uri
        self.alias = alias
        self.chunk_size = chunk_size
        self.id_columns = id_columns
        self.base_dir = base_dir
        self.data_conn_id = data_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.max_unseen_share = max_unseen_share
        self.on_unseen = on_unseen
        self.allow_pickle = allow_pickle
        self.extra_trusted_types = extra_trusted_types
        self.allow_unverified_models = allow_unverified_models
        self.probabilities = probabilities
        self.shadow_aliases = shadow_aliases
        self.record_batch = record_batch
        self.part = part

    def execute(self, context: Context) -> dict[str, Any]:
        max_share = self._check_arguments()
        run = self._scoring_run(context)
        if self.part is not None:
            return self._score_group(run)
        source = run.reader.uri
        version = self.hook.alias_version(self.model_name, self.alias)
        if version is None:
            raise AirflowSkipException(
                f"{self.model_name}@{self.alias} does not exist (no champion yet): nothing to score {source} with"
            )
        files = run.reader.files()
        versions = {
            self.alias: version,
            **shadow_versions(self.hook, self.model_name, self.shadow_aliases, version),
        }
        self.log.info(
            "Scoring %s with %s version %s (resolved from @%s)", source, self.model_name, version, self.alias
        )
        served, shadows = run.run(files, versions, part_prefix("all", new_attempt()))
        if served.rows == 0:
            for scorer in (served, *shadows):
                scorer.writer.discard()
            raise AirflowSkipException(f"{source} has no rows: nothing to score, no output written")
        shares = as_shares(served.unseen, served.rows)
        try:
            check_unseen(shares, max_share, self.on_unseen, served.where, self.log)
        except AirflowFailException:
            for scorer in (served, *shadows):
                scorer.writer.discard()
            raise
        about = self._about(context, versions, source)
        written = run.output.commit(served.writer, about)
        shadow_written = run.output.shadow().commit_all([s.writer for s in shadows], about)
        MLflowModelVersionLink.persist(context, self.hook.model_version_url(self.model_name, version))
        summary = {
            "model_name": self.model_name,
            "version": str(version),
            "rows": served.rows,
            "output_uri": written,
            "unseen_share": shares,
            "shadow": {s.alias: s.version for s in shadows},
            "shadow_output_uri": shadow_written,
        }
        if self.record_batch:
            summary["monitoring_run_id"] = record_scored_batch(
                self.mlflow_conn_id, context, self.alias, summary, run.options.stamp
            )
        return self.keep_for_lineage(summary)

    def _about(self, context: Context, versions: dict[str, str], source: str) -> dict[str, Any]:
        ti = context["ti"]
        return {
            "model_name": self.model_name,
            "versions": versions,
            "source": source,
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
        }

    def _scoring_run(self, context: Context) -> ScoringRun:
        from mlops_provider.core.batch_scoring import ScoringOptions

        data = DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir)
        options = ScoringOptions(
            id_columns=tuple(self.id_columns or ()),
            probabilities=bool(self.probabilities),
            stamp={"scored_at": datetime.now(UTC), "scoring_date": lineage.logical_date(context)},
        )
        reader = BatchReader(data, self.data_uri, self.chunk_size)
        return ScoringRun(
            self.hook, self.model_name, reader, ScoringOutput(data, self.output_uri), options, self.log
        )

    def _score_group(self, run: ScoringRun) -> dict[str, Any]:
        """A mapped task: score one group of the plan's files into parts, record what it wrote."""
        from mlops_provider.core.manifest import GroupResult, group_name

        if not run.output.is_folder:
            raise AirflowFailException(
                f"output_uri {run.output.uri!r}: mapped scoring writes a folder (no file suffix)"
            )
        plan, group = self._planned_group(run)
        self.log.info(
            "Scoring group %s of %s: %d file(s), %d rows, versions %s",
            group_name(group.index),
            plan.source,
            len(group.files),
            group.rows,
            plan.versions,
        )
        served, shadows = run.run(
            group.files, plan.versions, part_prefix(group_name(group.index), new_attempt()), group.row_offset
        )
        result = GroupResult(
            plan_id=plan.plan_id,
            group=group.index,
            versions={s.alias: s.version for s in (served, *shadows)},
            rows=served.rows,
            files={s.alias: s.writer.close() for s in (served, *shadows)},  # type: ignore[attr-defined]
            unseen=served.unseen,
            left_out=run.left_out,
        )
        run.output.write_group(result)
        return {"part": group.index, "rows": served.rows, "files": len(result.files[served.alias])}

    def _planned_group(self, run: ScoringRun) -> tuple[Plan, Group]:
        """The plan and this task's group; a plan that is not this task's, or names files outside its
        ``data_uri``, fails (the plan file lies in the output folder: it crosses a trust boundary)."""
        plan = run.output.read_plan()
        where = f"the plan at {run.output.plan_uri}"
        part = self.part
        if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part < len(plan.groups):
            raise AirflowFailException(f"part {part!r} is not a group of {where}")
        if (plan.model_name, plan.source) != (self.model_name, run.reader.uri):
            raise AirflowFailException(
                f"{where} is for {plan.model_name!r} scoring {plan.source}, not {self.model_name!r} "
                f"scoring {run.reader.uri}"
            )
        group = plan.groups[part]
        outside = sorted(set(group.files) - set(run.reader.files()))
        if outside:
            raise AirflowFailException(f"{where} names file(s) outside {run.reader.uri}: {outside[:5]}")
        return plan, group

    def _check_arguments(self) -> float | None:
        """The validated ``max_unseen_share``; the load policy set on the hook."""
        from mlops_provider.core.scoring import check_unseen_options
        from mlops_provider.hooks.model_safety import ModelLoadPolicy

        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise AirflowFailException(f"chunk_size must be a positive integer, got {self.chunk_size!r}")
        with airflow_errors():
            max_share = check_unseen_options(self.max_unseen_share, self.on_unseen)
        self.hook.load_policy = ModelLoadPolicy.from_args(
            allow_pickle=self.allow_pickle,
            extra_trusted_types=self.extra_trusted_types,
            allow_unverified=self.allow_unverified_models,
        )
        return max_share
