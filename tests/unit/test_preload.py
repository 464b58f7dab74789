"""mlops_provider.preload: what warm workers inherit, and how Airflow's forkserver hands it on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("pandas", "sklearn", "mlflow", "skops", "great_expectations", "evidently")


def run_python(code: str, script: Path | None = None, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("MLOPS_PRELOAD", "OMP_NUM_THREADS")}
    args = ["-c", code]
    if script is not None:  # forkserver children import __main__ from a file
        script.write_text(code)
        args = [str(script)]
    out = subprocess.run(
        [sys.executable, *args], env={**clean, **env}, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return {"result": json.loads(out.stdout.strip().splitlines()[-1]), "stderr": out.stderr}


def test_preload_imports_the_operators_libraries_and_freezes_them():
    code = (
        "import gc, json, os, sys\n"
        "import mlops_provider.preload\n"
        "from airflow.sdk.listener import get_listener_manager\n"
        f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules],\n"
        "  'frozen': gc.get_freeze_count(), 'omp': os.environ.get('OMP_NUM_THREADS'),\n"
        "  'sql_store': 'mlflow.store.tracking.sqlalchemy_store' in sys.modules,\n"
        "  'listeners_loaded': get_listener_manager.cache_info().currsize}))\n"
    )
    result = run_python(code)["result"]
    assert result["loaded"] == list(HEAVY)
    assert result["sql_store"] is True
    assert result["listeners_loaded"] == 1  # Airflow's plugins: forked tasks need not load them
    assert result["frozen"] > 100_000  # no forked task walks them in a full collection
    assert result["omp"] == "1"  # set before OpenMP loaded


def test_preload_list_can_be_replaced_and_a_missing_module_is_skipped_by_name():
    code = (
        "import json, sys\n"
        "import mlops_provider.preload\n"
        "print(json.dumps({'sklearn': 'sklearn' in sys.modules, 'csv': 'csv' in sys.modules}))\n"
    )
    out = run_python(code, MLOPS_PRELOAD="csv, no_such_module_xyz")
    assert out["result"] == {"sklearn": False, "csv": True}
    assert "no_such_module_xyz" in out["stderr"]


def test_forkserver_children_inherit_the_preload(tmp_path: Path):
    # What Airflow does with [scheduler] mp_start_method=forkserver and mp_forkserver_preload.
    code = (
        "import json, multiprocessing as mp, sys\n"
        "def probe(queue):\n"
        f"    queue.put([m for m in {HEAVY!r} if m in sys.modules])\n"
        "if __name__ == '__main__':\n"
        "    mp.set_start_method('forkserver')\n"
        "    mp.set_forkserver_preload(['mlops_provider.preload'])\n"
        "    queue = mp.Queue()\n"
        "    child = mp.Process(target=probe, args=(queue,))\n"
        "    child.start()\n"
        "    inherited = queue.get(timeout=120)\n"
        "    child.join()\n"
        f"    print(json.dumps({{'parent': [m for m in {HEAVY!r} if m in sys.modules], 'child': inherited}}))\n"
    )
    result = run_python(code, tmp_path / "probe.py")["result"]
    assert result == {"parent": [], "child": list(HEAVY)}


def test_celery_config_adds_the_preload_to_airflows_default():
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from mlops_provider.celery_config import CELERY_CONFIG

    assert CELERY_CONFIG["imports"][-1] == "mlops_provider.preload"
    assert {k: v for k, v in CELERY_CONFIG.items() if k != "imports"} == {
        k: v for k, v in DEFAULT_CELERY_CONFIG.items() if k != "imports"
    }
