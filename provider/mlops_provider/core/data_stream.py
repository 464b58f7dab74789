"""Tabular data read in record batches and written in parts: memory bounded by a batch, not the data.

Parquet files are read through pyarrow datasets, one fragment (file) at a time, row group by row group
and re-batched to ``batch_rows``; CSV files through pandas' chunked reader (pyarrow infers CSV column
types from the first block only, so a later row could break a read pandas takes whole). Every file
must hold the columns asked for (or, without ``columns``, the first file's columns): a file that lacks
one is refused, naming it, instead of being filled with nulls.

Writing in parts: :mod:`mlops_provider.core.data_parts`. No Airflow in here.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from mlops_provider.core.data import _check_header, _format_of, local_path
from mlops_provider.core.errors import DataError, DataUnavailableError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from fsspec import AbstractFileSystem

DEFAULT_BATCH_ROWS = 100_000


def _open(path: str, fs: AbstractFileSystem | None, mode: str = "rb") -> Any:
    try:
        return open(local_path(path), mode) if fs is None else fs.open(path, mode)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (PermissionError, IsADirectoryError, NotADirectoryError) as err:
        raise DataError(f"{path}: cannot open ({type(err).__name__}: {err})") from err
    except OSError as err:
        raise DataUnavailableError(f"{path}: cannot open, will retry ({type(err).__name__}: {err})") from err


def _missing(path: str, names: Sequence[str], wanted: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")


def _arrow_fs(fs: AbstractFileSystem | None) -> Any:
    from pyarrow.fs import FSSpecHandler, LocalFileSystem, PyFileSystem

    return LocalFileSystem() if fs is None else PyFileSystem(FSSpecHandler(fs))


def _fragment(path: str, fs: AbstractFileSystem | None) -> Any:
    """A Parquet file as a pyarrow dataset fragment, its footer read (errors name the file)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    try:
        fragment = ds.ParquetFileFormat().make_fragment(_fs_path(path, fs), filesystem=_arrow_fs(fs))
        fragment.ensure_complete_metadata()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except PermissionError as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({err})") from err
    return fragment


def _fs_path(path: str, fs: AbstractFileSystem | None) -> str:
    return local_path(path) if fs is None else fs._strip_protocol(path)


def _parquet_tables(
    path: str, fs: AbstractFileSystem | None, columns: list[str] | None, rows: int
) -> Iterator[pa.Table]:
    import pyarrow as pa

    fragment = _fragment(path, fs)
    names = fragment.physical_schema.names
    _check_header(names, path)
    if columns is not None:
        _missing(path, names, columns)
    try:
        for batch in fragment.to_batches(columns=columns, batch_size=rows, batch_readahead=2):
            yield pa.Table.from_batches([batch])
    except pa.ArrowInvalid as err:
        raise DataError(f"{path}: not a readable Parquet file ({err})") from err


def _csv_header(path: str, fs: AbstractFileSystem | None, sep: str) -> list[str]:
    import gzip

    with _open(path, fs) as raw:
        try:
            first = (gzip.GzipFile(fileobj=raw) if path.lower().endswith(".gz") else raw).readline()
        except OSError as err:
            raise DataError(f"{path}: not a valid gzip file ({err})") from err
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text (byte at offset {err.start}); re-encode the file as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: the file is empty (no header row)")
    return next(csv.reader([text], delimiter=sep), [])


def _csv_frames(
    path: str,
    fs: AbstractFileSystem | None,
    columns: list[str] | None,
    rows: int,
    text_columns: Sequence[str] = (),
) -> Iterator[pd.DataFrame]:
    """The CSV's rows in chunks; ``text_columns`` are read as text in every chunk (pandas guesses each
    chunk's types on its own: a chunk of digit-only codes would be numbers)."""
    import gzip
    import zlib

    import pandas as pd

    sep = "\t" if path.lower().endswith(".tsv") else ","
    header = _csv_header(path, fs, sep)
    _check_header(header, path)
    if columns is not None:
        _missing(path, header, columns)
    compression: Literal["gzip"] | None = "gzip" if path.lower().endswith(".gz") else None
    with _open(path, fs) as raw:
        try:
            with pd.read_csv(
                raw,
                sep=sep,
                chunksize=rows,
                usecols=columns,
                low_memory=False,
                compression=compression,
                encoding="utf-8-sig",
                dtype={c: str for c in text_columns if c in header} or None,
            ) as reader:
                for frame in reader:
                    yield frame if columns is None else frame[columns]
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason}); re-encode the file as UTF-8") from None
        except (pd.errors.ParserError, ValueError) as err:
            raise DataError(f"{path}: malformed CSV ({err})") from err
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise DataError(f"{path}: not a valid gzip file ({type(err).__name__}: {err})") from err


def iter_frames(
    files: Sequence[str],
    fs: AbstractFileSystem | None = None,
    columns: Sequence[str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    text_columns: Sequence[str] = (),
) -> Iterator[pd.DataFrame]:
    """Every row of ``files`` in order, as DataFrames of ``batch_rows`` rows (the last ones may be
    shorter); with ``columns`` only those, else the first file's columns (later files must match).
    ``text_columns`` of CSV files are read as text (Parquet files carry their types)."""
    read = list(columns) if columns is not None else None
    wanted = read
    pending = _Pending(batch_rows)
    for path in files:
        if _format_of(path) == "csv":
            yield from pending.flush()
            for frame in _csv_frames(path, fs, read, batch_rows, text_columns):
                wanted = _same_columns(path, list(map(str, frame.columns)), wanted)
                yield frame
            continue
        for table in _parquet_tables(path, fs, read, batch_rows):
            wanted = _same_columns(path, table.schema.names, wanted)
            yield from pending.add(table)
    yield from pending.flush()


class _Pending:
    """Parquet record batches gathered into frames of ``rows`` rows (row groups may be much smaller)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.tables: list[pa.Table] = []
        self.held = 0

    def add(self, table: pa.Table) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        if self.tables and not table.schema.equals(self.tables[0].schema):
            yield from self.flush()  # another file's types: its rows start a new frame
        self.tables.append(table)
        self.held += table.num_rows
        if self.held < self.rows:
            return
        whole = pa.concat_tables(self.tables)
        start = 0
        while whole.num_rows - start >= self.rows:
            yield whole.slice(start, self.rows).to_pandas()
            start += self.rows
        rest = whole.slice(start)
        self.tables, self.held = ([rest] if rest.num_rows else []), rest.num_rows

    def flush(self) -> Iterator[pd.DataFrame]:
        import pyarrow as pa

        if self.held:
            yield pa.concat_tables(self.tables).to_pandas()
        self.tables, self.held = [], 0


def _same_columns(path: str, names: list[str], wanted: list[str] | None) -> list[str]:
    if wanted is None:
        return names
    if names != wanted:
        extra = sorted(set(names) - set(wanted))
        missing = sorted(set(wanted) - set(names))
        raise DataError(
            f"{path}: columns differ from the first file (extra: {extra or 'none'}, missing: {missing or 'none'})"
        )
    return wanted


def count_rows(path: str, fs: AbstractFileSystem | None = None) -> int:
    """The rows of one file: Parquet from its footer, CSV by reading it in chunks."""
    if _format_of(path) == "parquet":
        return int(_fragment(path, fs).metadata.num_rows)
    return sum(len(frame) for frame in _csv_frames(path, fs, None, DEFAULT_BATCH_ROWS))


def columns_of(path: str, fs: AbstractFileSystem | None = None) -> list[str]:
    """The column names of one file (a Parquet footer, a CSV header), without reading its rows."""
    if _format_of(path) == "csv":
        return _csv_header(path, fs, "\t" if path.lower().endswith(".tsv") else ",")
    return list(_fragment(path, fs).physical_schema.names)
