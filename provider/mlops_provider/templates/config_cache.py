"""A parse-time cache of the model configs' YAML documents, like Python's ``__pycache__``.

The dag-processor parses the DAG file in a fresh process every few minutes, and PyYAML (libyaml) takes
0.7-0.9 ms per config: a quarter of the factory's own cost, for files that rarely change. So the parsed
document is kept as JSON in ``<AIRFLOW_HOME>/.mlops-cache/configs/`` (``MLOPS_CONFIG_CACHE`` names
another folder; an empty value turns the cache off), one entry per config path, keyed by a hash of the
file's exact text together with the YAML bounds and PyYAML's version: an edited config is parsed again,
a stale entry is never used.

* Only documents that JSON gives back exactly are kept (so no dates, integer keys, NaN, binary).
* An entry that cannot be read, is larger than the bound, or is not the expected JSON is ignored and
  rewritten: the cache can make a parse faster, never different.
* Writes are atomic (temporary file, then rename) and best effort: a read-only home means no cache.
* The folder must belong to the user parsing and be writable by nobody else (it is created with mode
  0700); otherwise it is not used, so another account cannot plant a document for a known config.
  The key includes the provider's version: an upgrade parses every config again.
* A cached document goes through the same schema and checks as a freshly parsed one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mlops_provider.templates.safe_yaml import MAX_ALIASES, MAX_CONFIG_BYTES, MAX_DEPTH, MAX_VALUES, load_yaml

CACHE_ENV = "MLOPS_CONFIG_CACHE"
FORMAT = "mlops-config-cache/2"  # 2: duplicate keys refused
MAX_ENTRY_BYTES = 4 * MAX_CONFIG_BYTES
_MISS = object()


def cache_dir() -> Path | None:
    """Where entries live; None when the cache is off."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return Path(configured) if configured.strip() else None
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / ".mlops-cache" / "configs"


def _private_folder(folder: Path) -> bool:
    """The folder exists (created 0700 if not), is ours and no one else may write it."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def text_key(text: str) -> str:
    """The hash an entry must carry to stand for ``text``."""
    from mlops_provider import __version__

    salt = f"{FORMAT}|{__version__}|{yaml.__version__}|{MAX_VALUES}|{MAX_ALIASES}|{MAX_DEPTH}|"
    return hashlib.blake2b((salt + text).encode("utf-8"), digest_size=20).hexdigest()


def entry_path(folder: Path, config_path: Path) -> Path:
    name = hashlib.blake2b(os.fsencode(os.path.abspath(config_path)), digest_size=16).hexdigest()
    return folder / f"{name}.json"


def load_yaml_cached(config_path: Path, text: str) -> Any:
    """``load_yaml(text)``, from the cache when it holds this exact text's document."""
    folder = cache_dir()
    if folder is None or not _private_folder(folder):
        return load_yaml(text)
    key = text_key(text)
    entry = entry_path(folder, config_path)
    document = _read(entry, key)
    if document is _MISS:
        document = load_yaml(text)
        _write(entry, key, document)
    return document


def _read(entry: Path, key: str) -> Any:
    try:
        with open(entry, "rb") as handle:
            data = handle.read(MAX_ENTRY_BYTES + 1)
    except OSError:
        return _MISS
    head, _, body = data.partition(b"\n")
    if len(data) > MAX_ENTRY_BYTES or head != key.encode():
        return _MISS
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return _MISS


def _round_trips(document: Any) -> str | None:
    """The document's JSON if loading it gives back exactly the same values and types."""
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None
    return text if _same(json.loads(text), document) else None


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _write(entry: Path, key: str, document: Any) -> None:
    text = _round_trips(document)
    if text is None:
        return
    payload = key.encode() + b"\n" + text.encode("utf-8")
    if len(payload) > MAX_ENTRY_BYTES:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        return  # best effort: no cache
