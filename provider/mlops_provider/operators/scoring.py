"""Batch scoring with the champion model, pinned to one version for the whole run; other versions in shadow."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.core import lineage
from mlops_provider.core.predictions import score_in_chunks, shadow_uri, stamp
from mlops_provider.exceptions import airflow_errors
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.openlineage import ScoringLineageMixin
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.mlflow import MLflowModelVersionLink

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from mlops_provider.hooks.models import LoadedModel


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

    def execute(self, context: Context) -> dict[str, Any]:
        max_share = self._check_arguments()
        data = DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir)
        source = data.resolve(self.data_uri)
        version = self.hook.alias_version(self.model_name, self.alias)
        if version is None:
            raise AirflowSkipException(
                f"{self.model_name}@{self.alias} does not exist (no champion yet): nothing to score {source} with"
            )
        frame = data.read_frame(source)
        if len(frame) == 0:
            raise AirflowSkipException(f"{source} has no rows: nothing to score, no output written")
        stamp_args = {"scored_at": datetime.now(UTC), "scoring_date": lineage.logical_date(context)}
        self.log.info(
            "Scoring %s with %s version %s (resolved from @%s)", source, self.model_name, version, self.alias
        )
        predictions, shares = self._score(frame, source, version, self.alias, max_share)
        written = data.write_frame(
            stamp(predictions, version=version, alias=self.alias, **stamp_args), self.output_uri
        )
        MLflowModelVersionLink.persist(context, self.hook.model_version_url(self.model_name, version))
        shadow, shadow_written = self._score_shadows(data, frame, source, version, stamp_args)
        summary = {
            "model_name": self.model_name,
            "version": str(version),
            "rows": len(predictions),
            "output_uri": written,
            "unseen_share": shares,
            "shadow": shadow,
            "shadow_output_uri": shadow_written,
        }
        if self.record_batch:
            summary["monitoring_run_id"] = self._record(context, summary, stamp_args)
        return self.keep_for_lineage(summary)

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

    def _score(
        self, frame: pd.DataFrame, source: str, version: str, alias: str, max_share: float | None
    ) -> tuple[pd.DataFrame, dict[str, float]]:
        """One version's checked predictions of the batch, and the unseen-category shares."""
        id_columns = list(self.id_columns or [])
        features = self._features(version)
        missing = [c for c in [*features, *id_columns] if c not in frame.columns]
        if missing:
            raise AirflowFailException(
                f"{source}: missing column(s) {', '.join(map(repr, missing))} needed by {self.model_name} "
                f"version {version}"
            )
        loaded = self.hook.load_verified(f"models:/{self.model_name}/{version}")
        where = f"{source}, scored by {self.model_name} version {version} (@{alias})"
        shares = self._check_batch(frame, features, loaded, where, max_share)
        try:
            predictions = score_in_chunks(
                loaded.model, frame, features, self.chunk_size, id_columns, bool(self.probabilities)
            )
        except (ValueError, TypeError) as err:  # the data, not the moment: a retry cannot help
            raise AirflowFailException(f"{where}: the model refused the batch: {err}") from None
        return predictions, shares

    def _score_shadows(
        self, data: DataHook, frame: pd.DataFrame, source: str, served: str, stamp_args: dict[str, Any]
    ) -> tuple[dict[str, str], str | None]:
        """Score the batch with every shadow alias's version (not the served one, each version once)."""
        import pandas as pd

        versions: dict[str, str] = {}
        parts = []
        for alias in dict.fromkeys(self.shadow_aliases or ()):
            version = self.hook.alias_version(self.model_name, alias)
            if version is None or version == served or version in versions.values():
                continue
            try:
                predictions, _ = self._score(frame, source, version, alias, None)
            except AirflowFailException as err:  # a shadow never fails the served scoring
                self.log.warning("Shadow scoring by @%s (version %s) left out: %s", alias, version, err)
                continue
            versions[alias] = version
            parts.append(stamp(predictions, version=version, alias=alias, **stamp_args))
        if not parts:
            return versions, None
        self.log.info("Scored %s in shadow with %s", source, versions)
        return versions, data.write_frame(pd.concat(parts, ignore_index=True), shadow_uri(self.output_uri))

    def _record(self, context: Context, summary: dict[str, Any], stamp_args: dict[str, Any]) -> str:
        from mlops_provider.core.performance import scoring_record
        from mlops_provider.hooks.monitoring import MonitoringHook

        record = scoring_record(
            model=self.model_name,
            versions={self.alias: summary["version"], **summary["shadow"]},
            outputs={"served": summary["output_uri"], "shadow": summary["shadow_output_uri"]},
            rows=summary["rows"],
            identity=lineage.task_identity(context),
            scoring_date=stamp_args["scoring_date"],
            scored_at=stamp_args["scored_at"],
        )
        return MonitoringHook(mlflow_conn_id=self.mlflow_conn_id).record_check(record)

    def _check_batch(
        self,
        frame: pd.DataFrame,
        features: list[str],
        loaded: LoadedModel,
        where: str,
        max_share: float | None,
    ) -> dict[str, float]:
        """The batch against the model's signature and encoders; the unseen share per column."""
        from mlops_provider.core.scoring import check_batch, model_inputs, over_limit

        with airflow_errors():
            shares = check_batch(frame, features, loaded.inputs, model_inputs(loaded.model, features), where)
        if any(shares.values()):
            self.log.info("Share of rows with an unseen category, per column: %s", shares)
        over = over_limit(shares, max_share)
        if over:
            message = f"{where}: unseen categories above max_unseen_share {max_share}: " + ", ".join(
                f"{name!r} {share:.1%}" for name, share in sorted(over.items())
            )
            if self.on_unseen == "fail":
                raise AirflowFailException(message)
            self.log.warning("%s", message)
        return shares

    def _features(self, version: str) -> list[str]:
        mv = self.hook.model_version(self.model_name, version)
        try:
            return list(json.loads(mv.tags[lineage.FEATURES]))
        except (KeyError, ValueError):
            raise AirflowFailException(
                f"{self.model_name} version {version} lacks the lineage tag {lineage.FEATURES!r}"
            ) from None
