"""`make up`: the Airflow UI (`airflow standalone`) and the MLflow UI on 127.0.0.1; Ctrl-C stops both.

Ports: AIRFLOW_PORT (default 8080), MLFLOW_PORT (default 5000). State: AIRFLOW_HOME (Airflow) and
MLOPS_HOME/.mlflow (MLflow), as the Makefile exports them.

Stopping (Ctrl-C, SIGTERM or SIGHUP, whatever state the start-up is in): `airflow standalone` gets
SIGINT (its own shutdown terminates its components and keeps reading their output), MLflow gets
SIGTERM; after 10 s every process left in their sessions gets SIGTERM, after 20 s SIGKILL. Airflow
moves its task processes into process groups of their own, so the children are tracked by session
(each runs in a session of its own) and by an environment tag, never by one process group. A second
Ctrl-C skips to SIGKILL. An earlier `make up` killed with SIGKILL leaves processes behind: the next
one stops them first (``AIRFLOW_HOME/owner.json``), and refuses to start a second scheduler.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

from demo import airflow_local as af
from demo.airflow_local import embedded_env

STOP_TIMEOUT = 20  # then SIGKILL: everything is gone within ~25 s of Ctrl-C


def wait_http(url: str, timeout: float, processes: list[af.Component]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.process.poll() is not None for c in processes):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            time.sleep(1)
    return False


def say(text: str, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


def main() -> int:
    airflow_port = int(os.environ.get("AIRFLOW_PORT", "8080"))
    mlflow_port = int(os.environ.get("MLFLOW_PORT", "5000"))
    home = Path(embedded_env()["AIRFLOW_HOME"])
    try:
        owner = af.claim_home(home, "make up")
    except af.HomeBusy as err:
        say(str(err), err=True)
        return 2
    with af.stop_on_signals():
        components: list[af.Component] = []
        code = 0
        try:
            code = run(home, airflow_port, mlflow_port, components)
        except af.Interrupted as interrupt:
            say(f"\n{interrupt}: stopping Airflow and MLflow (at most {STOP_TIMEOUT + 5} s) ...")
        finally:
            left = af.stop(components, timeout=STOP_TIMEOUT)
            left += af.release_home(home, owner)
            if left:
                say(f"could not stop pids {sorted({p.pid for p in left})}", err=True)
                code = code or 1
            else:
                say("stopped.")
    return code


def run(home: Path, airflow_port: int, mlflow_port: int, components: list[af.Component]) -> int:
    for name, port in (("AIRFLOW_PORT", airflow_port), ("MLFLOW_PORT", mlflow_port)):
        if not af.port_free(port):
            say(f"port {port} on 127.0.0.1 is in use: set {name} to another port", err=True)
            return 2
    env = {**os.environ, **embedded_env()}  # os.environ holds MLOPS_OWNER (claim_home)
    mlflow_dir = Path(env["MLOPS_HOME"]) / ".mlflow"
    (mlflow_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    env = {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # standalone spawns `airflow`
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(airflow_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{airflow_port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "MLOPS_MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    logs = home / "logs"
    with af.uninterrupted():  # a Ctrl-C now is raised once the child is recorded (and stopped)
        standalone = af.spawn(
            "standalone",
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            log_dir=logs,
            cwd=Path.cwd(),
        )
        standalone.stop_signal = signal.SIGINT  # its own shutdown; SIGTERM would kill it unread
        components.append(standalone)
    mlflow_argv = [
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
    ]
    with af.uninterrupted():
        components.append(af.spawn("mlflow-ui", mlflow_argv, env=env, log_dir=logs, cwd=Path.cwd()))

    say("starting Airflow (airflow standalone) and the MLflow UI ... (~1 min; Ctrl-C stops both)")
    mlflow_ok = wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120, components)
    airflow_ok = wait_http(f"http://127.0.0.1:{airflow_port}/api/v2/monitor/health", 180, components)
    password_file = home / "simple_auth_manager_passwords.json.generated"
    password = "see " + str(password_file)
    if password_file.exists():
        password = json.loads(password_file.read_text()).get("admin", password)
    say(
        f"Airflow UI : http://127.0.0.1:{airflow_port}  login admin / {password}"
        + ("" if airflow_ok else f"  (not answering yet: see {logs / 'standalone.log'})")
    )
    say(
        f"MLflow UI  : http://127.0.0.1:{mlflow_port}"
        + ("" if mlflow_ok else f"  (not answering yet: see {logs / 'mlflow-ui.log'})")
    )
    say("Ctrl-C stops both.")
    while all(c.process.poll() is None for c in components):
        time.sleep(0.5)
    exited = [c.name for c in components if c.process.poll() is not None]
    say(f"{', '.join(exited)} exited (see {logs}); stopping the rest", err=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
