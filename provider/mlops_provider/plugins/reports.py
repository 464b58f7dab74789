"""Serve the provider's HTML/JSON reports from the API server: ``GET /mlops/reports/{path}``.

Reports live under :func:`mlops_provider.core.paths.reports_root` (a local folder or ``s3://...``) at
``<root>/<dag>/<run>/<task>/<file>``, each folder named by :func:`~mlops_provider.core.paths.encode_segment`.
A request is checked in this order, with no file system or object store access before the last step:

1. an authenticated Airflow user (JWT bearer token or the UI's session cookie), else 401;
2. the request path, split on ``/`` *before* it is percent-decoded, then each segment decoded exactly
   once: a segment that decodes to ``.``, ``..``, nothing, or anything but ``[A-Za-z0-9._%-]`` (so
   no ``/``, ``\\``, NUL, control or non-ASCII character), a folder segment that is not the one
   canonical name of an id (the first names the DAG), or a file name that is not ``.html``/``.json``
   are 404;
3. the user may read the task instances of the DAG that first segment names, else 403;
4. only ``.html``/``.json`` files whose real path lies inside ``<root>/<that DAG's folder>`` (symlinks
   leading out are refused) are served; on ``s3://`` the object is read through
   :class:`~mlops_provider.hooks.data.DataHook` with the connection ``MLOPS_REPORTS_CONN_ID`` (default:
   the scheme's, ``aws_default``). Anything else is 404.

Responses carry :data:`REPORT_CSP`: the page runs in a sandbox with an opaque origin (it cannot read
the Airflow session or call the API as the user), loads nothing from the network, connects nowhere,
submits no form and opens no popup.

This module is imported wherever plugins load (task processes too), so it imports nothing heavy:
the routes are added to the plugin's app (:mod:`mlops_provider.plugins.app`), which is built, and imports
Airflow's API security, on its first request in the API server.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_to_bytes

from mlops_provider.plugins.app import URL_PREFIX

if TYPE_CHECKING:
    from fastapi import FastAPI

Scope = MutableMapping[str, Any]

REPORTS_CONN_ENV = "MLOPS_REPORTS_CONN_ID"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json"}
MAX_REMOTE_BYTES = 64 * 1024 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9._%-]+")
_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
# Reports hold inline scripts and styles (Evidently's HTML does) and nothing else: run them in an opaque
# origin (no allow-same-origin), with no network, no form, no popup, framed only by Airflow's own pages.
REPORT_CSP = "; ".join(
    [
        "sandbox allow-scripts",
        "default-src 'none'",
        "script-src 'unsafe-inline'",
        "style-src 'unsafe-inline'",
        "img-src data:",
        "font-src data:",
        "connect-src 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": REPORT_CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-cache",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def split_raw_path(scope: Scope, decoded: str) -> list[str] | None:
    """
    The still percent-encoded segments of the request path after ``/mlops/reports/``: ``raw_path`` split
    on ``/`` and cut after the first two segments that decode to ``mlops`` and ``reports`` (an encoded
    ``/`` in the prefix is no match); None without such a prefix. ``decoded`` (the route's ``path``
    parameter, decoded once by the server) is used, as it is, only by a server that gives no raw path.
    """
    raw = scope.get("raw_path")
    if raw is None:  # never decoded again
        return decoded.split("/")
    parts = bytes(raw).decode("latin-1").split("/")
    mount = URL_PREFIX.strip("/")
    for k in range(1, len(parts) - 1):
        if (
            unquote(parts[k], errors="replace") == mount
            and unquote(parts[k + 1], errors="replace") == "reports"
        ):
            return parts[k + 2 :]
    return None


def decode_segments(raw_segments: Sequence[str], *, already_decoded: bool = False) -> list[str] | None:
    """Each segment percent-decoded once (strict UTF-8); None if any is not a plain report path name."""
    out = []
    for raw in raw_segments:
        try:
            text = raw if already_decoded else unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:  # overlong forms (%c0%ae), stray bytes
            return None
        if text in ("", ".", "..") or not _SEGMENT.fullmatch(text):
            return None
        out.append(text)
    return out if len(out) >= 2 else None


def report_segments(scope: Scope, decoded: str) -> tuple[str, list[str]] | None:
    """(DAG id, on-storage segments) of a request, or None if it names no report a DAG could own."""
    from mlops_provider.core.paths import decode_segment

    raw = split_raw_path(scope, decoded)
    if raw is None:
        return None
    segments = decode_segments(raw, already_decoded=scope.get("raw_path") is None)
    if segments is None or not _FILE_NAME.fullmatch(segments[-1]):
        return None
    if Path(segments[-1]).suffix.lower() not in MEDIA_TYPES:
        return None
    ids = [decode_segment(folder) for folder in segments[:-1]]
    if any(i is None for i in ids):  # every folder is the one canonical name of an id
        return None
    return str(ids[0]), segments


def resolve_report(root: str | os.PathLike[str], segments: Sequence[str]) -> Path | None:
    """
    The local file ``segments`` names under ``root`` if it may be served: an existing ``.html``/``.json``
    file whose real path is inside ``<real root>/<segments[0]>`` (that literal folder: a DAG folder that
    is itself a symlink, or a symlink below it leading elsewhere, is refused); else None.
    """
    if len(segments) < 2 or any(
        s in ("", ".", "..") or "/" in s or "\\" in s or "\x00" in s for s in segments
    ):
        return None
    try:
        base = Path(root).resolve() / segments[0]
        target = base.joinpath(*segments[1:]).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(base) or target == base:
        return None
    if target.suffix.lower() not in MEDIA_TYPES or not target.is_file():
        return None
    return target


def read_remote_report(root: str, segments: Sequence[str]) -> bytes | None:
    """The bytes of the report ``segments`` names under the object-store ``root``; None if absent."""
    from mlops_provider.hooks.data import DataHook

    uri = "/".join([root.rstrip("/"), *segments])
    return DataHook(conn_id=os.environ.get(REPORTS_CONN_ENV) or None).read_bytes_if_exists(
        uri, max_bytes=MAX_REMOTE_BYTES
    )


def serve_report(segments: list[str], media_type: str) -> Any:
    """The response for a checked, authorized request: the file, 404, or 503 when the store fails."""
    from fastapi import HTTPException, status
    from fastapi.responses import FileResponse, Response

    from mlops_provider.core.data import is_local, local_path
    from mlops_provider.core.paths import reports_root

    root = reports_root()
    if is_local(root):
        target = resolve_report(local_path(root), segments)
        if target is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
        return FileResponse(target, media_type=media_type, headers=SECURITY_HEADERS)
    try:
        body = read_remote_report(root, segments)
    except Exception as err:  # the store is down or refuses: say so, never a trace
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Report storage unavailable") from err
    if body is None or len(body) > MAX_REMOTE_BYTES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


def add_routes(api: FastAPI, authenticated_user: Any) -> None:
    """Add ``GET /reports/{path}`` to the plugin's app (``authenticated_user``: a ``Depends(get_user)``)."""
    # Names FastAPI must resolve from annotations are builtins or module globals (``Any``): this
    # module uses postponed annotations and FastAPI/Airflow are imported here, lazily.
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from fastapi import HTTPException, Request, status
    from fastapi.responses import Response

    def get_report(path: str, request: Request, user: Any = authenticated_user) -> Any:
        parsed = report_segments(request.scope, path)
        if parsed is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
        dag_id, segments = parsed
        allowed = get_auth_manager().is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id),
            user=user,
        )
        if not allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")
        media_type = MEDIA_TYPES[Path(segments[-1]).suffix.lower()]
        return serve_report(segments, media_type)

    get_report.__annotations__["request"] = Request  # postponed annotations: FastAPI needs the class
    api.add_api_route(
        "/reports/{path:path}",
        get_report,
        methods=["GET"],
        response_class=Response,
        response_model=None,
        name="mlops_report",
    )
