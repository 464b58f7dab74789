"""Tabular data written in parts, so memory is bounded by a chunk: :class:`ParquetParts` writes part files
into a folder, invisible to readers until a manifest (:mod:`mlops_provider.core.manifest`) lists them;
:class:`SingleFile` streams one CSV or Parquet file to a temporary name and renames it when done. No
Airflow in here.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

from mlops_provider.core.data import _format_of, local_path
from mlops_provider.core.errors import DataError, DataUnavailableError

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

ROWS_PER_PART = 1_000_000
# Parts are told from a user's own part-*.parquet files (Spark, pyarrow) by this suffix: only they are
# "unpublished" without a manifest, and only they are ever deleted.
PART_SUFFIX = ".mlops.parquet"


def remove(path: str, fs: AbstractFileSystem | None) -> None:
    try:
        if fs is None:
            os.unlink(local_path(path))
        elif fs.exists(path):
            fs.rm(path)
    except OSError:
        pass


def _write_error(path: str, err: OSError) -> DataError | DataUnavailableError:
    if isinstance(err, PermissionError):
        return DataError(f"{path}: cannot write ({err})")
    return DataUnavailableError(f"{path}: cannot write, will retry ({type(err).__name__}: {err})")


class _Sink:
    """One file being written (a binary handle; folders made for local paths)."""

    def __init__(self, path: str, fs: AbstractFileSystem | None) -> None:
        self.path, self.fs = path, fs
        if fs is None:
            os.makedirs(os.path.dirname(os.path.abspath(local_path(path))), exist_ok=True)
        try:
            self.handle = open(local_path(path), "wb") if fs is None else fs.open(path, "wb")  # noqa: SIM115
        except OSError as err:
            raise _write_error(path, err) from err

    def close(self) -> None:
        try:
            if self.fs is None:
                self.handle.flush()
                os.fsync(self.handle.fileno())
            self.handle.close()
        except OSError as err:
            raise _write_error(self.path, err) from err


class ParquetParts:
    """
    Parquet part files ``<prefix>-<n>.parquet`` in ``folder``; a new part starts once one holds
    ``rows_per_file`` rows (frames are not split), or for a frame whose column types differ. Nothing is visible to a
    reader of the folder's manifest until the manifest lists :attr:`files`.
    """

    def __init__(
        self, folder: str, fs: AbstractFileSystem | None, prefix: str, rows_per_file: int = ROWS_PER_PART
    ) -> None:
        self.folder, self.fs, self.prefix, self.rows_per_file = folder.rstrip("/"), fs, prefix, rows_per_file
        self.files: list[str] = []  # names relative to the folder, in order
        self.rows = 0
        self._sink: _Sink | None = None
        self._writer: Any = None
        self._schema: Any = None
        self._in_file = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is not None and (
            not table.schema.equals(self._schema) or self._in_file >= self.rows_per_file
        ):
            self._close_file()
        if self._writer is None:
            name = f"{self.prefix}-{len(self.files):05d}{PART_SUFFIX}"
            self._sink = _Sink(f"{self.folder}/{name}", self.fs)
            self.files.append(name)
            self._schema, self._in_file = table.schema, 0
            self._writer = pq.ParquetWriter(self._sink.handle, table.schema)
        self._writer.write_table(table)
        self._in_file += table.num_rows
        self.rows += table.num_rows

    def _close_file(self) -> None:
        if self._writer is not None and self._sink is not None:
            self._writer.close()
            self._sink.close()
        self._writer, self._sink = None, None

    def close(self) -> list[str]:
        """Finish the open part; the part names (relative to the folder)."""
        self._close_file()
        return list(self.files)

    def discard(self) -> None:
        """Close and delete every part written (best effort)."""
        try:
            self._close_file()
        except (DataError, DataUnavailableError, OSError):
            pass
        for name in self.files:
            remove(f"{self.folder}/{name}", self.fs)
        self.files.clear()


class SingleFile:
    """One CSV or Parquet file (by suffix) streamed to a temporary sibling and renamed by :meth:`commit`,
    so a reader never sees part of it. A Parquet file has one schema: a later frame is cast to the first
    frame's types, and a column that cannot be is refused, naming it."""

    def __init__(self, uri: str, fs: AbstractFileSystem | None) -> None:
        self.uri, self.fs, self.format = uri, fs, _format_of(uri)
        parent, _, name = uri.rpartition("/")
        # a hidden name: no glob (`*.parquet`) and no folder listing sees a file still being written
        hidden = f".tmp-{uuid.uuid4().hex}-{name}"
        self.tmp = f"{parent}/{hidden}" if parent else hidden
        self.rows = 0
        self._sink: _Sink | None = None
        self._writer: Any = None
        self._schema: Any = None
        self._gzip: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        if self._sink is None:
            self._sink = _Sink(self.tmp, self.fs)
        if self.format == "parquet":
            self._write_parquet(frame)
        else:
            self._write_csv(frame)
        self.rows += len(frame)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert self._sink is not None
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self._sink.handle, table.schema)
        elif not table.schema.equals(self._schema):
            try:
                table = table.cast(self._schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
                changed = [
                    f.name
                    for f in table.schema
                    if f.name in self._schema.names and f.type != self._schema.field(f.name).type
                ]
                raise DataError(
                    f"{self.uri}: column(s) {', '.join(map(repr, changed))} change type within the batch "
                    f"(from row {self.rows}); write to a folder (an output without a suffix) instead"
                ) from None
        self._writer.write_table(table)

    def _write_csv(self, frame: pd.DataFrame) -> None:
        import gzip

        assert self._sink is not None
        handle = self._sink.handle
        if self.uri.lower().endswith(".gz"):
            self._gzip = self._gzip or gzip.GzipFile(fileobj=handle, mode="wb")
            handle = self._gzip
        sep = "\t" if self.format == "csv" and ".tsv" in self.uri.lower() else ","
        # CRLF rows (RFC 4180): values holding \r or \n are quoted
        text = frame.to_csv(index=False, header=self.rows == 0, sep=sep, lineterminator="\r\n")
        try:
            handle.write(text.encode("utf-8"))
        except OSError as err:
            raise _write_error(self.tmp, err) from err

    def _close(self) -> None:
        writer, zipped, sink = self._writer, self._gzip, self._sink
        self._writer = self._gzip = self._sink = None
        if writer is not None:
            writer.close()
        if zipped is not None:
            zipped.close()
        if sink is not None:
            sink.close()

    def close(self) -> None:
        """Finish the temporary file (still under its temporary name)."""
        self._close()

    def commit(self) -> str:
        """Finish the file and move it to its name; the final URI."""
        self._close()
        try:
            if self.fs is None:
                os.replace(local_path(self.tmp), local_path(self.uri))
                return local_path(self.uri)
            self.fs.mv(self.tmp, self.uri)
        except OSError as err:
            raise _write_error(self.uri, err) from err
        finally:
            remove(self.tmp, self.fs)
        return self.uri

    def discard(self) -> None:
        try:
            self._close()
        except (DataError, DataUnavailableError, OSError):
            pass
        remove(self.tmp, self.fs)
