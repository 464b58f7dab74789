"""The Models page: ``GET /mlops/models``, ``GET /mlops/models/{name}`` and ``GET /mlops/static/{file}``.

Both pages are one static HTML shell: ``models.js`` reads the model name from the URL path and draws
the list or the model page from the JSON API (:mod:`mlops_provider.plugins.models_api`), putting every
string into the DOM as text. The name is never written into the HTML on the server. Only the files in
:data:`STATIC_FILES` are served, from this package's ``static`` folder. Every route needs an
authenticated user (401 otherwise); what a user may see is decided by the JSON API.

Responses carry :data:`PAGE_CSP`: our own script and style only, no inline code, no other origin,
connections back to this server only, framed only by Airflow's own pages (the UI shows the page in
an iframe at ``/plugin/models``).
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "models.js": "text/javascript; charset=utf-8",
    "models.css": "text/css; charset=utf-8",
    "models-icon.svg": "image/svg+xml",  # the navigation entry's icon
    "models-icon-dark.svg": "image/svg+xml",
}
PAGE_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'self'",
        "base-uri 'none'",
        "form-action 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-cache",
    "Referrer-Policy": "no-referrer",
}


def page_shell(root_path: str) -> str:
    """The HTML of both pages; ``root_path`` is where the plugin app is mounted (``/mlops``)."""
    static = html.escape(f"{root_path.rstrip('/')}/static", quote=True)
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        "<title>Models</title>\n"
        f'<link rel="stylesheet" href="{static}/models.css">\n'
        f'<script src="{static}/models.js" defer></script>\n'
        "</head>\n<body>\n"
        '<main id="app" aria-live="polite"><p class="loading">Loading…</p></main>\n'
        "<noscript><p>The Models page needs JavaScript.</p></noscript>\n"
        "</body>\n</html>\n"
    )


@cache
def static_file(name: str) -> bytes | None:
    """The bytes of a whitelisted static file, read once; None for any other name."""
    if name not in STATIC_FILES:
        return None
    return (STATIC_DIR / name).read_bytes()


def add_routes(api: FastAPI, authenticated_user: Any) -> None:
    """Add this module's routes to the plugin's app (``authenticated_user``: a ``Depends(get_user)``)."""
    from fastapi import HTTPException, Request, status
    from fastapi.responses import HTMLResponse, Response

    def models_page(request: Request, user: Any = authenticated_user) -> Any:
        return HTMLResponse(page_shell(str(request.scope.get("root_path", ""))), headers=PAGE_HEADERS)

    def model_page(name: str, request: Request, user: Any = authenticated_user) -> Any:
        # ``name`` is read by models.js from the URL path; the server never echoes it
        return models_page(request, user)

    def static(file: str, user: Any = authenticated_user) -> Any:
        body = static_file(file)
        if body is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not found")
        return Response(body, media_type=STATIC_FILES[file], headers=PAGE_HEADERS)

    # postponed annotations: FastAPI needs the class itself
    models_page.__annotations__["request"] = Request
    model_page.__annotations__["request"] = Request
    for path, endpoint, name in (
        ("/models", models_page, "mlops_models_page"),
        ("/models/{name:path}", model_page, "mlops_model_page"),
        ("/static/{file}", static, "mlops_static"),
    ):
        api.add_api_route(
            path,
            endpoint,
            methods=["GET"],
            response_class=Response,
            response_model=None,
            include_in_schema=False,
            name=name,
        )
