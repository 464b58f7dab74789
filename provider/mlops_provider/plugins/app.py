"""The plugin's FastAPI app, mounted at ``/mlops``: reports, the Models JSON API and the Models page.

This module is imported wherever plugins load (task processes too), so it imports nothing heavy:
:data:`app` is a small ASGI shim that builds the FastAPI application, and imports Airflow's API
security, on its first request in the API server. Every route depends on an authenticated user and
checks the user's DAG permissions itself (plugin apps get no authorization from Airflow).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

URL_PREFIX = "/mlops"


def create_app() -> FastAPI:
    """The FastAPI application (imports FastAPI and Airflow's API security)."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI

    from mlops_provider.plugins import models_api, models_page, reports

    authenticated_user = Depends(get_user)  # 401 without a valid JWT (bearer or UI cookie)
    api = FastAPI(title="MLOps", docs_url=None, redoc_url=None, openapi_url=None)
    reports.add_routes(api, authenticated_user)
    models_api.add_routes(api, authenticated_user)
    models_page.add_routes(api, authenticated_user)
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
