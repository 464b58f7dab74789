"""The Models page: ``GET /mlops/models`` and its static files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI


def add_routes(api: FastAPI, authenticated_user: Any) -> None:
    """Add this module's routes to the plugin's app (``authenticated_user``: a ``Depends(get_user)``)."""
