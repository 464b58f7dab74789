"""docker-compose.yaml: valid for Compose (no engine needed) and shaped as the production topology."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "worker-default",
    "worker-training",
)


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_config_is_valid(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (v1) is not installed: apt-get install -y docker-compose")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Without a .env, the secrets are missing: Compose refuses instead of starting with defaults.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    bare = subprocess.run(
        [binary, "-f", str(COMPOSE), "--env-file", str(empty), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert bare.returncode != 0
    assert "in .env" in bare.stderr


def test_topology_services(services: dict[str, dict]) -> None:
    expected = {"postgres", "mlflow-db-init", "redis", "minio", "minio-init", "mlflow", *AIRFLOW_SERVICES}
    assert expected <= set(services)
    for name in ("postgres", "redis", "minio", "mlflow", *AIRFLOW_SERVICES[1:]):
        assert "healthcheck" in services[name], name
    for name in AIRFLOW_SERVICES[1:]:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        volumes = services[name]["volumes"]
        assert "./dags:/opt/airflow/dags" in volumes
        assert "./plugins:/opt/airflow/plugins" in volumes
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "training" in services["worker-training"]["command"]
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_mlflow_server_flags(services: dict[str, dict]) -> None:
    mlflow = services["mlflow"]
    command = " ".join(mlflow["command"])
    assert "--backend-store-uri=postgresql" in command
    assert "--artifacts-destination=s3://" in command
    assert "--workers=1" in command
    assert "--allowed-hosts=mlflow," in command
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    db = services["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "${AIRFLOW_DB" in db
    assert "${MLFLOW_DB" in command


def test_published_ports_bind_localhost_and_no_secret_committed(services: dict[str, dict]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    for line in ENV_EXAMPLE.read_text().splitlines():
        if any(word in line for word in ("PASSWORD=", "SECRET", "FERNET_KEY=")):
            assert "change-me" in line, line
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "uv.lock" in dockerfile
    assert "--frozen" in dockerfile
