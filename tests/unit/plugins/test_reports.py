"""The report-serving FastAPI app: path parsing, path safety, links, CSP, and Airflow authentication.

The per-DAG authorization is proven over real HTTP in tests/integration/test_reports_http.py; here the
pieces are checked one by one, and the in-process app with Airflow's real API security.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest
from api_server import core_api_app, jwt_for

from mlops_provider.core.paths import encode_segment, run_prefix
from mlops_provider.links.reports import report_url
from mlops_provider.plugins.app import LazyASGIApp
from mlops_provider.plugins.reports import (
    MEDIA_TYPES,
    REPORT_CSP,
    decode_segments,
    report_segments,
    resolve_report,
)

DAG_ID = "penguins_retrain"
RUN_ID = "manual__2024-01-01T00:00:00+00:00"
RUN = encode_segment(RUN_ID)


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    run = root / DAG_ID / RUN / "validate"
    run.mkdir(parents=True)
    (run / "validation_report.html").write_text("<html><body>report</body></html>")
    (run / "validation_result.json").write_text('{"success": true}')
    (run / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "secret.html").write_text("outside the root")
    (root / DAG_ID / "link.html").symlink_to(tmp_path / "secret.html")
    other = root / "other_dag" / RUN / "validate"
    other.mkdir(parents=True)
    (other / "validation_report.html").write_text("other DAG's report")
    (root / DAG_ID / "to_other.html").symlink_to(other / "validation_report.html")
    (root / "alias_dag").symlink_to(root / "other_dag")  # a DAG folder that is a symlink
    return root


def scope(raw: str) -> tuple[dict[str, object], str]:
    """An ASGI scope for ``GET /mlops/reports/<raw>`` as uvicorn builds it, and the route's path param."""
    full = "/mlops/reports/" + raw
    decoded = unquote(full)
    return {"raw_path": full.encode("latin-1"), "path": decoded, "root_path": "/mlops"}, decoded[
        len("/mlops/reports/") :
    ]


def test_resolve_report_serves_html_and_json_inside_the_dag_folder(reports: Path) -> None:
    run = [DAG_ID, RUN, "validate"]
    assert (
        resolve_report(reports, [*run, "validation_report.html"])
        == (reports.joinpath(*run, "validation_report.html")).resolve()
    )
    assert resolve_report(reports, [*run, "validation_result.json"]) is not None


@pytest.mark.parametrize(
    "segments",
    [
        ["..", "secret.html"],
        [DAG_ID, "..", "..", "secret.html"],
        [DAG_ID, "..", "other_dag", RUN, "validate", "validation_report.html"],
        [DAG_ID, "link.html"],  # symlink out of the root
        [DAG_ID, "to_other.html"],  # symlink into another DAG's folder
        ["alias_dag", RUN, "validate", "validation_report.html"],  # DAG folder is a symlink
        [DAG_ID, RUN, "validate", "data.csv"],  # not HTML/JSON
        [DAG_ID, "missing.html"],
        [DAG_ID, "x\x00.html"],
        [DAG_ID, "a/../../secret.html"],
        [DAG_ID, "a\\b.html"],
        [DAG_ID, "", "x.html"],
        [DAG_ID, ".", "x.html"],
        ["/etc", "passwd.html"],
        [DAG_ID],
        [],
    ],
)
def test_resolve_report_refuses(reports: Path, segments: list[str]) -> None:
    assert resolve_report(reports, segments) is None


def test_report_segments_decodes_once_and_maps_the_dag_folder() -> None:
    link = f"{DAG_ID}/{RUN.replace('%', '%25')}/validate/validation_report.html"
    assert report_segments(*scope(link)) == (DAG_ID, [DAG_ID, RUN, "validate", "validation_report.html"])
    assert report_segments(*scope("allowed%5Fdag/r/t/x.html")) == (  # plain URL encoding of "_"
        "allowed_dag",
        ["allowed_dag", "r", "t", "x.html"],
    )
    dotted = encode_segment("my.dag")  # my%2Edag on disk, my%252Edag in the URL
    assert report_segments(*scope(f"{dotted.replace('%', '%25')}/r/t/x.json")) == (
        "my.dag",
        [dotted, "r", "t", "x.json"],
    )


@pytest.mark.parametrize(
    "raw",
    [
        "allowed/../secret/r/t/x.html",
        "allowed/..%2Fsecret/r/t/x.html",
        "allowed/..%2fsecret/r/t/x.html",
        "allowed/%2e%2e/secret/r/t/x.html",
        "allowed/%2E%2E%2Fsecret/r/t/x.html",
        "allowed/%252e%252e/secret/r/t/x.html",  # decodes once to %2e%2e: a folder name, never ".."
        "%2e%2e/secret/r/t/x.html",
        "allowed/..%5csecret/r/t/x.html",
        "allowed/..\\secret/r/t/x.html",
        "allowed/./r/t/x.html",
        "allowed/%2e/r/t/x.html",
        "allowed//r/t/x.html",
        "allowed/r//x.html",
        "/etc/passwd.html",
        "%2Fetc%2Fpasswd.html",
        "allowed/x%00.html",
        "allowed/%c0%ae%c0%ae/secret/x.html",  # overlong UTF-8 dots
        "allowed/%e0%80%ae/x.html",
        "allowed/%ef%bc%8e%ef%bc%8e/secret/x.html",  # fullwidth dots
        "allowed/%e2%80%a4%e2%80%a4/secret/x.html",  # one-dot leaders
        "allowed/caf%C3%A9.html",  # non-ASCII is never an on-disk name
        "allowed/x%0a.html",
        "allowed/r/t/x.csv",
        "allowed/r/t/x",
        "allowed",
        "",
        "allowed%255Fdag/r/t/x.html",  # a folder "allowed%5Fdag" is no DAG's canonical name
        "my.dag/r/t/x.html",  # raw dot: the folder of "my.dag" is my%2Edag
        "my%252edag/r/t/x.html",  # lower-case hex: not canonical
        "allowed/r%255F/t/x.html",  # every folder must be canonical, not only the DAG's
        "allowed/r/t/.x.html",
        "allowed/r/t/x%25.html",
    ],
)
def test_report_segments_refuses(raw: str) -> None:
    assert report_segments(*scope(raw)) is None


def test_report_segments_refuses_an_encoded_slash_in_the_mount_prefix() -> None:
    full = "/mlops/reports%2Fallowed_dag/r/t/x.html"
    decoded = unquote(full)
    request = {"raw_path": full.encode(), "path": decoded, "root_path": "/mlops"}
    assert report_segments(request, "allowed_dag/r/t/x.html") is None


def test_decode_segments_without_a_raw_path_never_decodes_twice() -> None:
    assert decode_segments(["d", "a%2Eb", "x.html"], already_decoded=True) == ["d", "a%2Eb", "x.html"]
    assert report_segments({"path": "/mlops/reports/d/a%2Eb/x.html"}, "d/a%2Eb/x.html") == (
        "d",
        ["d", "a%2Eb", "x.html"],
    )
    assert report_segments({"path": "/mlops/reports/d/%2e%2e/x.html"}, "d/%2e%2e/x.html") is None
    assert report_segments({"path": "/mlops/reports/d/../x.html"}, "d/../x.html") is None


def test_report_url_encodes_on_disk_names_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    prefix = run_prefix(str(tmp_path / "reports"), "my.dag", RUN_ID, "g.validate")
    url = report_url(f"{prefix}/validation_report.html")
    assert url == (
        "/mlops/reports/my%252Edag/manual__2024-01-01T00%253A00%253A00%252B00%253A00/"
        "g%252Evalidate/validation_report.html"
    )
    assert report_url(str(tmp_path / "elsewhere" / "x.html")) is None  # not servable: no dead link
    assert report_url(str(tmp_path / "reports")) is None


def test_report_url_points_s3_reports_at_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_REPORTS_URI", "s3://data/reports/")
    prefix = run_prefix("s3://data/reports", "d", "a:b", "t")
    assert report_url(f"{prefix}/drift_report.html") == "/mlops/reports/d/a%253Ab/t/drift_report.html"
    assert report_url("s3://other/reports/d/r/t/x.html") is None
    assert report_url("s3://data/reports-other/d/x.html") is None
    assert report_url("/tmp/reports/d/x.html") is None


def test_plugin_module_stays_light() -> None:
    """Plugins load in every Airflow process: importing ours must not pull FastAPI's app or heavy libs."""
    code = (
        "import sys, mlops_provider.plugins.mlops as m; "
        "bad = [n for n in ('fastapi', 'airflow.api_fastapi.core_api.security', 'great_expectations', "
        "'pandas', 'mlflow', 'evidently', 'sklearn', 'boto3') if n in sys.modules]; "
        "print(bad); assert m.MLOpsPlugin.fastapi_apps[0]['url_prefix'] == '/mlops'; sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert run.returncode == 0, run.stdout + run.stderr


def test_lazy_app_builds_once() -> None:
    calls = []
    lazy = LazyASGIApp(lambda: calls.append(1) or object())
    assert lazy.get() is lazy.get()
    assert calls == [1]


def test_csp_allows_inline_scripts_in_a_sandbox_and_nothing_else() -> None:
    directives = {d.split()[0]: d.split()[1:] for d in REPORT_CSP.split("; ")}
    assert directives["sandbox"] == ["allow-scripts"]  # no popups, no same-origin, no forms
    assert directives["default-src"] == ["'none'"]
    assert directives["connect-src"] == ["'none'"]
    assert directives["form-action"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'self'"]
    assert directives["script-src"] == ["'unsafe-inline'"]


@pytest.fixture(scope="module")
def api(airflow_db: Path):
    """Airflow's real API server app (core), with our plugin mounted through the entry point."""
    with core_api_app("reports-plugin") as client_and_manager:
        yield client_and_manager


def _token(auth_manager, role: str | None) -> str:
    return jwt_for(auth_manager, role)


def test_api_serves_reports_only_to_authenticated_readers(
    api, reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, auth_manager = api
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(reports))
    url = report_url(str(reports / DAG_ID / RUN / "validate" / "validation_report.html"))
    assert url is not None

    assert client.get(url).status_code == 401  # no credentials
    assert client.get(url, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)
    no_role = {"Authorization": f"Bearer {_token(auth_manager, None)}"}
    denied = client.get(url, headers=no_role)
    assert denied.status_code == 403, denied.text  # authenticated, no DAG access

    viewer = {"Authorization": f"Bearer {_token(auth_manager, 'viewer')}"}
    ok = client.get(url, headers=viewer)
    assert ok.status_code == 200, ok.text
    assert ok.text == "<html><body>report</body></html>"
    assert ok.headers["content-type"] == MEDIA_TYPES[".html"]
    assert ok.headers["content-security-policy"] == REPORT_CSP
    assert ok.headers["x-content-type-options"] == "nosniff"

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
        f"/mlops/reports/{DAG_ID}/to_other.html",
        f"/mlops/reports/alias_dag/{RUN.replace('%', '%25')}/validate/validation_report.html",
        url.replace("validation_report.html", "data.csv"),
    ):
        response = client.get(bad, headers=viewer)
        assert response.status_code == 404, bad
        assert "outside the root" not in response.text
        assert "other DAG" not in response.text
