"""Test environment: a private AIRFLOW_HOME and a temporary MLflow store per test that needs one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Set before anything imports airflow. Each pytest-xdist worker has its own (one SQLite metadata DB each).
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
os.environ.setdefault(
    "AIRFLOW_HOME", str(ROOT / (f".airflow-test-{_WORKER}" if _WORKER else ".airflow-test"))
)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
os.environ["AIRFLOW__CORE__PARALLELISM"] = "4"
os.environ["AIRFLOW__USAGE_DATA_COLLECTION__ENABLED"] = "False"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("AIRFLOW_CONN_MLFLOW_DEFAULT", None)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite) in the test AIRFLOW_HOME, created once per session."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return home


def mlflow_connection(tmp_path: Path, **extra: object) -> str:
    """JSON for an AIRFLOW_CONN_* variable pointing at a fresh SQLite MLflow store under tmp_path."""
    store = tmp_path / "mlflow"
    store.mkdir(exist_ok=True)
    payload = {
        "conn_type": "mlflow",
        "host": f"sqlite:///{store / 'mlflow.db'}",
        "extra": {"artifact_location": (store / "artifacts").as_uri(), **extra},
    }
    return json.dumps(payload)


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default MLflow connection at a temporary SQLite store; yields its folder."""
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp_path))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    return tmp_path / "mlflow"


@pytest.fixture
def dags_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path) -> Path:
    """
    A private DAGs folder for dag.test(): Airflow 3.3's dag.test() syncs the "dags-folder" bundle
    (``airflow.settings.DAGS_FOLDER``, read once at import) and finds the DAG there, so a test writes
    its DAG file into this folder and imports it (see :func:`import_dag_file`).
    """
    import airflow.settings

    folder = tmp_path / "dags"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(folder))
    return folder


def _hypothesis_profiles() -> None:
    """Random examples locally (they find new cases); a fixed sequence in CI (a run is repeatable)."""
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI"):
        settings.load_profile("ci")


_hypothesis_profiles()


# -- how `make test` spreads the tests over its two xdist workers (--dist loadfile) ---------------------
# xdist's loadgroup cannot be used: it renames items through ``Item._nodeid``, which pytest 9 no longer
# reads. So the controller gets a loadfile scheduler that knows two exceptions, and the workers order
# their collection (the order the scheduler hands groups out in, with --no-loadscope-reorder).
ALONE = ("tests/unit/test_bench_smoke.py::",)  # each test its own group: minutes long, no module fixtures


def xdist_group(nodeid: str) -> str:
    """The unit of work a worker takes: every e2e test together (they share one production topology
    per worker: starting it twice costs both cores half a minute), tests in ALONE one by one, else a
    file (module fixtures set up once)."""
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/e2e/"):
        return "tests/e2e/"
    return nodeid if nodeid.startswith(ALONE) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class GroupScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return GroupScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: groups holding slow tests first (more slow tests first), then the others by
    size, so that no long group is handed out last and runs alone at the end."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(xdist_group(item.nodeid), []).append(item)

    def weight(members: list[pytest.Item]) -> tuple[int, int]:
        return -sum(m.get_closest_marker("slow") is not None for m in members), -len(members)

    items[:] = [item for members in sorted(groups.values(), key=weight) for item in members]
