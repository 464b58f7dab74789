"""`make up`: the Airflow UI (`airflow standalone`) and the MLflow UI on 127.0.0.1; Ctrl-C stops both.

Ports: AIRFLOW_PORT (default 8080), MLFLOW_PORT (default 5000).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from demo.airflow_local import ROOT, embedded_env


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(1)
    return False


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> int:
    env = {**os.environ, **embedded_env()}
    airflow_port = int(os.environ.get("AIRFLOW_PORT", "8080"))
    mlflow_port = int(os.environ.get("MLFLOW_PORT", "5000"))
    for name, port in (("AIRFLOW_PORT", airflow_port), ("MLFLOW_PORT", mlflow_port)):
        if not port_free(port):
            print(f"port {port} on 127.0.0.1 is in use: set {name} to another port", file=sys.stderr)
            return 2
    home = Path(env["AIRFLOW_HOME"])
    mlflow_dir = ROOT / ".mlflow"
    (mlflow_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # standalone spawns `airflow`
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(airflow_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{airflow_port}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "MLOPS_MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
    )
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            stdout=open(logs / "standalone.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{mlflow_dir / 'mlflow.db'}",
                "--default-artifact-root",
                (mlflow_dir / "artifacts").as_uri(),
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=open(logs / "mlflow-ui.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ),
    ]
    try:
        print("starting Airflow (airflow standalone) and the MLflow UI ... (~1 min; Ctrl-C stops both)")
        mlflow_ok = wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120)
        airflow_ok = wait_http(f"http://127.0.0.1:{airflow_port}/api/v2/monitor/health", 180)
        password_file = home / "simple_auth_manager_passwords.json.generated"
        password = "see " + str(password_file)
        if password_file.exists():
            password = json.loads(password_file.read_text()).get("admin", password)
        print(
            f"Airflow UI : http://127.0.0.1:{airflow_port}  login admin / {password}"
            + ("" if airflow_ok else "  (not answering yet: see .airflow/logs/standalone.log)")
        )
        print(
            f"MLflow UI  : http://127.0.0.1:{mlflow_port}"
            + ("" if mlflow_ok else "  (not answering yet: see .airflow/logs/mlflow-ui.log)")
        )
        print("Ctrl-C stops both.")
        while all(p.poll() is None for p in processes):
            time.sleep(1)
        print("a process exited; stopping the other", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
