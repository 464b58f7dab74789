"""Scoring at scale: BatchScoreOperator streaming 10M rows vs a bare model.predict, and mapped scoring on two workers vs one task.

    .venv/bin/python -m bench.scoring            # 10M rows x 8 features in 10 Parquet files
    .venv/bin/python -m bench.scoring --smoke    # 40k rows: CI

Set-up (a temporary folder): MLflow on SQLite; a HistGradientBoostingClassifier (100 iterations) trained
with TrainModelOperator on 200k rows, registered and made ``@champion``; the batch written as Parquet
files of 1M rows (an id and 8 float features). Every figure comes from a fresh process with the
provider imported, so one OpenMP thread, the provider's default in task processes (the bare predict
gets the same), and the libraries preloaded as in a warm worker (``mlops_provider.preload``).

- ``bare predict``: the batch already in memory (one DataFrame), one ``model.predict`` call;
- ``operator, one task``: ``BatchScoreOperator.execute()`` on the same files (resolve the alias, verify
  and load the model, read in chunks of 100k rows, check, predict, write Parquet parts and the
  manifest). ``peak_above_start_mb``: VmHWM (reset just before ``execute()``) minus the RSS then;
  the model's own memory (``model_mb``, measured apart) is taken off for the target;
- ``mapped, two workers``: ``plan_scoring`` (two groups of files), two processes each running
  ``BatchScoreOperator(part=i)`` at the same time (the two Celery workers of this 2-core machine),
  then ``publish_scores`` (the two group processes import everything first, then start together, as
  two warm workers would); the wall time is the plan's, the groups' and the publish's, and is
  compared with the one-task row's ``execute()`` (process start-up excluded on both sides: Airflow's warm
  workers fork from a process that imported everything).

Targets: operator throughput >= 0.8x the bare predict's rows/s, its peak < 1 GB above the model's own;
mapped wall time <= 0.65x one task's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import run_module, status_kb

MODEL = "bench_scoring"
START_AT = "BENCH_SCORING_START_AT"
FEATURES = [f"f{i}" for i in range(8)]


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "MLFLOW_"))}
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    conn = {
        "conn_type": "mlflow",
        "host": tracking,
        "extra": {"artifact_location": str(folder / "artifacts")},
    }
    env.update(
        AIRFLOW_HOME=str(folder / "airflow"),
        AIRFLOW_CONN_MLFLOW_DEFAULT=json.dumps(conn),
        MLOPS_HOME=str(folder),
        MLFLOW_DISABLE_TELEMETRY="true",
        PYTHONWARNINGS="ignore",
    )
    return env


def _context(task_id: str) -> dict[str, Any]:
    from types import SimpleNamespace

    ti = SimpleNamespace(
        dag_id="bench_scoring",
        run_id="bench",
        task_id=task_id,
        try_number=1,
        map_index=-1,
        xcom_push=lambda **_: None,
    )
    return {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(run_id="bench", logical_date=None)}


def _rows_frame(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    frame.insert(0, "id", np.arange(rows, dtype=np.int64) + seed * 10**9)
    return frame


def setup(folder: Path, rows: int, files: int) -> dict[str, Any]:
    """Train, register and promote the model; write the batch files."""
    from mlops_provider.hooks.registry import MLflowRegistryHook
    from mlops_provider.operators.training import TrainModelOperator

    train = _rows_frame(min(rows, 200_000), seed=1)
    train["target"] = (train["f0"] + train["f1"] * train["f2"] > 0).astype(int)
    train.drop(columns=["id"]).to_parquet(folder / "train.parquet")
    run_id = TrainModelOperator(
        task_id="train",
        model_name=MODEL,
        data_uri=str(folder / "train.parquet"),
        target="target",
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        estimator_params={"max_iter": 100},
    ).execute(_context("train"))["run_id"]
    hook = MLflowRegistryHook()
    version, _ = hook.register_run(MODEL, run_id, {})
    hook.move_alias(
        model_name=MODEL,
        alias="champion",
        expected_old=None,
        new_version=version,
        why="bench",
        who="bench",
        action="promote",
        lock_owner="bench",
    )
    batch = folder / "batch"
    batch.mkdir()
    for i in range(files):  # one file at a time: the generator's memory stays small
        _rows_frame(rows // files, seed=100 + i).to_parquet(
            batch / f"part-{i:03d}.parquet", row_group_size=250_000
        )
    return {"version": version}


def _reset_peak() -> int:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return status_kb("VmRSS")


def bare(folder: Path) -> dict[str, Any]:
    import pandas as pd

    from mlops_provider.hooks.registry import MLflowRegistryHook

    hook = MLflowRegistryHook()
    uri = f"models:/{MODEL}/{hook.alias_version(MODEL, 'champion')}"
    hook.load_verified(uri)  # the first load imports what deserialising needs
    before = status_kb("VmRSS")
    model = hook.load_verified(uri).model
    model_mb = (status_kb("VmRSS") - before) / 1024
    frame = pd.read_parquet(folder / "batch")
    started = time.perf_counter()
    model.predict(frame[FEATURES])
    seconds = time.perf_counter() - started
    return {"rows": len(frame), "seconds": seconds, "model_mb": model_mb}


def one_task(folder: Path) -> dict[str, Any]:
    from mlops_provider.operators.scoring import BatchScoreOperator

    op = BatchScoreOperator(
        task_id="score",
        model_name=MODEL,
        data_uri=str(folder / "batch"),
        output_uri=str(folder / "out-one"),
        id_columns=["id"],
    )
    start_rss = _reset_peak()
    started = time.perf_counter()
    summary = op.execute(_context("score"))
    seconds = time.perf_counter() - started
    return {
        "rows": summary["rows"],
        "seconds": seconds,
        "peak_above_start_mb": (status_kb("VmHWM") - start_rss) / 1024,
    }


def mapped_step(folder: Path, step: str) -> dict[str, Any]:
    from mlops_provider.operators.scoring import BatchScoreOperator
    from mlops_provider.operators.scoring_map import PlanBatchScoringOperator, PublishBatchScoresOperator

    out = str(folder / "out-mapped")
    data = str(folder / "batch")
    if step == "plan":
        op: Any = PlanBatchScoringOperator(
            task_id="plan",
            model_name=MODEL,
            data_uri=data,
            output_uri=out,
            partitions_per_task=len(list((folder / "batch").iterdir())) // 2,
        )
    elif step == "publish":
        op = PublishBatchScoresOperator(task_id="publish", model_name=MODEL, output_uri=out)
    else:
        op = BatchScoreOperator(
            task_id="score",
            model_name=MODEL,
            data_uri=data,
            output_uri=out,
            id_columns=["id"],
            part=int(step),
        )
    if START_AT in os.environ:  # the groups start together, once both workers have imported everything
        time.sleep(max(0.0, float(os.environ[START_AT]) - time.time()))
    started = time.time()
    result = op.execute(_context(f"mapped-{step}"))
    return {"start": started, "end": time.time(), "result": result}


def _spawn(folder: Path, step: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.scoring", "--worker", step, "--dir", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _result(proc: subprocess.Popen, what: str) -> dict[str, Any]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {err[-3000:]}")
    return json.loads(out.strip().splitlines()[-1])


def mapped(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    plan = run_module("bench.scoring", ["--worker", "plan", "--dir", str(folder)], env=env, what="plan")
    start_at = {**env, START_AT: str(time.time() + 30)}  # time for each worker's imports
    parts = [_spawn(folder, str(group), start_at) for group in plan["result"]]
    done = [_result(p, f"group {i}") for i, p in enumerate(parts)]
    publish = run_module(
        "bench.scoring", ["--worker", "publish", "--dir", str(folder)], env=env, what="publish"
    )
    steps = {
        "plan_s": plan["end"] - plan["start"],
        "groups_s": max(d["end"] for d in done) - min(d["start"] for d in done),
        "publish_s": publish["end"] - publish["start"],
    }
    return {"rows": publish["result"]["rows"], "seconds": sum(steps.values()), "groups": len(done), **steps}


def run(smoke: bool = False, rows: int | None = None) -> list[dict[str, Any]]:
    rows = rows or (40_000 if smoke else 10_000_000)
    files = 4 if smoke else 10
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        folder = Path(tmp)
        env = _env(folder)
        run_module(
            "bench.scoring",
            ["--worker", "setup", "--dir", tmp, "--rows", str(rows), "--files", str(files)],
            env=env,
            what="setup",
        )
        base = run_module("bench.scoring", ["--worker", "bare", "--dir", tmp], env=env, what="bare predict")
        one = run_module("bench.scoring", ["--worker", "one", "--dir", tmp], env=env, what="one task")
        split = mapped(folder, env)
    base_rate = base["rows"] / base["seconds"]
    one_rate = one["rows"] / one["seconds"]
    ratio = one_rate / base_rate
    above_model = one["peak_above_start_mb"] - base["model_mb"]
    wall = split["seconds"] / one["seconds"]
    return [
        {
            "case": "bare predict (in memory)",
            "rows": base["rows"],
            "seconds": round(base["seconds"], 2),
            "rows_per_s": round(base_rate),
            "vs_bare": 1.0,
            "model_mb": round(base["model_mb"], 1),
        },
        {
            "case": "operator, one task (streaming)",
            "rows": one["rows"],
            "seconds": round(one["seconds"], 2),
            "rows_per_s": round(one_rate),
            "vs_bare": round(ratio, 2),
            "peak_above_start_mb": round(one["peak_above_start_mb"]),
            "peak_above_model_mb": round(above_model),
            "target": f">= 0.8x, < 1024 MB: {'met' if ratio >= 0.8 and above_model < 1024 else 'MISSED'}",
        },
        {
            "case": f"mapped, {split['groups']} workers (plan + groups + publish)",
            "rows": split["rows"],
            "seconds": round(split["seconds"], 2),
            "vs_one_task": round(wall, 2),
            "target": f"<= 0.65x: {'met' if wall <= 0.65 else 'MISSED'}",
            "note": ", ".join(f"{k} {split[k]:.2f}" for k in ("plan_s", "groups_s", "publish_s")),
        },
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--worker")
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    if args.worker is None:
        from bench.common import print_rows

        print_rows(run(smoke=args.smoke, rows=args.rows))
        return
    if args.worker != "setup":
        import mlops_provider.preload  # noqa: F401  (a warm worker: the libraries imported before the task)

    workers = {
        "setup": lambda: setup(args.dir, args.rows, args.files),
        "bare": lambda: bare(args.dir),
        "one": lambda: one_task(args.dir),
    }
    result = workers[args.worker]() if args.worker in workers else mapped_step(args.dir, args.worker)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
