"""A deterministic row sample of tabular files, read with memory bounded by the sample, not the data.

:func:`read_sample` counts the rows (Parquet footers; CSV files by a chunked pass), picks ``max_rows``
row numbers with a seeded numpy ``Generator`` (:func:`sample_positions`: a uniform sample without
replacement, sorted) and keeps those rows while streaming the files batch by batch
(:func:`mlops_provider.core.data_stream.iter_frames`). The rows depend only on the data, ``max_rows``
and the seed, never on the batch size. At or below ``max_rows`` every row is read, as
:func:`mlops_provider.core.data.read_frame` reads them (same frame, same fingerprint).

Memory: the sampled rows (twice, while they are joined at the end), one batch, and ``max_rows`` row
numbers (8 bytes each). No Airflow in here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.core.data import _format_of, local_path, read_files
from mlops_provider.core.data_stream import DEFAULT_BATCH_ROWS, count_rows, iter_frames
from mlops_provider.core.errors import DataError, DataUnavailableError, InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from fsspec import AbstractFileSystem

DEFAULT_SAMPLE_SEED = 0
MAX_ROWS_CEILING = 1_000_000_000  # a larger limit is no limit on any machine: refused as a likely typo


def check_max_rows(value: Any, name: str = "max_rows") -> int | None:
    """``None`` (no limit) or a whole number in [1, 10^9]; the digits of a rendered template are accepted.
    Raise :class:`~mlops_provider.core.errors.InvalidInputError` naming ``name`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROWS_CEILING:
        raise InvalidInputError(
            f"{name} must be a whole number from 1 to {MAX_ROWS_CEILING} (or None for no limit), got {value!r}"
        )
    return value


def sample_positions(total: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct row numbers in ``[0, total)``, sorted, uniformly drawn with ``seed``; all of
    them when ``size >= total``. Memory is O(``size``) whatever ``total`` is."""
    import numpy as np

    if size >= total:
        return np.arange(total, dtype=np.int64)
    rng = np.random.default_rng(int(seed) % 2**64)
    if 2 * size < total:
        return _sparse_positions(rng, total, size)
    return np.sort(rng.choice(total, size=size, replace=False)).astype(np.int64)  # total < 2 * size


def _sparse_positions(rng: np.random.Generator, total: int, size: int) -> np.ndarray:
    """Uniform draws with replacement until ``size`` distinct numbers are held, then a uniform subset
    of exactly ``size``: every step treats all row numbers alike, so every subset is equally likely."""
    import numpy as np

    held = np.empty(0, dtype=np.int64)
    while held.size < size:
        missing = size - held.size
        drawn = rng.integers(0, total, size=missing + missing // 8 + 16, dtype=np.int64)
        held = np.concatenate((held, drawn))
        held.sort()
        held = held[np.concatenate(([True], held[1:] != held[:-1]))]  # np.unique is ~10x slower here
    if held.size > size:
        held = np.sort(held[rng.choice(held.size, size=size, replace=False)])
    return held


def total_rows(files: Sequence[str], fs: AbstractFileSystem | None = None) -> int:
    """The rows of every file (Parquet footers; CSV by a chunked pass)."""
    return sum(count_rows(path, fs) for path in files)


def read_sample(
    files: Sequence[str],
    fs: AbstractFileSystem | None,
    max_rows: int | None,
    seed: int = DEFAULT_SAMPLE_SEED,
    columns: Sequence[str] | None = None,
    *,
    total: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> tuple[pd.DataFrame, int]:
    """
    At most ``max_rows`` rows of ``files`` and how many rows the files hold.

    Above ``max_rows``, the rows at :func:`sample_positions` ``(total, max_rows, seed)``, in file order,
    with a fresh index; at or below (or with ``max_rows`` ``None``), every row as ``read_frame`` reads it.

    :param total: the files' row count when the caller has counted them already
    :raises DataUnavailableError: the files changed between the count and the read (a retry rereads)
    """
    limit = check_max_rows(max_rows)
    if not files:
        raise DataError("no file to read")
    if limit is None:
        frame = read_files(files, fs, columns)
        return frame, len(frame)
    if total is None:
        if _rows_at_most(files, fs, limit):
            frame = read_files(files, fs, columns)
            return frame, len(frame)
        total = total_rows(files, fs)
    if total <= limit:
        return read_files(files, fs, columns), total
    positions = sample_positions(total, limit, seed)
    return _read_positions(files, fs, columns, positions, total, batch_rows), total


def _rows_at_most(files: Sequence[str], fs: AbstractFileSystem | None, limit: int) -> bool:
    """Whether the files surely hold at most ``limit`` rows, without a pass over any CSV: Parquet
    footers count exactly, a plain CSV row takes at least 2 bytes. Unknown (gzip) is ``False``."""
    bound = 0
    for path in files:
        if _format_of(path) == "parquet":
            bound += count_rows(path, fs)
        elif path.lower().endswith(".gz"):
            return False
        else:
            try:
                size = os.path.getsize(local_path(path)) if fs is None else int(fs.size(path))
            except (OSError, TypeError, ValueError):
                return False
            bound += size // 2
        if bound > limit:
            return False
    return True


def _read_positions(
    files: Sequence[str],
    fs: AbstractFileSystem | None,
    columns: Sequence[str] | None,
    positions: np.ndarray,
    total: int,
    batch_rows: int,
) -> pd.DataFrame:
    """The rows at ``positions`` (sorted row numbers over all files), kept batch by batch."""
    import numpy as np
    import pandas as pd

    pieces: list[pd.DataFrame] = []
    offset = 0
    for batch in iter_frames(files, fs, columns, batch_rows):
        end = offset + len(batch)
        lo, hi = np.searchsorted(positions, (offset, end))
        if hi > lo:
            pieces.append(batch.iloc[positions[lo:hi] - offset])
        offset = end
    if offset != total or not pieces:
        where = files[0] if len(files) == 1 else f"{files[0]} and {len(files) - 1} more file(s)"
        raise DataUnavailableError(
            f"{where}: {offset} rows read but {total} counted: the data changed while it was read (will retry)"
        )
    return pd.concat(pieces, ignore_index=True)
