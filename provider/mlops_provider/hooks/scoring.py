"""What batch scoring reads and writes: the batch's files in chunks, the models that score them, and the
output: one file streamed and renamed when done, or a folder of parts published by a manifest.

An output URI ending in ``.csv``/``.csv.gz``/``.parquet`` is one file; any other is a folder (see
:mod:`mlops_provider.core.manifest` for its layout). A mapped run (one task per group of input files)
needs a folder: its plan and every group's record live under ``<folder>/_parts/``, and the publishing
task writes the manifest, then deletes the part files no manifest lists (those of failed or retried
attempts).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.core import data as core_data
from mlops_provider.core import data_parts, data_stream, manifest
from mlops_provider.core.predictions import shadow_uri
from mlops_provider.exceptions import airflow_errors
from mlops_provider.hooks.data import DataHook

if TYPE_CHECKING:
    from mlops_provider.core.batch_scoring import Scorer, ScoringOptions, Writer
    from mlops_provider.hooks.registry import MLflowRegistryHook

FILE_SUFFIXES = core_data.CSV_SUFFIXES + core_data.PARQUET_SUFFIXES


def is_folder_output(uri: str) -> bool:
    """Whether an output URI names a folder of parts (no CSV or Parquet suffix)."""
    return not uri.lower().rstrip("/").endswith(FILE_SUFFIXES)


def new_attempt() -> str:
    return uuid.uuid4().hex[:10]


class ScoringOutput:
    """One output of a scoring run (served or shadow): a file, or a folder of parts with a manifest."""

    def __init__(self, data: DataHook, uri: str) -> None:
        self.data = data
        self.uri = data.resolve(uri).rstrip("/")
        self.is_folder = is_folder_output(self.uri)

    @property
    def fs(self) -> Any:
        return self.data.filesystem(self.uri)

    def shadow(self) -> ScoringOutput:
        return ScoringOutput(self.data, shadow_uri(self.uri))

    def path(self, *names: str) -> str:
        return "/".join([self.uri, *names])

    @property
    def plan_uri(self) -> str:
        return self.path(manifest.PARTS_DIR, manifest.PLAN)

    def group_uri(self, group: int) -> str:
        return self.path(manifest.PARTS_DIR, f"{manifest.group_name(group)}.json")

    def writer(self, prefix: str) -> Writer:
        """A writer of parts ``<prefix>-<n>.parquet`` (folder) or of the one file (renamed when done)."""
        with airflow_errors():
            if self.is_folder:
                return data_parts.ParquetParts(self.uri, self.fs, prefix)
            return data_parts.SingleFile(self.uri, self.fs)

    def commit(self, writer: Writer, about: Mapping[str, Any]) -> str:
        """Make what ``writer`` wrote visible: rename the file, or publish the folder's parts."""
        with airflow_errors():
            if isinstance(writer, data_parts.SingleFile):
                return writer.commit()
            assert isinstance(writer, data_parts.ParquetParts)
            return self.publish(writer.close(), writer.rows, about)

    def commit_all(self, writers: Sequence[Writer], about: Mapping[str, Any]) -> str | None:
        """Make what several writers (shadow versions) wrote visible as one output; None when none did.
        Files of several writers are merged into one, chunk by chunk."""
        if not writers:
            return None
        if len(writers) == 1 or self.is_folder:
            if not self.is_folder:
                return self.commit(writers[0], about)
            with airflow_errors():
                parts = [name for w in writers for name in w.close()]  # type: ignore[attr-defined]
            return self.publish(parts, sum(w.rows for w in writers), about)
        merged = data_parts.SingleFile(self.uri, self.fs)
        try:
            with airflow_errors():
                for writer in writers:
                    assert isinstance(writer, data_parts.SingleFile)
                    writer.close()
                    for frame in data_stream.iter_frames([writer.tmp], self.fs):
                        merged.write(frame)
                return merged.commit()
        finally:
            merged.discard()
            for writer in writers:
                writer.discard()

    def publish(self, files: Sequence[str], rows: int, about: Mapping[str, Any]) -> str:
        """Write the manifest listing ``files`` (atomically), then delete the parts it does not list."""
        payload = manifest.manifest(files, rows=rows, about=about)
        self.data.write_bytes(payload, self.path(manifest.MANIFEST))
        self.collect_garbage(set(files))
        return self.uri

    def rows_in(self, names: Sequence[str]) -> int:
        """The rows the part files hold, from their Parquet footers."""
        fs = self.fs
        with airflow_errors():
            return sum(data_stream.count_rows(self.path(name), fs) for name in names)

    def collect_garbage(self, keep: set[str]) -> None:
        """Delete this folder's part files that ``keep`` does not list (best effort, logged)."""
        fs = self.fs
        try:
            names = _listing(self.uri, fs)
        except OSError as err:
            self.data.log.warning("Could not list %s to delete unpublished parts: %s", self.uri, err)
            return
        for name in sorted(names - keep):
            if manifest.PART_NAME.match(name):
                data_parts.remove(self.path(name), fs)

    # -- a mapped run's plan and group records -------------------------------------------------
    def write_plan(self, plan: manifest.Plan) -> str:
        return self.data.write_bytes(plan.to_json(), self.plan_uri)

    def read_plan(self) -> manifest.Plan:
        with airflow_errors():
            return manifest.Plan.from_json(self.data.read_bytes(self.plan_uri), self.plan_uri)

    def write_group(self, result: manifest.GroupResult) -> str:
        return self.data.write_bytes(result.to_json(), self.group_uri(result.group))

    def read_group(self, group: int) -> manifest.GroupResult | None:
        uri = self.group_uri(group)
        raw = self.data.read_bytes_if_exists(uri)
        if raw is None:
            return None
        with airflow_errors():
            return manifest.GroupResult.from_json(raw, uri)


def _listing(folder: str, fs: Any) -> set[str]:
    import os

    if fs is None:
        path = core_data.local_path(folder)
        return set(os.listdir(path)) if os.path.isdir(path) else set()
    if not fs.isdir(folder):
        return set()
    return {str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)}


class BatchReader:
    """The batch to score: its files (a published folder's manifest files, or a glob's, or a folder's at
    any depth) read in chunks of ``chunk_size`` rows."""

    def __init__(self, data: DataHook, uri: str, chunk_size: int) -> None:
        self.data, self.chunk_size = data, chunk_size
        self.uri = data.resolve(uri)

    def files(self) -> list[str]:
        with airflow_errors():
            return core_data.expand(self.uri, self.data.filesystem(self.uri))

    def columns(self, path: str) -> list[str]:
        with airflow_errors():
            return data_stream.columns_of(path, self.data.filesystem(self.uri))

    def rows(self, path: str) -> int:
        with airflow_errors():
            return data_stream.count_rows(path, self.data.filesystem(self.uri))

    def chunks(self, files: Sequence[str], columns: Sequence[str], text_columns: Sequence[str] = ()) -> Any:
        """The rows of ``files`` in chunks; read errors come out as Airflow outcomes."""
        fs = self.data.filesystem(self.uri)
        with airflow_errors():
            yield from data_stream.iter_frames(files, fs, columns, self.chunk_size, text_columns)


class ScoringRun:
    """One task's scoring: load the pinned versions, stream the batch through them, report the shares.

    :param registry: the registry hook (with the task's load policy) that loads and verifies models
    :param options: id columns, probabilities and the stamp every prediction row gets
    """

    def __init__(
        self,
        registry: MLflowRegistryHook,
        model_name: str,
        reader: BatchReader,
        output: ScoringOutput,
        options: ScoringOptions,
        log: Any,
    ) -> None:
        self.registry, self.model_name, self.reader = registry, model_name, reader
        self.output, self.options, self.log = output, options, log
        self.left_out: dict[str, str] = {}

    def features(self, version: str) -> list[str]:
        import json

        from airflow.sdk.exceptions import AirflowFailException

        from mlops_provider.core import lineage

        mv = self.registry.model_version(self.model_name, version)
        try:
            return list(json.loads(mv.tags[lineage.FEATURES]))
        except (KeyError, ValueError):
            raise AirflowFailException(
                f"{self.model_name} version {version} lacks the lineage tag {lineage.FEATURES!r}"
            ) from None

    def scorer(
        self, alias: str, version: str, columns: Sequence[str], writer_prefix: str, shadow: bool
    ) -> Scorer:
        """Load and verify one version; its scorer writing to the served or the shadow output."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlops_provider.core.batch_scoring import Scorer

        features = self.features(version)
        where = f"{self.reader.uri}, scored by {self.model_name} version {version} (@{alias})"
        missing = [c for c in [*features, *self.options.id_columns] if c not in columns]
        if missing:
            raise AirflowFailException(
                f"{self.reader.uri}: missing column(s) {', '.join(map(repr, missing))} needed by "
                f"{self.model_name} version {version}"
            )
        loaded = self.registry.load_verified(f"models:/{self.model_name}/{version}")
        output = self.output.shadow() if shadow else self.output
        return Scorer(
            alias, version, loaded.model, features, loaded.inputs, output.writer(writer_prefix), where
        )

    def scorers(
        self, versions: Mapping[str, str], columns: Sequence[str], prefix: str
    ) -> tuple[Scorer, list[Scorer]]:
        """The served scorer (the first alias) and those of the shadow versions that load."""
        from airflow.sdk.exceptions import AirflowFailException

        (alias, version), *rest = versions.items()
        served = self.scorer(alias, version, columns, prefix, shadow=False)
        shadows = []
        for index, (alias, version) in enumerate(rest):
            try:
                shadows.append(self.scorer(alias, version, columns, f"{prefix}-s{index}", shadow=True))
            except AirflowFailException as err:  # a shadow never fails the served scoring
                self.log.warning("Shadow scoring by @%s (version %s) left out: %s", alias, version, err)
                self.left_out[alias] = str(err)[:500]
        return served, shadows

    def run(
        self, files: Sequence[str], versions: Mapping[str, str], prefix: str, row_offset: int = 0
    ) -> tuple[Scorer, list[Scorer]]:
        """Score ``files`` with every version (served first); the scorers, their writers not yet closed."""
        from mlops_provider.core.batch_scoring import needed_columns, score_stream, text_columns

        served, shadows = self.scorers(versions, self.reader.columns(files[0]), prefix)
        columns = needed_columns([served, *shadows], self.options.id_columns)
        text = text_columns([served, *shadows])
        try:
            with airflow_errors():
                chunks = self.reader.chunks(files, columns, text)
                score_stream(chunks, served, shadows, self.options, row_offset)
        except BaseException:
            for scorer in (served, *shadows):
                scorer.writer.discard()
            raise
        for shadow in shadows:
            if shadow.error is not None:
                self.log.warning(
                    "Shadow scoring by @%s (version %s) left out: %s",
                    shadow.alias,
                    shadow.version,
                    shadow.error,
                )
                self.left_out[shadow.alias] = shadow.error[:500]
        return served, [s for s in shadows if s.error is None]


def shadow_versions(
    registry: MLflowRegistryHook, model_name: str, aliases: Sequence[str] | None, served: str
) -> dict[str, str]:
    """The versions of ``aliases`` that exist and differ from the served one (each version once)."""
    found: dict[str, str] = {}
    for alias in dict.fromkeys(aliases or ()):
        version = registry.alias_version(model_name, alias)
        if version is not None and version != served and version not in found.values():
            found[alias] = str(version)
    return found


def check_unseen(
    shares: Mapping[str, float], max_share: float | None, on_unseen: str, where: str, log: Any
) -> None:
    """Warn, or fail the task (``on_unseen="fail"``), when a column's unseen share is above the limit."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_provider.core.scoring import over_limit

    if any(shares.values()):
        log.info("Share of rows with an unseen category, per column: %s", dict(shares))
    over = over_limit(shares, max_share)
    if not over:
        return
    message = f"{where}: unseen categories above max_unseen_share {max_share}: " + ", ".join(
        f"{name!r} {share:.1%}" for name, share in sorted(over.items())
    )
    if on_unseen == "fail":
        raise AirflowFailException(message)
    log.warning("%s", message)


def record_scored_batch(
    mlflow_conn_id: str, context: Any, alias: str, summary: Mapping[str, Any], stamp: Mapping[str, Any]
) -> str:
    """Record the scored batch in ``<model>-monitoring`` (how the performance monitor finds it)."""
    from mlops_provider.core import lineage
    from mlops_provider.core.performance import scoring_record
    from mlops_provider.hooks.monitoring import MonitoringHook

    record = scoring_record(
        model=summary["model_name"],
        versions={alias: summary["version"], **summary["shadow"]},
        outputs={"served": summary["output_uri"], "shadow": summary["shadow_output_uri"]},
        rows=summary["rows"],
        identity=lineage.task_identity(context),
        scoring_date=stamp["scoring_date"],
        scored_at=stamp["scored_at"],
    )
    return MonitoringHook(mlflow_conn_id=mlflow_conn_id).record_check(record)
