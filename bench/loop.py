"""Loop: the `<name>_retrain` DAG under a real scheduler (LocalExecutor), trigger to success, vs one plain Python process.

    .venv/bin/python -m bench.loop                  # 100k rows, 100 extra model configs, 5 measured runs
    .venv/bin/python -m bench.loop --rows 20000 --runs 3
    .venv/bin/python -m bench.loop --smoke          # 2k rows, 10 configs, one run: CI

Set-up (all under a temporary folder; stopped and removed afterwards): a fresh AIRFLOW_HOME (SQLite,
LocalExecutor, parallelism 4), the api-server, scheduler and dag-processor as child process groups
(``demo.airflow_local``); a DAG folder holding ``dags/mlops_dags.py`` with the model ``bench_model``
(Seattle weather resampled to ``--rows`` rows, the seattle_weather suite and estimator) plus 100 copies
of the seattle_weather config (so each task process re-parses a file that knows 101 models), and
``trivial.py``: five no-op PythonOperator tasks in a chain (the floor of Airflow's own overhead: the
retrain DAG has five tasks too). MLflow: a temporary SQLite store. One warm-up run of each DAG, then
``--runs`` measured runs, the two DAGs interleaved.

Two worker set-ups, each on its own fresh Airflow: ``warm`` (what the Makefile, the demo and
docker-compose ship: LocalExecutor workers fork from a forkserver that imported
``mlops_provider.preload``, so tasks inherit the heavy libraries) and ``cold`` (Airflow's defaults:
every task process imports them again).

Figures:

- ``trigger_to_success_s``: from ``trigger_dag`` to the DAG run's ``end_date``;
- ``script``: the same steps in one fresh plain Python process (no Airflow import): read the CSV,
  GX boolean-only validation, the provider's Airflow-free ``core.training.train``, MLflow run with the
  model and holdout, holdout metrics + permutation importance, register, gate against the champion's
  metrics on the same holdout, alias move. Same data, a separate SQLite store, runs accumulate alike;
  run right after each retrain DAG run while the Airflow components are up (same background load),
  once with OpenMP defaults (``x_script``, the anchor) and once with ``OMP_NUM_THREADS=1``, the
  provider's default in task processes (``x_script_1_thread``: same library settings);
- per task (median over runs), from the metadata DB and a timing log the DAG files write when
  ``BENCH_TIMING_LOG`` is set (the bench copies of the DAG files add it; provider code is unchanged):
  ``sched_gap_s`` (previous task's end, or the run's start, to queued), ``queue_s`` (queued to
  started), ``startup_s`` (task start to the DAG file starting to execute in the task process),
  ``parse_s`` (the DAG file: imports + build), ``runner_s`` (parse end to execute: template rendering,
  XCom pulls), ``imports_s`` (the task's heavy libraries, imported by the bench just before execute so
  they can be told apart), ``work_s`` (``execute()``), ``finish_s`` (to the task's ``end_date``),
  ``overhead_vs_trivial_s`` = task total - imports - work - the median trivial task's total;
- memory (benchmark 6): ``rss_parsed_mb`` (after the DAG file), ``peak_rss_mb`` (VmHWM reset just
  before the imports and read after ``execute()``) and ``data_mb`` (the in-memory size of the frame
  the task works on: training data for validate/train, the holdout for evaluate/promote).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import print_rows, run_module, status_kb, summary
from demo.airflow_local import WARM_WORKERS

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench_model"
RETRAIN = f"{MODEL}_retrain"
TRIVIAL = "trivial_chain"
# warm: LocalExecutor workers fork from a forkserver that imported mlops_provider.preload (what the
# Makefile, the demo and docker-compose ship); cold: Airflow's defaults, every task imports again.
WORKERS = ("warm", "cold")
# What each task imports inside execute(); the bench imports it just before, to time it apart.
TASK_IMPORTS = {
    "validate_data": ("pandas", "great_expectations"),
    "train_model": ("pandas", "sklearn.ensemble", "mlflow", "mlflow.sklearn"),
    "evaluate_model": ("pandas", "sklearn.metrics", "sklearn.inspection", "mlflow", "mlflow.sklearn"),
    "register_model": ("mlflow",),
    "promote_model": ("pandas", "sklearn.metrics", "mlflow", "mlflow.sklearn"),
}
TIMING_FOOTER = """
if __import__("os").environ.get("BENCH_TIMING_LOG"):  # added by bench.loop: per-task timing log
    from bench.loop import instrument

    instrument(globals(), _BENCH_T0)
"""
TIMING_HEADER = "import time as _bench_time\n\n_BENCH_T0 = _bench_time.time()\n"

TRIVIAL_DAG = '''"""Five no-op Python tasks in a chain: Airflow's own per-task overhead."""
from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def noop() -> None:
    return None


with DAG("trivial_chain", schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:
    previous = None
    for i in range(5):
        task = PythonOperator(task_id=f"t{i}", python_callable=noop)
        if previous is not None:
            previous >> task
        previous = task
'''


# -- in the task process (imported by the bench copies of the DAG files) ---------------------------
def _status_mb(field: str) -> float:
    return status_kb(field) / 1024


def instrument(namespace: dict[str, Any], t0: float) -> None:
    """Wrap the running task (only in a task process) with pre/post hooks writing one JSON line."""
    from airflow.sdk import DAG, get_parsing_context

    t1 = time.time()
    parsing = get_parsing_context()
    if not parsing.task_id:
        return
    rss_parsed = _status_mb("VmRSS")
    marks: dict[str, float] = {}

    def pre(context: Any) -> None:
        import importlib

        marks["t2"] = time.time()
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # reset VmHWM: the peak from here on
        except OSError:
            pass
        if parsing.task_id == "validate_data":
            from mlops_provider.core.validation import quiet_gx_logging

            quiet_gx_logging()
        wanted = TASK_IMPORTS.get(str(parsing.task_id), ())
        marks["inherited"] = float(all(name in sys.modules for name in wanted))
        for name in wanted:
            importlib.import_module(name)
        marks["t3"] = time.time()
        if os.environ.get("BENCH_PROFILE_DIR"):  # profiling aid: pyinstrument, when installed
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
            marks["profiler"] = profiler  # type: ignore[assignment]

    def post(context: Any, result: Any) -> None:
        t4 = time.time()
        ti = context["ti"]
        profiler: Any = marks.get("profiler")
        if profiler is not None:
            profiler.stop()
            out = Path(os.environ["BENCH_PROFILE_DIR"]) / f"{ti.dag_id}.{ti.task_id}.{ti.run_id}.txt"
            out.write_text(profiler.output_text(unicode=False, color=False))
        line = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "try_number": ti.try_number,
            "t0": t0,
            "t1": t1,
            "t2": marks.get("t2"),
            "t3": marks.get("t3"),
            "t4": t4,
            "rss_parsed_mb": rss_parsed,
            "peak_rss_mb": _status_mb("VmHWM"),
            "imports_inherited": bool(marks.get("inherited")),
        }
        with open(os.environ["BENCH_TIMING_LOG"], "a") as handle:
            handle.write(json.dumps(line) + "\n")

    for value in list(namespace.values()):
        if isinstance(value, DAG) and value.dag_id == parsing.dag_id and parsing.task_id in value.task_dict:
            task = value.task_dict[parsing.task_id]
            task._pre_execute_hook = pre
            task._post_execute_hook = post


# -- set-up ----------------------------------------------------------------------------------------
def make_training_csv(path: Path, rows: int, seed: int = 0) -> float:
    """Seattle weather (vega_datasets) resampled to ``rows`` rows with a little jitter; returns its MB."""
    import numpy as np
    from vega_datasets import data

    base = data.seattle_weather()
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    shift = rng.normal(0, 0.3, rows).round(1)
    frame["temp_max"] = frame["temp_max"] + shift  # same shift: temp_max >= temp_min still holds
    frame["temp_min"] = frame["temp_min"] + shift
    frame["wind"] = (frame["wind"] + rng.normal(0, 0.2, rows)).clip(0, 20).round(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return float(frame.memory_usage(deep=True).sum() / 2**20)


def same_work_as_the_script(config_text: str) -> str:
    """The measured model without the business metrics and the robustness gate: the plain script
    computes neither, so both sides do the same work."""
    import yaml

    config = yaml.safe_load(config_text)
    for key in ("custom_metrics", "cost_matrix", "robustness"):
        config["evaluation"].pop(key, None)
    return yaml.safe_dump(config, sort_keys=False)


def make_dag_folder(folder: Path, rows: int, n_configs: int) -> float:
    configs = folder / "configs"
    configs.mkdir(parents=True)
    source = (ROOT / "dags" / "mlops_dags.py").read_text()
    head, sep, rest = source.partition("\nfrom __future__ import annotations\n")
    (folder / "mlops_dags.py").write_text(head + sep + "\n" + TIMING_HEADER + rest + TIMING_FOOTER)
    (folder / "trivial.py").write_text(TIMING_HEADER + TRIVIAL_DAG + TIMING_FOOTER)
    shutil.copytree(
        ROOT / "dags" / "configs" / "seattle_weather",
        configs / "seattle_weather",
        ignore=shutil.ignore_patterns("*.csv"),
    )
    template = (ROOT / "dags" / "configs" / "seattle_weather.yaml").read_text()
    for i in range(n_configs):
        text = template.replace("name: seattle_weather", f"name: model_{i:03d}")
        (configs / f"model_{i:03d}.yaml").write_text(text)
    bench = (
        template.replace("name: seattle_weather", f"name: {MODEL}")
        .replace("train: seattle_weather/data/train/*.csv", f"train: {MODEL}/train.csv")
        .replace("  current: seattle_weather/data/batches/{{ ds }}.csv\n", "")
        .replace('schedule: "0 2 * * *"', "schedule: null")
    )
    (configs / f"{MODEL}.yaml").write_text(same_work_as_the_script(bench))
    shutil.copy(ROOT / "dags" / "weather_kpis.py", folder / "weather_kpis.py")
    return make_training_csv(configs / MODEL / "train.csv", rows)


def base_env(tmp: Path, warm: bool = True) -> dict[str, str]:
    store = tmp / "mlflow"
    store.mkdir(exist_ok=True)
    conn = {
        "conn_type": "mlflow",
        "host": f"sqlite:///{store / 'mlflow.db'}",
        "extra": {"artifact_location": (store / "artifacts").as_uri()},
    }
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(conn),
        "MLOPS_HOME": str(tmp / "mlops"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "SCARF_ANALYTICS": "false",
        "BENCH_TIMING_LOG": str(tmp / "timing.jsonl"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    for key in WARM_WORKERS:  # the Makefile exports them: "cold" must drop them
        env.pop(key, None)
    if warm:
        env.update(WARM_WORKERS)
    return env


# -- the Airflow side (runs in a subprocess with the temporary environment) -------------------------
def _driver(warmup: int, runs: int, script_job: str) -> dict[str, Any]:
    """Trigger the DAGs and, after each retrain run, the plain script, so both see the same load."""
    from demo import airflow_local as af

    job = json.loads(Path(script_job).read_text())
    af.airflow_cli("db", "migrate")
    measured: list[dict[str, Any]] = []
    script_runs: list[dict[str, Any]] = []
    with af.running("scheduler", "dag-processor"):
        af.wait_for_dags([RETRAIN, TRIVIAL], timeout=600)
        for dag_id in (RETRAIN, TRIVIAL):
            af.set_paused(dag_id, False)
        for i in range(warmup + runs):
            for dag_id in (TRIVIAL, RETRAIN):
                triggered = time.time()
                run_id = af.trigger(dag_id)
                state = af.wait_run(dag_id, run_id, timeout=1200)
                measured.append(
                    {
                        "dag_id": dag_id,
                        "run_id": run_id,
                        "state": state,
                        "triggered": triggered,
                        "measured": i >= warmup,
                    }
                )
            for kind, script_env in job["envs"].items():
                started = time.time()
                result = run_module(
                    "bench.loop", job["args"], env=script_env, cwd=job["cwd"], what="plain script"
                )
                script_runs.append(
                    {**result, "wall": time.time() - started, "measured": i >= warmup, "kind": kind}
                )
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    def ts(value: Any) -> float | None:
        return value.timestamp() if value is not None else None

    with create_session() as session:
        for run in measured:
            dr = (
                session.query(DagRun)
                .filter(DagRun.dag_id == run["dag_id"], DagRun.run_id == run["run_id"])
                .one()
            )
            run.update(start=ts(dr.start_date), end=ts(dr.end_date), queued_at=ts(dr.queued_at))
            run["tasks"] = {
                ti.task_id: {
                    "state": str(ti.state),
                    "queued": ts(ti.queued_dttm),
                    "start": ts(ti.start_date),
                    "end": ts(ti.end_date),
                    "try_number": ti.try_number,
                }
                for ti in session.query(TaskInstance).filter(
                    TaskInstance.dag_id == run["dag_id"], TaskInstance.run_id == run["run_id"]
                )
            }
    return {"runs": measured, "script": script_runs}


# -- the plain script (runs in a fresh subprocess, no Airflow) --------------------------------------
def _script(data: str, suite_path: str, tracking_uri: str) -> dict[str, Any]:
    marks = {"start": time.time()}

    def mark(name: str) -> None:
        marks[name] = time.time()

    import warnings

    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import mlflow
    import mlflow.sklearn
    import pandas as pd
    import skops.io as sio
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from mlflow import MlflowClient

    from mlops_provider.core.metrics import compute_metrics, permutation_importance_report
    from mlops_provider.core.training import TrainingSpec, train

    mark("imports")
    frame = pd.read_csv(data)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("d")
        .add_dataframe_asset("a")
        .add_batch_definition_whole_dataframe("w")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(**json.loads(Path(suite_path).read_text()))
    if not batch.validate(suite, result_format="BOOLEAN_ONLY").success:
        raise RuntimeError("validation failed")
    mark("validate")
    spec = TrainingSpec(
        target="weather",
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        features=["precipitation", "temp_max", "temp_min", "wind"],
        params={"max_iter": 200, "learning_rate": 0.05},
        test_size=0.25,
        random_state=42,
    )
    result = train(frame, spec)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_experiment_by_name(MODEL) is None:  # artifacts next to the store, never in the cwd
        artifacts = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
        mlflow.create_experiment(MODEL, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(MODEL)
    with mlflow.start_run() as run:
        mlflow.log_params({"max_iter": 200, "learning_rate": 0.05})
        trusted = sio.get_untrusted_types(data=sio.dumps(result.model))
        mlflow.sklearn.log_model(
            result.model,
            name="model",
            input_example=result.X_train.head(5),
            pip_requirements=["scikit-learn", "pandas", "numpy", "skops"],
            serialization_format="skops",
            skops_trusted_types=trusted,
        )
        with tempfile.TemporaryDirectory() as tmp:
            result.holdout.to_parquet(f"{tmp}/holdout.parquet", index=False)
            mlflow.log_artifact(f"{tmp}/holdout.parquet", artifact_path="holdout")
        mark("train")
        X, y = result.X_holdout, result.holdout["weather"]
        report = compute_metrics(result.model, X, y, "classification")
        importance = permutation_importance_report(result.model, X, y, "classification")
        mlflow.log_metrics({f"holdout_{k}": v for k, v in report.values.items() if v is not None})
        mlflow.log_dict({"features": importance}, "evaluation/permutation_importance.json")
        mark("evaluate")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", MODEL).version
    mark("register")
    client = MlflowClient()
    try:
        champion = client.get_model_version_by_alias(MODEL, "champion").version
    except mlflow.exceptions.MlflowException:
        champion = None
    promote = True
    if champion is not None:
        champion_model = mlflow.sklearn.load_model(f"models:/{MODEL}/{champion}")
        champion_f1 = compute_metrics(champion_model, X, y, "classification").values["f1_macro"]
        promote = report.values["f1_macro"] - champion_f1 >= -0.01
    if promote:
        if champion is not None:
            client.set_registered_model_alias(MODEL, "previous_champion", champion)
        client.set_registered_model_alias(MODEL, "champion", version)
    mark("promote")
    steps, previous = {}, marks["start"]
    for name, value in marks.items():
        steps[name] = value - previous
        previous = value
    return {"steps": steps, "peak_rss_mb": _status_mb("VmHWM"), "promoted": promote}


# -- orchestration ---------------------------------------------------------------------------------
def _med(values: Sequence[float | None]) -> float | None:
    clean = [v for v in values if v is not None]
    return round(statistics.median(clean), 3) if clean else None


def run(
    rows: int = 100_000,
    configs: int = 100,
    runs: int = 5,
    smoke: bool = False,
    workers: Sequence[str] = WORKERS,
) -> list[dict[str, Any]]:
    """Per worker set-up: summary rows (retrain DAG, trivial DAG, script), one row per task."""
    warmup = 1
    if smoke:
        rows, configs, runs, warmup, workers = 2_000, 10, 1, 0, ("warm",)
    out: list[dict[str, Any]] = []
    for kind in workers:
        out += _run_workers(kind, rows, configs, runs, warmup)
    return out


def _run_workers(workers: str, rows: int, configs: int, runs: int, warmup: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp_name:
        tmp = Path(tmp_name)
        data_mb = make_dag_folder(tmp / "dags", rows, configs)
        env = base_env(tmp, warm=workers == "warm")
        # The plain script: its own store, a fresh process per run, runs accumulate (gate vs champion);
        # no Airflow, OpenMP defaults; and the same with OMP_NUM_THREADS=1 (the provider's default).
        script_store = tmp / "script-mlflow"
        script_store.mkdir()
        script_env = {
            k: v for k, v in env.items() if not k.startswith(("AIRFLOW", "BENCH_")) and k != "OMP_NUM_THREADS"
        }
        script_args = [
            "--script",
            str(tmp / "dags" / "configs" / MODEL / "train.csv"),
            str(tmp / "dags" / "configs" / "seattle_weather" / "suite.json"),
            f"sqlite:///{script_store / 'mlflow.db'}",
        ]
        job = tmp / "script_job.json"
        envs = {"plain": script_env, "one_thread": {**script_env, "OMP_NUM_THREADS": "1"}}
        job.write_text(json.dumps({"args": script_args, "envs": envs, "cwd": str(script_store)}))
        driven = run_module(
            "bench.loop",
            ["--driver", "--runs", str(runs), "--warmup", str(warmup), "--script-job", str(job)],
            env=env,
            cwd=tmp,
            what="Airflow driver",
        )
        timing = [
            json.loads(line) for line in (tmp / "timing.jsonl").read_text().splitlines() if line.strip()
        ]
        script_runs = [r for r in driven["script"] if r["measured"]]
    rows_out = summarise(driven["runs"], timing, script_runs, data_mb, rows, configs)
    return [{"workers": workers, **row} for row in rows_out]


def summarise(
    dag_runs: list[dict[str, Any]],
    timing: list[dict[str, Any]],
    script_runs: list[dict[str, Any]],
    data_mb: float,
    rows: int,
    configs: int,
) -> list[dict[str, Any]]:
    failed = [r for r in dag_runs if r["state"] != "success"]
    if failed:
        raise RuntimeError(
            f"DAG run(s) did not succeed: {[(r['dag_id'], r['run_id'], r['state']) for r in failed]}"
        )
    warm = [r for r in dag_runs if r["measured"]]
    by_key = {(t["dag_id"], t["run_id"], t["task_id"]): t for t in timing}
    out: list[dict[str, Any]] = []
    totals = {
        dag_id: [r["end"] - r["triggered"] for r in warm if r["dag_id"] == dag_id]
        for dag_id in (RETRAIN, TRIVIAL)
    }
    kinds = {
        "plain": "plain script (one process)",
        "one_thread": "plain script, OMP_NUM_THREADS=1",
    }
    walls = {kind: [s["wall"] for s in script_runs if s.get("kind", "plain") == kind] for kind in kinds}
    medians = {kind: statistics.median(w) for kind, w in walls.items() if w}
    for dag_id, label in ((RETRAIN, "retrain DAG (scheduler)"), (TRIVIAL, "trivial 5-task DAG (scheduler)")):
        row = {"row": label, "rows": rows, "model_configs": configs + 1, **summary(totals[dag_id], digits=2)}
        row["x_script"] = round(statistics.median(totals[dag_id]) / medians["plain"], 2)
        if "one_thread" in medians:
            row["x_script_1_thread"] = round(statistics.median(totals[dag_id]) / medians["one_thread"], 2)
        out.append(row)
    for kind, label in kinds.items():
        chosen = [s for s in script_runs if s.get("kind", "plain") == kind]
        if not chosen:
            continue
        steps = {name: [s["steps"][name] for s in chosen] for name in chosen[0]["steps"] if name != "start"}
        out.append(
            {
                "row": label,
                "rows": rows,
                **summary(walls[kind], digits=2),
                "x_script": round(medians[kind] / medians["plain"], 2),
                "peak_rss_mb": round(statistics.median(s["peak_rss_mb"] for s in chosen), 0),
                "data_mb": round(data_mb, 1),
                "note": "steps: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in steps.items()),
            }
        )
    per_task: dict[tuple[str, str], dict[str, list[float | None]]] = {}
    for run in warm:
        previous_end = run["start"]
        order = sorted(run["tasks"].items(), key=lambda kv: kv[1]["start"] or 0)
        for task_id, ti in order:
            t = by_key.get((run["dag_id"], run["run_id"], task_id), {})
            imports = (t["t3"] - t["t2"]) if t.get("t3") else 0.0
            work = (t["t4"] - t["t3"]) if t.get("t3") else None
            total = ti["end"] - ti["start"]
            figures = {
                "total_s": total,
                "sched_gap_s": ti["queued"] - previous_end if ti["queued"] else None,
                "queue_s": ti["start"] - ti["queued"] if ti["queued"] else None,
                "startup_s": t["t0"] - ti["start"] if t else None,
                "parse_s": t["t1"] - t["t0"] if t else None,
                "runner_s": t["t2"] - t["t1"] if t.get("t2") else None,
                "imports_s": imports,
                "work_s": work,
                "finish_s": ti["end"] - t["t4"] if t else None,
                "overhead_s": total - imports - (work or 0.0),
                "rss_parsed_mb": t.get("rss_parsed_mb"),
                "peak_rss_mb": t.get("peak_rss_mb"),
                "imports_inherited": 1.0 if t.get("imports_inherited") else 0.0,
            }
            bucket = per_task.setdefault((run["dag_id"], task_id), {})
            for key, value in figures.items():
                bucket.setdefault(key, []).append(value)
            previous_end = ti["end"]
    trivial_total = statistics.median(
        v for (dag_id, _), b in per_task.items() if dag_id == TRIVIAL for v in b["total_s"]
    )
    holdout_mb = data_mb * 0.25
    task_data = {
        "validate_data": data_mb,
        "train_model": data_mb,
        "evaluate_model": holdout_mb,
        "promote_model": holdout_mb,
    }
    for (dag_id, task_id), bucket in per_task.items():
        row: dict[str, Any] = {"row": f"task {dag_id}.{task_id}"}
        for key, values in bucket.items():
            row[key] = _med(values)
        if row.get("rss_parsed_mb") is not None:
            row["rss_parsed_mb"] = round(row["rss_parsed_mb"], 0)
            row["peak_rss_mb"] = round(row["peak_rss_mb"], 0)
        row["overhead_vs_trivial_s"] = round(statistics.median(bucket["overhead_s"]) - trivial_total, 3)
        row["imports_inherited"] = all(bucket["imports_inherited"])
        if dag_id == RETRAIN and task_id in task_data:
            row["data_mb"] = round(task_data[task_id], 1)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loop", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--configs", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--workers", nargs="+", choices=WORKERS, default=list(WORKERS))
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--script-job", help=argparse.SUPPRESS)
    parser.add_argument(
        "--script", nargs=3, metavar=("DATA", "SUITE", "TRACKING_URI"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.driver:
        print(json.dumps(_driver(args.warmup, args.runs, args.script_job)), flush=True)
        return 0
    if args.script:
        print(json.dumps(_script(*args.script)), flush=True)
        return 0
    rows = run(args.rows, args.configs, args.runs, smoke=args.smoke, workers=args.workers)
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
