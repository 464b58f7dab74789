"""The report-serving FastAPI app: path safety, media types, and Airflow authentication."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_provider.plugins.reports import MEDIA_TYPES, LazyASGIApp, resolve_report

DAG_ID = "penguins_retrain"


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    run = root / DAG_ID / "manual__2024-01-01T00_00_00_00_00" / "validate"
    run.mkdir(parents=True)
    (run / "validation_report.html").write_text("<html><body>report</body></html>")
    (run / "validation_result.json").write_text('{"success": true}')
    (run / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "secret.html").write_text("outside the root")
    (root / DAG_ID / "link.html").symlink_to(tmp_path / "secret.html")
    return root


def test_resolve_report_serves_html_and_json_inside_the_root(reports: Path) -> None:
    run = f"{DAG_ID}/manual__2024-01-01T00_00_00_00_00/validate"
    assert (
        resolve_report(reports, f"{run}/validation_report.html")
        == (reports / run / "validation_report.html").resolve()
    )
    assert resolve_report(reports, f"{run}/validation_result.json") is not None


@pytest.mark.parametrize(
    "relative",
    [
        "../secret.html",  # traversal
        f"{DAG_ID}/../../secret.html",
        f"{DAG_ID}/link.html",  # symlink pointing outside the root
        "/etc/passwd",  # absolute
        f"{DAG_ID}/manual__2024-01-01T00_00_00_00_00/validate/data.csv",  # not HTML/JSON
        f"{DAG_ID}/missing.html",
        f"{DAG_ID}/x\x00.html",
        "",
        DAG_ID,  # a folder
    ],
)
def test_resolve_report_refuses(reports: Path, relative: str) -> None:
    assert resolve_report(reports, relative) is None


def test_plugin_module_stays_light() -> None:
    """Plugins load in every Airflow process: importing ours must not pull FastAPI's app or heavy libs."""
    code = (
        "import sys, mlops_provider.plugins.mlops as m; "
        "bad = [n for n in ('fastapi', 'airflow.api_fastapi.core_api.security', 'great_expectations', "
        "'pandas', 'mlflow', 'evidently', 'sklearn') if n in sys.modules]; "
        "print(bad); assert m.MLOpsPlugin.fastapi_apps[0]['url_prefix'] == '/mlops'; sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert run.returncode == 0, run.stdout + run.stderr


def test_lazy_app_builds_once() -> None:
    calls = []
    lazy = LazyASGIApp(lambda: calls.append(1) or object())
    assert lazy.get() is lazy.get()
    assert calls == [1]


@pytest.fixture(scope="module")
def api(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory):
    """Airflow's real API server app (core), with our plugin mounted through the entry point."""
    from fastapi.testclient import TestClient

    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "reports-plugin-test-secret-" + "x" * 48)
    mp.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER",
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
    )
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    from airflow.api_fastapi.app import create_app, get_auth_manager, purge_cached_app

    purge_cached_app()
    app = create_app("core")
    try:
        yield TestClient(app), get_auth_manager()
    finally:
        purge_cached_app()
        mp.undo()


def _token(auth_manager, role: str | None) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username="reader", role=role))


def test_api_serves_reports_only_to_authorised_users(
    api, reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, auth_manager = api
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(reports))
    url = f"/mlops/reports/{DAG_ID}/manual__2024-01-01T00_00_00_00_00/validate/validation_report.html"

    assert client.get(url).status_code == 401  # no credentials
    assert client.get(url, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)
    no_role = {"Authorization": f"Bearer {_token(auth_manager, None)}"}
    assert client.get(url, headers=no_role).status_code == 403  # authenticated, no DAG access

    viewer = {"Authorization": f"Bearer {_token(auth_manager, 'viewer')}"}
    ok = client.get(url, headers=viewer)
    assert ok.status_code == 200, ok.text
    assert ok.text == "<html><body>report</body></html>"
    assert ok.headers["content-type"] == MEDIA_TYPES[".html"]
    assert "sandbox" in ok.headers["content-security-policy"]

    json_url = url.replace("validation_report.html", "validation_result.json")
    client.cookies.set("_token", _token(auth_manager, "viewer"))
    try:
        cookie = client.get(json_url)
    finally:
        client.cookies.clear()
    assert cookie.status_code == 200  # the UI's session cookie works too (clicking the task link)
    assert cookie.json() == {"success": True}

    for bad in (
        f"/mlops/reports/{DAG_ID}/missing.html",
        f"/mlops/reports/{DAG_ID}/%2e%2e/%2e%2e/secret.html",
        f"/mlops/reports/{DAG_ID}/..%2f..%2fsecret.html",
        f"/mlops/reports/{DAG_ID}/link.html",
        f"/mlops/reports/{DAG_ID}/manual__2024-01-01T00_00_00_00_00/validate/data.csv",
    ):
        assert client.get(bad, headers=viewer).status_code == 404, bad
