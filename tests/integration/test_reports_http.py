"""Reports over real HTTP: a real ``airflow api-server`` whose auth manager lets alice read one DAG only.

Each request goes out byte for byte (``http.client``: no client-side normalisation of ``..`` or of
percent escapes). The server runs twice: reports on the local file system, then on S3 (``weed mini``),
read through DataHook with ``MLOPS_REPORTS_CONN_ID``. Every encoding trick must be refused, never a 200
with another DAG's bytes; the admin reads the secret reports, so a refusal is never just a missing file.

The server imports :class:`OneDagAuthManager` from this module (``PYTHONPATH``: this folder and tests/,
see :mod:`api_server`).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from api_server import (
    AliceReadsOnlyAuthManager,
    ApiServer,
    api_server,
    auth_env,
    free_ports,
    private_home,
    random_passwords,
    spawn,
    stop,
)

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
ALICE_DAGS = frozenset({"allowed_dag", "private"})
RUN_ID = "manual__2025-01-02T03:04:05+00:00"
TASK = "validate"
FILE = "validation_report.html"
S3_KEY, S3_SECRET = "reports-access-key", "reports-secret-key"


class OneDagAuthManager(AliceReadsOnlyAuthManager):
    """SimpleAuthManager, except that alice may read only the DAGs in :data:`ALICE_DAGS`."""

    ALICE_DAGS = ALICE_DAGS


@dataclass
class Server(ApiServer):
    root: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # secret markers by DAG id


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A private AIRFLOW_HOME, migrated once; the environment every server process gets; the passwords."""
    tmp = tmp_path_factory.mktemp("reports-http")
    passwords = random_passwords("alice", "admin")
    auth_manager = f"{Path(__file__).stem}.OneDagAuthManager"
    settings = auth_env(tmp, auth_manager, {"alice": "viewer", "admin": "admin"}, passwords)
    return tmp, private_home(tmp, settings, import_from=HERE), passwords


def start_s3(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    names = ["s3", "s3g", "m", "mg", "v", "vg", "f", "fg", "a", "ag"]
    p = dict(zip(names, free_ports(len(names)), strict=True))
    argv = [
        str(BIN / "weed"), "mini", f"-dir={tmp / 's3'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3g']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={p['m']}", f"-master.port.grpc={p['mg']}", f"-volume.port={p['v']}",
        f"-volume.port.grpc={p['vg']}", f"-filer.port={p['f']}", f"-filer.port.grpc={p['fg']}",
        f"-admin.port={p['a']}", f"-admin.port.grpc={p['ag']}", "-admin.ui=false", "-webdav=false",
        "-master.telemetry=false", "-bucket=reports",
    ]  # fmt: skip
    (tmp / "s3").mkdir(exist_ok=True)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    process = spawn(argv, env, tmp / "weed.log")
    endpoint = f"http://127.0.0.1:{p['s3']}"
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            client.head_bucket(Bucket="reports")
            return process, endpoint
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                stop(process)
                raise RuntimeError(
                    "weed mini did not start:\n" + (tmp / "weed.log").read_text()[-2000:]
                ) from None
            time.sleep(0.3)


def write_reports(root: str, conn_id: str | None) -> dict[str, bytes]:
    """One report per DAG (through the operators' path mapping and DataHook); the bytes by DAG id."""
    from mlops_provider.core.paths import run_prefix
    from mlops_provider.hooks.data import DataHook

    hook = DataHook(conn_id=conn_id)
    files = {}
    for dag_id in ("allowed_dag", "secret_dag", "private", "_private", "allowed.dag"):
        files[dag_id] = f"<html><body>REPORT-OF-{dag_id}-{secrets.token_hex(4)}</body></html>".encode()
        hook.write_bytes(files[dag_id], f"{run_prefix(root, dag_id, RUN_ID, TASK)}/{FILE}")
    for run_id in ("a:b", "a+b"):  # the lossy mapping put both in one folder
        files[run_id] = f"<html>RUN-{run_id}-{secrets.token_hex(4)}</html>".encode()
        hook.write_bytes(files[run_id], f"{run_prefix(root, 'allowed_dag', run_id, TASK)}/{FILE}")
    # planted: a folder named like another DAG's encoded name, holding a secret's bytes
    hook.write_bytes(files["secret_dag"], f"{root}/allowed%5Fdag/r/t/{FILE}")
    return files


def plant_symlinks(root: Path) -> None:
    from mlops_provider.core.paths import encode_segment

    run = root / "allowed_dag" / encode_segment(RUN_ID) / TASK
    secret = root / "secret_dag" / encode_segment(RUN_ID) / TASK / FILE
    (run / "link.html").symlink_to(secret)
    (root / "allowed_dag" / "dir_link").symlink_to(secret.parent, target_is_directory=True)
    (root / "alias_dag").symlink_to(root / "secret_dag", target_is_directory=True)
    (root.parent / "outside.html").write_bytes(b"OUTSIDE-THE-ROOT")
    (run / "out.html").symlink_to(root.parent / "outside.html")


@pytest.fixture(scope="module", params=["local", "s3"])
def server(
    request: pytest.FixtureRequest, home: tuple[Path, dict[str, str], dict[str, str]]
) -> Iterator[Server]:
    tmp, base_env, passwords = home
    env = dict(base_env)
    weed = None
    if request.param == "local":
        root = str(tmp / "reports")
        conn_id = None
    else:
        weed, endpoint = start_s3(tmp)
        root, conn_id = "s3://reports/mlops", "reports_s3"
        conn = {
            "conn_type": "aws",
            "login": S3_KEY,
            "password": S3_SECRET,
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        env.update({"AIRFLOW_CONN_REPORTS_S3": json.dumps(conn), "MLOPS_REPORTS_CONN_ID": conn_id})
    env["MLOPS_REPORTS_URI"] = root
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_REPORTS_URI", root)  # report_url() in this process uses the same root
    if conn_id:
        mp.setenv("AIRFLOW_CONN_REPORTS_S3", env["AIRFLOW_CONN_REPORTS_S3"])
    try:
        files = write_reports(root, conn_id)
        if request.param == "local":
            plant_symlinks(Path(root))
        with api_server(env, tmp / f"api-{request.param}.log") as port:
            yield Server(port=port, passwords=passwords, root=root, files=files)
    finally:
        if weed is not None:
            stop(weed)
        mp.undo()


def link(dag_id: str, run_id: str = RUN_ID) -> str:
    from mlops_provider.core.paths import reports_root, run_prefix
    from mlops_provider.links.reports import report_url

    url = report_url(f"{run_prefix(reports_root(), dag_id, run_id, TASK)}/{FILE}")
    assert url is not None
    return url


def q(text: str) -> str:
    return quote(text, safe="")


@pytest.mark.slow
def test_alice_reads_her_dags_reports_with_the_csp(server: Server) -> None:
    from mlops_provider.plugins.reports import REPORT_CSP

    status, body, headers = server.get(link("allowed_dag"))
    assert (status, body) == (200, server.files["allowed_dag"])
    assert headers["content-security-policy"] == REPORT_CSP
    assert headers["content-type"].startswith("text/html")
    assert headers["x-content-type-options"] == "nosniff"
    assert server.get(link("private"))[1] == server.files["private"]  # not "_private"'s
    # run ids that the lossy mapping merged: two folders, two reports
    assert server.get(link("allowed_dag", "a:b"))[1] == server.files["a:b"]
    assert server.get(link("allowed_dag", "a+b"))[1] == server.files["a+b"]
    assert server.get(link("allowed_dag"), user=None)[0] == 401


@pytest.mark.slow
@pytest.mark.parametrize("dag_id", ["secret_dag", "_private", "allowed.dag"])
def test_other_dags_are_forbidden_to_alice_and_open_to_the_admin(server: Server, dag_id: str) -> None:
    status, body, _ = server.get(link(dag_id))
    assert status == 403
    assert server.files[dag_id] not in body
    assert server.get(link(dag_id), user="admin")[:2] == (200, server.files[dag_id])  # the file is there


def hostile_paths() -> list[tuple[str, str]]:
    from mlops_provider.core.paths import encode_segment

    a, s, run = "allowed_dag", "secret_dag", q(encode_segment(RUN_ID))
    rest = f"{run}/{TASK}/{FILE}"
    p = "/mlops/reports"
    return [
        ("dotdot", f"{p}/{a}/../{s}/{rest}"),
        ("dotdot-slash-encoded", f"{p}/{a}/..%2F{s}/{rest}"),
        ("dotdot-slash-encoded-lower", f"{p}/{a}/..%2f{s}/{rest}"),
        ("dag-with-encoded-slash", f"{p}/{a}%2F..%2F{s}/{rest}"),
        ("encoded-dots", f"{p}/{a}/%2e%2e/{s}/{rest}"),
        ("encoded-dots-upper", f"{p}/{a}/%2E%2E/{s}/{rest}"),
        ("encoded-dots-and-slash", f"{p}/{a}/%2e%2e%2f{s}/{rest}"),
        ("double-encoded-dots", f"{p}/{a}/%252e%252e/{s}/{rest}"),
        ("double-encoded-slash", f"{p}/{a}/..%252F{s}/{rest}"),
        ("backslash-encoded", f"{p}/{a}/..%5c{s}/{rest}"),
        ("backslash-raw", f"{p}/{a}/..\\{s}/{rest}"),
        ("dot", f"{p}/{a}/./../{s}/{rest}"),
        ("encoded-dot", f"{p}/{a}/%2e/%2e%2e/{s}/{rest}"),
        ("empty-segment", f"{p}/{a}//{s}/{rest}"),
        ("empty-segments-up", f"{p}/{a}//../{s}/{rest}"),
        ("nul", f"{p}/{a}/%00/../{s}/{rest}"),
        ("nul-in-name", f"{p}/{s}/{run}/{TASK}/{FILE}%00.html"),
        ("overlong-dots", f"{p}/{a}/%c0%ae%c0%ae/{s}/{rest}"),
        ("overlong-slash", f"{p}/{a}/..%c0%af{s}/{rest}"),
        ("fullwidth-dots", f"{p}/{a}/%ef%bc%8e%ef%bc%8e/{s}/{rest}"),
        ("one-dot-leaders", f"{p}/{a}/%e2%80%a4%e2%80%a4/{s}/{rest}"),
        ("fullwidth-solidus", f"{p}/{a}/..%ef%bc%8f{s}/{rest}"),
        ("absolute", f"{p}//{s}/{rest}"),
        ("absolute-encoded", f"{p}/%2F{s}/{rest}"),
        ("absolute-etc", f"{p}//etc/passwd"),
        ("root-escape", f"{p}/../../../../etc/passwd"),
        ("prefix-encoded-slash", f"/mlops/reports%2F{a}/..%2F{s}/{rest}"),
        ("dotted-dag-raw", f"{p}/allowed.dag/{rest}"),  # "allowed.dag" lives in allowed%2Edag
        ("dotted-dag-once", f"{p}/allowed%2Edag/{rest}"),  # decodes to a raw dot: not canonical
        ("planted-encoded-folder", f"{p}/allowed%255Fdag/r/t/{FILE}"),  # folder "allowed%5Fdag"
        ("symlink-file", f"{p}/{a}/{run}/{TASK}/link.html"),
        ("symlink-dir", f"{p}/{a}/dir_link/{FILE}"),
        ("symlink-dag-folder", f"{p}/alias_dag/{rest}"),
        ("symlink-outside", f"{p}/{a}/{run}/{TASK}/out.html"),
        ("not-a-report", f"{p}/{a}/{run}/{TASK}/passwd"),
    ]


@pytest.mark.slow
def test_every_encoding_trick_is_refused(server: Server) -> None:
    secrets_ = [server.files[d] for d in ("secret_dag", "_private", "allowed.dag")] + [b"OUTSIDE-THE-ROOT"]
    served = []
    for name, path in hostile_paths():
        status, body, _ = server.get(path)
        if status == 200 or status not in (400, 403, 404) or any(s in body for s in secrets_):
            served.append((name, path, status, body[:80]))
    assert served == []
