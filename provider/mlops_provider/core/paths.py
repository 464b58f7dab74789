"""Where the provider keeps files on the embedded default (reports), and run-scoped prefixes.

Report folders are named losslessly after the DAG id, run id and task id: :func:`encode_segment`
percent-encodes every UTF-8 byte outside ``[A-Za-z0-9_-]`` (so ``.``, ``%``, ``:``, ``+`` and ``/``
are all encoded, and a folder can never be ``.``, ``..`` or empty) and :func:`decode_segment` takes the
folder name back to the id, accepting only the one canonical encoding of each id (upper-case hex, no
encoded safe byte, valid UTF-8): two ids never share a folder, and two folder names never map to one id.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SAFE_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_CANONICAL = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+")


def mlops_home() -> Path:
    """Root of the embedded default: ``MLOPS_HOME`` or the working directory."""
    return Path(os.environ.get("MLOPS_HOME") or os.getcwd()).resolve()


def reports_root() -> str:
    """Base URI for reports: ``MLOPS_REPORTS_URI`` (may be s3://...) or ``<MLOPS_HOME>/.mlops/reports``."""
    return os.environ.get("MLOPS_REPORTS_URI") or str(mlops_home() / ".mlops" / "reports")


def encode_segment(value: str) -> str:
    """
    The folder name of a DAG id, run id or task id: every UTF-8 byte outside ``[A-Za-z0-9_-]`` as
    ``%XX`` (upper-case hex). Lossless and injective; see :func:`decode_segment`.

    :raises ValueError: for an empty value (ids are never empty).
    """
    if not value:
        raise ValueError("an id to encode as a path segment must not be empty")
    return "".join(chr(b) if b in SAFE_BYTES else f"%{b:02X}" for b in value.encode("utf-8"))


def decode_segment(segment: str) -> str | None:
    """
    The id whose :func:`encode_segment` is ``segment``; ``None`` when ``segment`` is not exactly such
    an encoding (lower-case hex, an encoded safe byte, a raw ``.``/``%``/other byte, invalid UTF-8).
    """
    if not _CANONICAL.fullmatch(segment):
        return None
    raw = bytearray()
    i = 0
    while i < len(segment):
        if segment[i] == "%":
            byte = int(segment[i + 1 : i + 3], 16)
            if byte in SAFE_BYTES:
                return None  # "%5F" for "_": not the canonical name of any id
            raw.append(byte)
            i += 3
        else:
            raw.append(ord(segment[i]))
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def run_prefix(root: str, dag_id: str, run_id: str, task_id: str) -> str:
    """``<root>/<dag_id>/<run_id>/<task_id>``, each id encoded by :func:`encode_segment`."""
    return "/".join(
        [root.rstrip("/"), encode_segment(dag_id), encode_segment(run_id), encode_segment(task_id)]
    )
