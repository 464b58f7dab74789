"""Benchmark 1, DAG parse: the factory DAG file with 1, 10 and 100 model configs vs a bare DAG file.

Each sample is a fresh Python process that parses one DAG folder with Airflow's DagBag, the way the
dag-processor does; we report the whole process (interpreter + imports + parse) and the parse alone.

    .venv/bin/python -m bench.parse [--sizes 1 10 100] [--repeat 5] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import print_rows

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("great_expectations", "evidently", "mlflow", "sklearn", "pandas", "numpy", "scipy", "pyarrow")

BARE_DAG = """
from datetime import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("bare", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="noop")
"""

HEAVY_DAG = """
from datetime import datetime
import great_expectations, evidently, mlflow, sklearn.ensemble
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("heavy", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="noop")
"""

PROBE = """
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
t2 = time.perf_counter()
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"import_dagbag": t1 - t0, "parse": t2 - t1, "dags": len(bag.dag_ids),
                  "errors": len(bag.import_errors), "heavy": heavy}))
"""


def make_folder(base: Path, kind: str, n_configs: int = 0) -> Path:
    folder = base / f"{kind}-{n_configs}"
    folder.mkdir(parents=True)
    if kind == "bare":
        (folder / "bare.py").write_text(BARE_DAG)
    elif kind == "heavy":
        (folder / "heavy.py").write_text(HEAVY_DAG)
    else:
        shutil.copy(ROOT / "dags" / "mlops_dags.py", folder / "mlops_dags.py")
        configs = folder / "configs"
        configs.mkdir()
        shutil.copytree(ROOT / "dags" / "configs" / "seattle_weather", configs / "seattle_weather")
        template = (ROOT / "dags" / "configs" / "seattle_weather.yaml").read_text()
        for i in range(n_configs):
            text = template.replace("name: seattle_weather", f"name: model_{i:03d}")
            (configs / f"model_{i:03d}.yaml").write_text(text)
    return folder


def sample(folder: Path) -> dict:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(folder)},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - started
    return result


def summarize(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def run(sizes: tuple[int, ...] = (1, 10, 100), repeat: int = 5, smoke: bool = False) -> list[dict]:
    if smoke:
        sizes, repeat = (1,), 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cases = [("bare", 0)] + [("factory", n) for n in sizes] + ([] if smoke else [("heavy", 0)])
        samples: dict[str, list[dict]] = {}
        folders = {f"{kind}-{n}": make_folder(base, kind, n) for kind, n in cases}
        for _ in range(repeat):  # interleave cases so machine noise hits all alike
            for name, folder in folders.items():
                samples.setdefault(name, []).append(sample(folder))
        bare = statistics.median(s["process"] for s in samples["bare-0"])
        for name, runs in samples.items():
            process = [s["process"] for s in runs]
            parse = [s["parse"] for s in runs]
            rows.append(
                {
                    "case": name,
                    "dags": runs[0]["dags"],
                    "import_errors": runs[0]["errors"],
                    "heavy_modules": ",".join(runs[0]["heavy"]) or "none",
                    "process": summarize(process),
                    "parse_only": summarize(parse),
                    "vs_bare": f"{statistics.median(process) / bare:.2f}x",
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    print_rows(run(tuple(args.sizes), args.repeat, args.smoke))


if __name__ == "__main__":
    main()
