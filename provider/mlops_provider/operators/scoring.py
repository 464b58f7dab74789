"""Batch scoring with the champion model, pinned to one version for the whole run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.core import lineage
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.links.mlflow import MLflowModelVersionLink

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

ROW_COLUMN = "row"
PREDICTION_COLUMN = "prediction"
VERSION_COLUMN = "model_version"


def score_in_chunks(
    model: Any, frame: pd.DataFrame, features: Sequence[str], chunk_size: int, id_columns: Sequence[str] = ()
) -> pd.DataFrame:
    """Predictions for every row, ``chunk_size`` rows at a time: id columns, ``row``, ``prediction``."""
    import pandas as pd

    parts = []
    for start in range(0, len(frame), chunk_size):
        chunk = frame.iloc[start : start + chunk_size]
        out = chunk[list(id_columns)].copy() if id_columns else pd.DataFrame(index=chunk.index)
        out[ROW_COLUMN] = range(start, start + len(chunk))
        out[PREDICTION_COLUMN] = model.predict(chunk[list(features)])
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=[*id_columns, ROW_COLUMN, PREDICTION_COLUMN])
    return pd.concat(parts, ignore_index=True)


class BatchScoreOperator(MLflowHookMixin, BaseOperator):
    """
    Score a dataset with ``models:/<model_name>@<alias>`` and write the predictions atomically.

    The alias is resolved ONCE to a version and that exact version (``models:/<name>/<version>``) scores
    every chunk, so a promotion during the run cannot mix two models. The output holds ``row`` (the
    input row number), the ``id_columns``, ``prediction`` and ``model_version``; it is written to a
    temporary name and then renamed (or moved, on object stores). No champion: the task is skipped.

    :param model_name: registered model name. (templated)
    :param data_uri: data to score (path, glob or URI; CSV/Parquet). (templated)
    :param output_uri: where to write predictions (``.csv`` or ``.parquet``). (templated)
    :param alias: alias to resolve. (templated)
    :param chunk_size: rows per predict call.
    :param id_columns: input columns copied to the output (e.g. an id). (templated)
    :param base_dir: folder relative local paths resolve against. (templated)
    :param data_conn_id: Airflow connection for remote data URIs (input and output). (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"model_name", "version", "rows", "output_uri"}``
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

    def execute(self, context: Context) -> dict[str, Any]:
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise AirflowFailException(f"chunk_size must be a positive integer, got {self.chunk_size!r}")
        id_columns = list(self.id_columns or [])
        data = DataHook(conn_id=self.data_conn_id, base_dir=self.base_dir)
        source = data.resolve(self.data_uri)
        version = self.hook.alias_version(self.model_name, self.alias)
        if version is None:
            raise AirflowSkipException(
                f"{self.model_name}@{self.alias} does not exist (no champion yet): nothing to score {source} with"
            )
        features = self._features(version)
        model = self.hook.load_model(f"models:/{self.model_name}/{version}")
        self.log.info(
            "Scoring %s with %s version %s (resolved from @%s)", source, self.model_name, version, self.alias
        )
        frame = data.read_frame(source)
        missing = [c for c in [*features, *id_columns] if c not in frame.columns]
        if missing:
            raise AirflowFailException(
                f"{source}: missing column(s) {', '.join(map(repr, missing))} needed by {self.model_name} "
                f"version {version}"
            )
        predictions = score_in_chunks(model, frame, features, self.chunk_size, id_columns)
        predictions[VERSION_COLUMN] = str(version)
        written = data.write_frame(predictions, self.output_uri)
        MLflowModelVersionLink.persist(context, self.hook.model_version_url(self.model_name, version))
        return {
            "model_name": self.model_name,
            "version": str(version),
            "rows": len(predictions),
            "output_uri": written,
        }

    def _features(self, version: str) -> list[str]:
        mv = self.hook.model_version(self.model_name, version)
        try:
            return list(json.loads(mv.tags[lineage.FEATURES]))
        except (KeyError, ValueError):
            raise AirflowFailException(
                f"{self.model_name} version {version} lacks the lineage tag {lineage.FEATURES!r}"
            ) from None
