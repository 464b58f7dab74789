"""The Models page routes in Airflow's real API app: authentication, one static shell, whitelisted static
files, security headers, the navigation entry in ``/api/v2/plugins``; and the page script's text-only rules.

The page drawn in a browser is tested in tests/integration/test_models_page_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from api_server import core_api_app, jwt_for

from mlops_provider.plugins.models_page import PAGE_CSP, STATIC_DIR, STATIC_FILES, page_shell

HOSTILE = "<img src=x onerror=alert(1)>\"'&<script>alert(2)</script>"


@pytest.fixture(scope="module")
def api(airflow_db: Path):
    """Airflow's real API server app (core), with our plugin mounted through the entry point."""
    with core_api_app("models-page") as (client, auth_manager):
        yield client, {"Authorization": f"Bearer {jwt_for(auth_manager, 'viewer')}"}


PAGES = [
    "/mlops/models",
    "/mlops/models/",
    "/mlops/models/weather",
    f"/mlops/models/{quote(HOSTILE, safe='')}",
]
STATIC = [f"/mlops/static/{name}" for name in STATIC_FILES]


@pytest.mark.parametrize("path", [*PAGES, *STATIC, "/mlops/static/nope.js"])
def test_every_route_needs_an_authenticated_user(api, path: str) -> None:
    client, _ = api
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)


def test_pages_are_one_static_shell_with_the_security_headers(api) -> None:
    client, auth = api
    bodies = set()
    for path in PAGES:
        response = client.get(path, headers=auth)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["content-security-policy"] == PAGE_CSP
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "private, no-cache"
        assert response.headers["referrer-policy"] == "no-referrer"
        bodies.add(response.text)
    assert bodies == {page_shell("/mlops")}  # the model name is never written into the page
    (shell,) = bodies
    assert "weather" not in shell
    assert "onerror" not in shell
    assert '<script src="/mlops/static/models.js" defer></script>' in shell
    assert '<link rel="stylesheet" href="/mlops/static/models.css">' in shell
    assert "<script>" not in shell
    assert "style=" not in shell


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("models.js", "text/javascript; charset=utf-8"),
        ("models.css", "text/css; charset=utf-8"),
        ("models-icon.svg", "image/svg+xml"),
    ],
)
def test_static_files_come_from_the_package_with_their_media_type(api, name: str, media_type: str) -> None:
    client, auth = api
    response = client.get(f"/mlops/static/{name}", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert response.content == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/mlops/static/models_page.py",
        "/mlops/static/../models_page.py",
        "/mlops/static/..%2Fmodels_page.py",
        "/mlops/static/%2e%2e%2fapp.py",
        "/mlops/static/..%5Cmodels_page.py",
        "/mlops/static/MODELS.JS",
        "/mlops/static/models.js%00.css",
        "/mlops/static/",
        "/mlops/static/static/models.js",
        "/mlops/static/%2Fetc%2Fpasswd",
    ],
)
def test_only_whitelisted_static_files_are_served(api, path: str) -> None:
    client, auth = api
    response = client.get(path, headers=auth)
    assert response.status_code == 404, path
    assert b"def add_routes" not in response.content
    assert b"root:" not in response.content


def test_the_plugins_api_lists_the_models_navigation_entry(api) -> None:
    client, auth = api
    response = client.get("/api/v2/plugins", headers=auth)
    assert response.status_code == 200, response.text
    (mlops,) = [p for p in response.json()["plugins"] if p["name"] == "mlops"]
    views = [v for v in mlops["external_views"] if v["url_route"] == "models"]
    assert len(views) == 1
    view = views[0]
    assert (view["name"], view["href"], view["destination"]) == ("Models", "/mlops/models", "nav")
    assert view["icon"] == "/mlops/static/models-icon.svg"
    assert client.get(view["icon"], headers=auth).status_code == 200
    assert client.get(view["icon_dark_mode"], headers=auth).status_code == 200


def test_every_static_file_ships_in_the_package() -> None:
    for name in STATIC_FILES:
        assert (STATIC_DIR / name).is_file(), name


def test_the_page_script_builds_the_dom_from_text_only() -> None:
    """No markup parsing of any string: no innerHTML & co, no eval, no inline handlers, no other origin."""
    script = (STATIC_DIR / "models.js").read_text()
    for banned in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setAttribute("on',
        "DOMParser",
        "createContextualFragment",
        "srcdoc",
    ):
        assert banned not in script, banned
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", script)  # loads nothing from elsewhere
    assert 'credentials: "same-origin"' in script
    css = (STATIC_DIR / "models.css").read_text()
    assert "@import" not in css
    assert "url(" not in css
