"""Data at URIs: the one home of every dataset and report read or write the provider makes.

A :class:`DataHook` holds an Airflow connection id (for remote URIs: ``s3://`` through Airflow's object
storage, ``aws_default`` when none is given) and a base folder that relative local paths resolve
against. Errors come out as Airflow outcomes: :class:`~mlops_provider.exceptions.DataError` (bad data,
no retry) or :class:`~mlops_provider.exceptions.DataUnavailableError` (transient, retried).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from mlops_provider.core import data as core_data
from mlops_provider.core.errors import NoDataError
from mlops_provider.exceptions import DataError, DataUnavailableError, airflow_errors

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem


class DataHook(BaseHook):
    """
    Read and write tabular data and reports at paths, globs and URIs (CSV and Parquet).

    Usage::

        data = DataHook(conn_id="aws_default", base_dir="/opt/airflow/dags/configs")
        frame = data.read_frame("s3://bucket/batches/2026-12-01.csv")
        sample, total = data.read_sample("s3://bucket/history/", max_rows=1_000_000)  # bounded memory
        data.write_frame(predictions, "predictions/2026-12-01.parquet")  # atomic

    :param conn_id: Airflow connection for remote URIs; ``None`` uses the scheme's default.
    :param base_dir: folder relative local paths resolve against; ``None`` means the working directory.
    """

    hook_name = "MLOps data"

    def __init__(self, conn_id: str | None = None, base_dir: str | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.base_dir = base_dir

    def resolve(self, uri: str) -> str:
        """``uri`` with a relative local path resolved against ``base_dir``."""
        with airflow_errors():
            return core_data.resolve_uri(uri, self.base_dir)

    def filesystem(self, uri: str) -> AbstractFileSystem | None:
        """The fsspec filesystem of a remote URI (authenticated); ``None`` for local paths."""
        from mlops_provider.hooks.storage import filesystem_for

        return filesystem_for(uri, self.conn_id)

    def read_frame(self, uri: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Every file ``uri`` names (resolved) as one DataFrame."""
        path = self.resolve(uri)
        with airflow_errors():
            return core_data.read_frame(path, self.filesystem(path), columns=columns)

    def read_sample(
        self,
        uri: str,
        max_rows: int | None,
        seed: int = 0,
        columns: Sequence[str] | None = None,
        total: int | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """
        At most ``max_rows`` rows of every file ``uri`` names (resolved) and how many rows they hold: a
        deterministic sample above the limit (same data and seed, same rows), every row as
        :meth:`read_frame` reads them at or below it (see :mod:`mlops_provider.core.data_sample`).

        :param total: the row count, when the caller has it already (:meth:`count_rows`)
        """
        from mlops_provider.core.data_sample import read_sample

        path = self.resolve(uri)
        with airflow_errors():
            fs = self.filesystem(path)
            files = core_data.expand(path, fs)
            return read_sample(files, fs, max_rows, seed, columns, total=total)

    def count_rows(self, uri: str) -> int:
        """The rows of every file ``uri`` names (Parquet footers; CSV files are read in chunks)."""
        from mlops_provider.core.data_sample import total_rows

        path = self.resolve(uri)
        with airflow_errors():
            fs = self.filesystem(path)
            return total_rows(core_data.expand(path, fs), fs)

    def files(self, uri: str) -> list[str]:
        """The files ``uri`` names (resolved, sorted); none yet (no match, no such file) is ``[]``."""
        path = self.resolve(uri)
        with airflow_errors():
            try:
                return core_data.expand(path, self.filesystem(path))
            except NoDataError:
                return []

    def read_bytes(self, uri: str) -> bytes:
        """The bytes of one file (a suite, a record); a missing file is a :class:`DataError`."""
        data = self.read_bytes_if_exists(uri)
        if data is None:
            raise DataError(f"{self.resolve(uri)}: no such file")
        return data

    def read_bytes_if_exists(self, uri: str, max_bytes: int = -1) -> bytes | None:
        """
        The bytes of one file, at most ``max_bytes + 1`` of them when ``max_bytes`` is set (so a caller
        such as the report endpoint can tell a larger file); ``None`` when no file is there (missing, or
        a folder).

        :raises DataError: the store refuses access; :raises DataUnavailableError: it cannot be reached.
        """
        path = self.resolve(uri)
        try:
            fs = self.filesystem(path)
            if fs is None:
                with open(core_data.local_path(path), "rb") as handle:
                    return handle.read(max_bytes + 1 if max_bytes >= 0 else -1)
            if not fs.isfile(path):
                return None
            with fs.open(path, "rb") as handle:
                return bytes(handle.read(max_bytes + 1 if max_bytes >= 0 else -1))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except PermissionError as err:
            raise DataError(f"{path}: cannot read ({err})") from err
        except OSError as err:
            raise DataUnavailableError(f"{path}: cannot read ({type(err).__name__}: {err})") from err

    def write_frame(self, frame: pd.DataFrame, uri: str) -> str:
        """Write ``frame`` (CSV or Parquet by suffix) so readers never see a partial file; the final URI."""
        path = self.resolve(uri)
        with airflow_errors():
            return core_data.write_frame_atomic(frame, path, self.filesystem(path))

    def write_bytes(self, data: bytes, uri: str) -> str:
        """Write bytes atomically; the final URI."""
        path = self.resolve(uri)
        with airflow_errors():
            return core_data.write_bytes_atomic(data, path, self.filesystem(path))

    def signature(self, uri: str) -> str | None:
        """What identifies the data's current version (paths, sizes, times); ``None`` when absent."""
        path = self.resolve(uri)
        with airflow_errors():
            return core_data.data_signature(path, self.filesystem(path))

    @staticmethod
    def fingerprint(frame: pd.DataFrame) -> str:
        """A content hash of a frame: column names, dtypes and values."""
        return core_data.fingerprint(frame)
