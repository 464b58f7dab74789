"""DAG parsing stays light: every file in dags/ loads without import errors and no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "great_expectations",
    "evidently",
    "mlflow",
    "sklearn",
    "pandas",
    "numpy",
    "scipy",
    "pyarrow",
    "boto3",
)

PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[2]))
print(json.dumps({"errors": {k: str(v)[:500] for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dag_ids), "heavy": sorted({m.split(".")[0] for m in heavy})}))
"""


def parse(folder: Path, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dags_folder_parses_cleanly_without_heavy_imports():
    result = parse(ROOT / "dags")
    assert result["errors"] == {}
    assert {"seattle_weather_retrain", "seattle_weather_drift_monitor", "seattle_weather_batch_score"} <= set(
        result["dags"]
    )
    assert result["heavy"] == []


def test_provider_modules_import_without_heavy_libraries():
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import mlops_provider\n"
        "for m in pkgutil.walk_packages(mlops_provider.__path__, 'mlops_provider.'):\n"
        "    if m.name == 'mlops_provider.preload': continue\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
