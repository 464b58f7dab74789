"""Serve the provider's HTML/JSON reports from the API server: ``GET /mlops/reports/{path}``.

Files are read from :func:`mlops_provider.core.paths.reports_root` (local only; reports on object
storage are linked to directly). The first path segment is the DAG id (reports live under
``<root>/<dag_id>/<run_id>/<task_id>/``), and a request needs an authenticated Airflow user (JWT
bearer token or the UI's session cookie) allowed to read that DAG's task instances; anything else
is 401/403. Only ``.html`` and ``.json`` files inside the root are served: other names, paths
escaping the root (``..``, symlinks) and missing files are 404.

This module is imported wherever plugins load (task processes too), so it imports nothing heavy:
:data:`app` is a small ASGI shim that builds the FastAPI application, and imports Airflow's API
security, on its first request in the API server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

URL_PREFIX = "/mlops"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json"}
# Reports may hold scripts (Evidently's HTML does): run them in an opaque origin, so they cannot
# read the Airflow session or call the API as the user.
SECURITY_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-downloads",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-cache",
    "Referrer-Policy": "no-referrer",
}


def resolve_report(root: str | os.PathLike[str], relative: str) -> Path | None:
    """
    The file ``relative`` names under ``root`` if it may be served (an existing ``.html``/``.json``
    file whose real path is inside the real root), else None.
    """
    if not relative or "\x00" in relative or os.path.isabs(relative) or "\\" in relative:
        return None
    base = Path(root).resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(base) or target == base:
        return None
    if target.suffix.lower() not in MEDIA_TYPES or not target.is_file():
        return None
    return target


def _local_root() -> str | None:
    from mlops_provider.core.data import is_local, local_path
    from mlops_provider.core.paths import reports_root

    root = reports_root()
    return local_path(root) if is_local(root) else None


def create_app() -> FastAPI:
    """The FastAPI application (imports FastAPI and Airflow's API security)."""
    # Names FastAPI must resolve from annotations are builtins or module globals (``Any``): this
    # module uses postponed annotations and FastAPI/Airflow are imported here, lazily.
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException, status
    from fastapi.responses import FileResponse

    authenticated_user = Depends(get_user)  # 401 without a valid JWT (bearer or UI cookie)

    def require_dag_read(path: str, user: Any = authenticated_user) -> None:
        dag_id = path.split("/", 1)[0]
        allowed = get_auth_manager().is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id or None),
            user=user,
        )
        if not allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")

    api = FastAPI(title="MLOps reports", docs_url=None, redoc_url=None, openapi_url=None)

    @api.get(
        "/reports/{path:path}",
        dependencies=[Depends(require_dag_read)],
        response_class=FileResponse,
        response_model=None,
        name="mlops_report",
    )
    def get_report(path: str) -> Any:
        root = _local_root()
        target = resolve_report(root, path) if root else None
        if target is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report")
        return FileResponse(target, media_type=MEDIA_TYPES[target.suffix.lower()], headers=SECURITY_HEADERS)

    return api


class LazyASGIApp:
    """An ASGI application that builds the real one with ``factory`` on its first call."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.get()(scope, receive, send)


app = LazyASGIApp(create_app)
