"""Run real Airflow components (scheduler, dag-processor, triggerer, api-server) as child processes.

Each runs in its own process group so that stopping it stops its children too; logs go to
``$AIRFLOW_HOME/logs/<component>.log``. Used by the demo, the benchmarks and the end-to-end tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Warm workers (mlops_provider.preload): LocalExecutor workers fork from a forkserver that imported
# the heavy libraries once, so task processes inherit them instead of importing them again.
WARM_WORKERS = {
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": "mlops_provider.preload",
}


def embedded_env(root: Path = ROOT) -> dict[str, str]:
    """The embedded default's environment (what the Makefile exports), for `python -m demo` runs."""
    defaults = {
        "MLOPS_HOME": str(root),
        "AIRFLOW_HOME": str(root / ".airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        **WARM_WORKERS,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLOPS_MLFLOW_UI_URL": "http://127.0.0.1:5000",
    }
    return {k: os.environ.get(k, v) for k, v in defaults.items()}


def airflow_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=check,
    )


@dataclass
class Component:
    name: str
    process: subprocess.Popen
    log_path: Path


def start(name: str, *args: str, env: dict[str, str] | None = None) -> Component:
    home = Path((env or os.environ).get("AIRFLOW_HOME") or os.environ["AIRFLOW_HOME"])
    log_path = home / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow", *(args or (name,))],
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Component(name, process, log_path)


def stop(components: Iterable[Component], timeout: float = 20) -> None:
    """SIGTERM each process group, then SIGKILL what is left after ``timeout``."""
    components = list(components)
    for c in components:
        if c.process.poll() is None:
            try:
                os.killpg(c.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for c in components:
        try:
            c.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(c.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.5)


@contextmanager
def running(*names: str, env: dict[str, str] | None = None) -> Iterator[list[Component]]:
    """
    Start the named components; ``api-server`` (which task processes talk to through the execution
    API) is always started first, on a free 127.0.0.1 port, and the others are told where it is.
    """
    port = free_port()
    env = {
        **(env or {}),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW__")})
    components = [start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), env=env)]
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/monitor/health")
        components += [start(n, env=env) for n in names if n != "api-server"]
        yield components
    finally:
        stop(components)


def wait_for_dags(dag_ids: Iterable[str], timeout: float = 180) -> None:
    """Wait until the dag-processor has serialized every DAG id."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    wanted = set(dag_ids)
    deadline = time.monotonic() + timeout
    while True:
        with create_session() as session:
            found = {d for (d,) in session.query(DagModel.dag_id).filter(DagModel.dag_id.in_(wanted))}
        if found == wanted:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"DAGs not parsed after {timeout}s: {sorted(wanted - found)}")
        time.sleep(1)


def set_paused(dag_id: str, paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({DagModel.is_paused: paused})


def trigger(dag_id: str, *, logical_date: datetime | None = None, conf: dict[str, Any] | None = None) -> str:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(
        dag_id,
        triggered_by=DagRunTriggeredByType.CLI,
        logical_date=logical_date,
        run_after=logical_date,
        conf=conf or {},
        triggering_user_name="demo",
    )
    assert run is not None
    return run.run_id


def runs(dag_id: str) -> list[dict[str, Any]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id).all()
        return [{"run_id": r.run_id, "state": str(r.state), "run_type": str(r.run_type)} for r in rows]


def wait_run(dag_id: str, run_id: str, timeout: float = 600) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    deadline = time.monotonic() + timeout
    while True:
        with create_session() as session:
            run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one()
            state = str(run.state)
        if state in ("success", "failed"):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout}s")
        time.sleep(1)


def wait_new_run(dag_id: str, known: set[str], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs(dag_id):
            if run["run_id"] not in known:
                return run["run_id"]
        time.sleep(1)
    raise TimeoutError(f"no new run of {dag_id} after {timeout}s")


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        return {ti.task_id: str(ti.state) for ti in rows}


def xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
            .first()
        )
        if row is None:
            return None
        value = row.value
    import json

    return json.loads(value) if isinstance(value, str | bytes) else value


# -- the production topology, natively (tests/e2e): non-Airflow servers and the REST API v2 -------


def spawn(name: str, argv: list[str], *, env: dict[str, str], log_dir: Path) -> Component:
    """Start any server (``weed mini``, ``mlflow server``, ``airflow ...``) in its own process group."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    process = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=str(log_dir)
    )
    return Component(name, process, log_path)


def kill(component: Component, sig: int = signal.SIGKILL) -> None:
    """Signal one component's whole process group (SIGKILL by default) and reap it."""
    try:
        os.killpg(component.process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        component.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(component.process.pid, signal.SIGKILL)
        component.process.wait(timeout=5)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free 127.0.0.1 ports (held open together while choosing)."""
    import socket

    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


class RestClient:
    """A minimal Airflow REST API v2 client authenticated like a user (``POST /auth/token``)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._token: str | None = None

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        import json
        import urllib.error
        import urllib.request

        if self._token is None:
            self._token = self._login()
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path}: HTTP {err.code}: {err.read().decode()[:500]}") from None
        return json.loads(text) if text else None

    def _login(self) -> str:
        import json
        import urllib.request

        request = urllib.request.Request(
            f"{self.base_url}/auth/token",
            data=json.dumps({"username": self.username, "password": self.password}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self._request("PATCH", path, body)

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        run = self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf or {}})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {row["task_id"]: row["state"] for row in rows}

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{dag_id} {run_id} still {state} after {timeout}s: {self.task_states(dag_id, run_id)}"
                )
            time.sleep(1)

    def wait_task(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 180
    ) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.task_states(dag_id, run_id).get(task_id)
            if state in states:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} {task_id} still {state} after {timeout}s")
            time.sleep(0.2)

    def run_ids(self, dag_id: str) -> list[str]:
        rows = self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=id&limit=100")["dag_runs"]
        return [row["dag_run_id"] for row in rows]

    def wait_dags(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while True:
            found = {d["dag_id"] for d in self.get("/api/v2/dags?limit=100")["dags"]}
            if wanted <= found:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs not parsed after {timeout}s: {sorted(wanted - found)}")
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
