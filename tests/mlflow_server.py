"""Start and stop a local ``mlflow server`` for tests: one worker, no job consumers, SQLite backend,
proxied artifacts, in its own process group; optionally with the ``basic-auth`` app.

    with mlflow_server(tmp, auth=BasicAuth(admin_password="...")) as server:
        server.url, server.admin_env(), server.log_tail()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from api_server import free_port, stop

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class BasicAuth:
    """The auth app's config: an admin, and what every other user gets where nothing is granted."""

    admin_password: str = field(repr=False)
    admin_username: str = "admin"
    default_permission: str = "NO_PERMISSIONS"
    cache_ttl_s: int = 300


@dataclass(frozen=True)
class Server:
    url: str
    folder: Path
    process: subprocess.Popen
    auth: BasicAuth | None = None

    def admin_env(self) -> dict[str, str]:
        """The environment variables MLflow's clients read to act as the admin."""
        assert self.auth is not None
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": self.auth.admin_username,
            "MLFLOW_TRACKING_PASSWORD": self.auth.admin_password,
        }

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return (self.folder / "mlflow-server.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def write_auth_config(folder: Path, auth: BasicAuth) -> Path:
    """A basic_auth.ini (see mlflow/server/auth/basic_auth.ini) with its own user database."""
    path = folder / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        f"default_permission = {auth.default_permission}\n"
        f"database_uri = sqlite:///{folder / 'auth.db'}\n"
        f"admin_username = {auth.admin_username}\n"
        f"admin_password = {auth.admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        # each request otherwise re-hashes the password (PBKDF2): seconds per operator on 2 cores
        f"auth_cache_ttl_seconds = {auth.cache_ttl_s}\n"
    )
    path.chmod(0o600)
    return path


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def mlflow_server(
    folder: Path, auth: BasicAuth | None = None, timeout: float = START_TIMEOUT_S
) -> Iterator[Server]:
    """A running server on a free 127.0.0.1 port until the block ends (stopped whatever happens)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
    }
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    if auth is not None:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(write_auth_config(folder, auth))
        command += ["--app-name", "basic-auth"]
    with (folder / "mlflow-server.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", folder, process, auth)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(server.url):
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {process.returncode}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server not healthy within {timeout:.0f}s:\n{server.log_tail()}")
            time.sleep(0.3)
        yield server
    finally:
        stop(process, signal.SIGTERM, 20)
