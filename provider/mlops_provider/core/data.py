"""Reading and writing tabular data at URIs, and content fingerprints. No Airflow in here.

A dataset URI is a local path, a glob (``data/*.csv``), ``file://...`` or any fsspec URI
(``s3://bucket/key.parquet``). Remote filesystems are passed in by the caller (the operators get them
from Airflow's object storage, with an Airflow connection), so this module stays pure.
Formats: CSV (``.csv``, ``.csv.gz``, UTF-8) and Parquet (``.parquet``, ``.pq``).
"""

from __future__ import annotations

import csv
import glob as globlib
import hashlib
import io
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlops_provider.core.errors import DataError, DataUnavailableError, NoDataError

if TYPE_CHECKING:
    import pandas as pd
    from fsspec import AbstractFileSystem

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
GLOB_CHARS = set("*?[")


def is_local(uri: str) -> bool:
    scheme = urlsplit(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(uri: str) -> str:
    return urlsplit(uri).path if uri.startswith("file://") else uri


def resolve_uri(uri: str, base_dir: str | os.PathLike[str] | None) -> str:
    """Resolve a relative local path against ``base_dir``; URIs with a scheme are returned as they are."""
    if not uri or not isinstance(uri, str):
        raise DataError(f"dataset URI must be a non-empty string, got {uri!r}")
    if not is_local(uri) or base_dir is None:
        return uri
    path = local_path(uri)
    if not os.path.isabs(path):
        path = os.path.join(os.fspath(base_dir), path)
    return os.path.normpath(path)


def _format_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise DataError(
        f"{path}: unsupported format (expected a name ending in {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)})"
    )


def _hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def _visible(pattern: str, matches: list[str]) -> list[str]:
    """Glob ``matches`` without hidden names below the pattern's fixed folder (``_``/``.`` segments, as
    a folder read skips them: ``_SUCCESS``, an unpublished output's parts, a file still being written),
    unless the pattern names such a segment itself."""
    first = min(pattern.find(c) for c in GLOB_CHARS if c in pattern)
    head = pattern[:first]
    root = head[: head.rfind("/") + 1]
    if _hidden(pattern[len(root) :]):
        return matches
    root = root.lstrip("/")  # object stores list "bucket/key" (some "/bucket/key")
    return [
        m for m in matches if not (m.lstrip("/").startswith(root) and _hidden(m.lstrip("/")[len(root) :]))
    ]


def _inside(path: str, folder: str, fs: AbstractFileSystem | None) -> str:
    """``path``, refused when it is a local link leading out of ``folder``."""
    if fs is None:
        real, root = os.path.realpath(path), os.path.realpath(folder)
        if real != root and not real.startswith(root + os.sep):
            raise DataError(f"{path}: a link leading out of {folder} (to {real})")
    return path


def _manifest_listing(folder: str, fs: AbstractFileSystem | None) -> list[str]:
    from mlops_provider.core.manifest import MANIFEST, manifest_files

    listed = f"{folder}/{MANIFEST}"
    opener = open if fs is None else fs.open
    with opener(listed, "rb") as handle:
        names = manifest_files(handle.read(), listed)
    return [_inside(f"{folder}/{name}", folder, fs) for name in names]


def _folder_files(folder: str, fs: AbstractFileSystem | None) -> list[str]:
    """
    A folder's data: the files its manifest lists (a published output), else every CSV/Parquet file at
    any depth (partition folders; names starting with ``_`` or ``.`` skipped), a subfolder with a
    manifest contributing the files it lists. Scoring parts no manifest lists are an output not yet
    published: :class:`NoDataError`.
    """
    from mlops_provider.core.manifest import MANIFEST, PART_NAME

    folder = folder.rstrip("/")
    if os.path.isfile(f"{folder}/{MANIFEST}") if fs is None else fs.isfile(f"{folder}/{MANIFEST}"):
        return _manifest_listing(folder, fs)
    found = [str(p) for p in Path(folder).rglob("*") if p.is_file()] if fs is None else list(fs.find(folder))
    prefix = len(fs._strip_protocol(folder) if fs is not None else folder) + 1
    relative = {path: path[prefix:] for path in found}
    published = sorted(
        {r.rpartition("/")[0] for r in relative.values() if r.rpartition("/")[2] == MANIFEST} - {""}
    )
    scheme = urlsplit(folder).scheme
    out = [f for sub in published if not _hidden(sub) for f in _manifest_listing(f"{folder}/{sub}", fs)]
    unpublished = []
    for path, rel in relative.items():
        if _hidden(rel) or not path.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
            continue
        if any(rel.startswith(f"{sub}/") for sub in published):
            continue
        if PART_NAME.match(rel.rpartition("/")[2]):
            unpublished.append(path)
            continue
        out.append(_inside(path, folder, fs) if fs is None or "://" in path else f"{scheme}://{path}")
    if unpublished:
        raise NoDataError(
            f"{folder}: scoring parts that no {MANIFEST} lists (e.g. {sorted(unpublished)[0]}): "
            "that output is not published yet"
        )
    return sorted(out)


def expand(uri: str, fs: AbstractFileSystem | None = None) -> list[str]:
    """The files a URI names, sorted; a glob must match at least one file."""
    has_glob = bool(GLOB_CHARS & set(uri))
    if is_local(uri):
        path = local_path(uri)
        if has_glob:
            files = _visible(path, sorted(p for p in globlib.glob(path, recursive=True) if os.path.isfile(p)))
            if not files:
                raise NoDataError(f"{uri}: no file matches this pattern")
            return files
        if os.path.isdir(path):
            files = _folder_files(path, None)
            if not files:
                raise NoDataError(f"{uri}: the folder holds no CSV or Parquet file")
            return files
        if not os.path.exists(path):
            raise NoDataError(f"{uri}: no such file")
        return [path]
    if fs is None:
        raise DataError(f"{uri}: no filesystem available for this URI scheme")
    scheme = urlsplit(uri).scheme
    try:
        if has_glob:
            found = _visible(uri.split("://", 1)[-1], sorted(fs.glob(uri)))
        elif fs.isdir(uri):
            found = _folder_files(uri.rstrip("/"), fs)
        elif fs.exists(uri):
            found = [uri]
        else:
            found = []
    except PermissionError as err:
        raise DataError(f"{uri}: access denied ({err})") from err
    except (OSError, ValueError) as err:
        raise DataUnavailableError(f"{uri}: cannot list ({type(err).__name__}: {err})") from err
    if not found:
        raise NoDataError(f"{uri}: no such file")
    return [p if "://" in p else f"{scheme}://{p}" for p in found]


def _check_header(names: Sequence[Any], where: str) -> None:
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in map(str, names):
        if name in seen:
            repeated.add(name)
        seen.add(name)
    duplicates = sorted(repeated)
    if duplicates:
        raise DataError(f"{where}: duplicate column name(s) {', '.join(map(repr, duplicates))}")


def _read_one(path: str, fs: AbstractFileSystem | None, columns: Sequence[str] | None) -> pd.DataFrame:
    import pandas as pd

    fmt = _format_of(path)
    opener = open if fs is None else fs.open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (PermissionError, IsADirectoryError) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from err
    except OSError as err:
        if fs is None:
            raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from err
        raise DataUnavailableError(f"{path}: cannot read, will retry ({type(err).__name__}: {err})") from err
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(raw))
        except Exception as err:  # pyarrow raises many kinds
            raise DataError(f"{path}: not a readable Parquet file ({err})") from err
        _check_header(table.schema.names, path)
        frame: pd.DataFrame = table.to_pandas()
    else:
        if path.lower().endswith(".gz"):
            import gzip

            try:
                raw = gzip.decompress(raw)
            except OSError as err:
                raise DataError(f"{path}: not a valid gzip file ({err})") from err
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                "re-encode the file as UTF-8"
            ) from None
        if not text.strip():
            raise DataError(f"{path}: the file is empty (no header row)")
        sep = "\t" if path.lower().endswith(".tsv") else ","
        header = next(
            csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=sep), []
        )  # "" for a blank line
        _check_header(header, path)
        try:
            frame = pd.read_csv(io.StringIO(text), sep=sep, low_memory=False)
        except (pd.errors.ParserError, ValueError) as err:
            raise DataError(f"{path}: malformed CSV ({err})") from err
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
        frame = frame[list(columns)]
    return frame


def read_frame(
    uri: str, fs: AbstractFileSystem | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read every file a URI names into one DataFrame; all files must share one set of columns."""
    return read_files(expand(uri, fs), fs, columns)


def read_files(
    files: Sequence[str], fs: AbstractFileSystem | None = None, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read ``files`` into one DataFrame; all must share one set of columns (the first file's)."""
    import pandas as pd

    frames: list[pd.DataFrame] = []
    for path in files:
        frame = _read_one(path, fs, columns)
        if frames and list(frame.columns) != list(frames[0].columns):
            first = set(frames[0].columns)
            extra = sorted(set(frame.columns) - first)
            missing = sorted(first - set(frame.columns))
            raise DataError(
                f"{path}: columns differ from {files[0]} (extra: {extra or 'none'}, missing: {missing or 'none'})"
            )
        frames.append(frame)
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a DataFrame: column names, dtypes and values, independent of the index."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def write_frame_atomic(frame: pd.DataFrame, uri: str, fs: AbstractFileSystem | None = None) -> str:
    """
    Write a DataFrame to ``uri`` (CSV or Parquet by suffix) so that readers never see a partial file:
    write a temporary sibling, then rename (local) or move (object stores create the object whole).
    """
    fmt = _format_of(uri)
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buffer, index=False)
    else:
        # CRLF rows (RFC 4180): the csv writer then quotes every value holding \r or \n, which a
        # plain "\n" terminator leaves bare and a reader splits into two rows
        frame.to_csv(buffer, index=False, lineterminator="\r\n")
    return write_bytes_atomic(buffer.getvalue(), uri, fs)


def write_bytes_atomic(data: bytes, uri: str, fs: AbstractFileSystem | None = None) -> str:
    """Write bytes to ``uri`` through a temporary name; return the final URI."""
    if is_local(uri):
        path = local_path(uri)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path
    if fs is None:
        raise DataError(f"{uri}: no filesystem available for this URI scheme")
    parent, _, name = uri.rpartition("/")
    tmp = f"{parent}/_tmp-{uuid.uuid4().hex}-{name}"
    try:
        with fs.open(tmp, "wb") as handle:
            handle.write(data)
        fs.mv(tmp, uri)
    except PermissionError as err:
        raise DataError(f"{uri}: cannot write ({err})") from err
    except OSError as err:
        raise DataUnavailableError(f"{uri}: cannot write, will retry ({type(err).__name__}: {err})") from err
    finally:
        try:
            if fs.exists(tmp):
                fs.rm(tmp)
        except OSError:
            pass
    return uri


def data_signature(uri: str, fs: AbstractFileSystem | None = None) -> str | None:
    """
    A short hash of the files ``uri`` names (path, size, modification time / ETag), or ``None`` when
    no file exists yet. Changes when data arrives or is rewritten; cheap (no data is read).
    """
    try:
        files = expand(uri, fs)
    except DataError:
        return None
    listing = []
    for path in files:
        if is_local(uri):
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                return None
            listing.append([path, stat.st_size, stat.st_mtime_ns])
        else:
            if fs is None:  # expand() raises first; keeps type checkers honest
                return None
            info = fs.info(path)
            stamp = info.get("ETag") or info.get("LastModified") or info.get("mtime") or info.get("created")
            listing.append([path, info.get("size"), str(stamp)])
    payload = json.dumps(listing, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]
