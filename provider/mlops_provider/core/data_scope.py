"""Where a trigger may point the training data: the configured ``data.train``, or inside a listed prefix.

A trigger's ``training_data`` Param is hostile until checked. :func:`check_training_data` accepts it
only when it names the configured training data or lies inside one of ``data.allowed_training_prefixes``
(none listed: no override). Both sides are compared as what a reader would open, not as text:

* local paths (plain or ``file://``) are resolved the way the data hook resolves them (relative to the
  config's folder, ``..`` collapsed) and then through symlinks (``os.path.realpath``);
* remote URIs compare their scheme case-insensitively, their bucket (or host) exactly, and refuse
  ``.``/``..`` segments (also percent-encoded) and control characters;
* the comparison is by whole path segments: ``/data/train2`` is not inside ``/data/train``, nor
  ``s3://bucket-2/x`` inside ``s3://bucket``; a trailing slash makes no difference.

Every refusal names the Param and the rule. No Airflow in here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from urllib.parse import unquote

from mlops_provider.core.data import is_local, local_path, resolve_uri
from mlops_provider.core.errors import DataError, InvalidInputError

PARAM = "training_data"
CONFIG_KEY = "data.allowed_training_prefixes"
RULE = f"a training-data override must be data.train or lie inside one of {CONFIG_KEY}"
_PATTERN_CHARS = set("*?[]{}")

Canonical = tuple[str, tuple[str, ...]]  # ("file" | "scheme://bucket", path segments)


class DataScopeError(InvalidInputError):
    """A training-data override outside what the config allows."""


def _control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def canonical(uri: str, base_dir: str | os.PathLike[str] | None) -> Canonical:
    """What a reader opens for ``uri``, as (root, segments); ValueError when it cannot be compared."""
    if not isinstance(uri, str) or not uri.strip() or _control(uri):
        raise ValueError(f"{uri!r} is not a path or URI")
    try:
        resolved = resolve_uri(uri, base_dir)
    except DataError as err:
        raise ValueError(str(err)) from None
    if is_local(resolved):
        path = os.path.realpath(local_path(resolved))
        return "file", tuple(part for part in path.split(os.sep) if part)
    scheme, sep, rest = resolved.partition("://")
    bucket, _, key = rest.partition("/")
    if not sep or not bucket or "@" in bucket:
        raise ValueError(f"{uri!r} is not a URI like scheme://bucket/key")
    segments = key.split("/") if key else []
    if segments and segments[-1] == "":
        segments.pop()  # one trailing slash
    if any(unquote(s) in (".", "..") for s in segments):
        raise ValueError(f"{uri!r} has a '.' or '..' segment")
    return f"{scheme.lower()}://{bucket}", tuple(segments)


def _within(candidate: Canonical, prefix: Canonical) -> bool:
    root, parts = prefix
    return candidate[0] == root and candidate[1][: len(parts)] == parts


def check_prefix(text: str) -> str:
    """A ``data.allowed_training_prefixes`` entry: a folder or bucket path, no pattern, no template."""
    if not isinstance(text, str) or not text.strip() or _control(text):
        raise ValueError(f"{text!r} is not a path or URI")
    if "{{" in text or "{%" in text or _PATTERN_CHARS & set(text):
        raise ValueError(f"{text!r}: a prefix is a plain folder or bucket path (no glob, no Jinja)")
    root, parts = canonical(text, "/")
    if not parts and root == "file":
        raise ValueError(f"{text!r} is the filesystem root: list the folders overrides may use")
    return text


def check_training_data(
    uri: str,
    *,
    default: str | None,
    prefixes: Iterable[str] | None,
    base_dir: str | os.PathLike[str] | None,
) -> None:
    """Refuse (DataScopeError naming the Param and the rule) ``uri`` outside ``default`` and ``prefixes``."""
    allowed = [p for p in (prefixes or []) if p]
    listed = ", ".join(allowed) or "none listed, so no override is allowed"
    try:
        candidate = canonical(uri, base_dir)
    except ValueError as err:
        raise DataScopeError(f"Param {PARAM!r}: refused: {err}; {RULE} ({listed})") from None
    try:
        if default and canonical(default, base_dir) == candidate:
            return
    except ValueError:
        pass  # an unreadable default only means the override is not it
    for prefix in allowed:
        try:
            if _within(candidate, canonical(prefix, base_dir)):
                return
        except ValueError:
            continue
    raise DataScopeError(f"Param {PARAM!r}: {uri!r} is refused: {RULE} ({listed})")


def within(uri: str, prefix: str, base_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``uri`` lies inside the folder or bucket path ``prefix`` (compared as above); never raises."""
    try:
        return _within(canonical(uri, base_dir), canonical(prefix, base_dir))
    except ValueError:
        return False


def template_folder(uri: str) -> str:
    """The folder part of ``uri`` before its first Jinja expression (``a/b/{{ run_id }}.csv`` -> ``a/b``)."""
    head = uri.split("{{", 1)[0].split("{%", 1)[0]
    return head.rsplit("/", 1)[0] if "/" in head else head
