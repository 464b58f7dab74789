"""Models API: GET /mlops/api/models/{name} (500 versions, two years of daily drift checks) and GET /mlops/api/models (100 models) against a local MLflow server.

    .venv/bin/python -m bench.models_api            # full sizes (seeding takes about a minute)
    .venv/bin/python -m bench.models_api --smoke    # tiny sizes: CI

Set-up: the MLflow SQLite store is seeded with ``MlflowClient`` directly (fast), in the formats the
provider writes (``core.gate.decision_tags``, lineage tags, ``core.monitoring.drift_record``, the
registered-model summary tags): one model with 500 versions, each with its training run (holdout and
train metrics, params, lineage tags) and gate decision tags, 730 daily drift runs in
``<model>-monitoring`` (10 columns each); 99 more registered models for the list. Then
``mlflow server --workers 1`` serves that store, and a worker process (temporary AIRFLOW_HOME, migrated
SQLite metadata DB) builds Airflow's real API app (``create_app("core")``, the plugin mounted) and calls
it with an admin JWT through ``TestClient``, counting MLflow REST requests per API call:

- ``model, cold``: the first call (empty cache: versions, runs, series loaded);
- ``model, warm``: the median of the next calls (the figure the target, <= 300 ms, is about);
- ``model, after alias move``: the call after the champion alias moved (cache invalidated, reloaded);
- ``model, after a new drift check``: the call after a new monitoring run (only the series reloaded);
- ``list, cold`` / ``list, warm``: GET /mlops/api/models (target <= 500 ms median).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import print_rows, run_module, summary
from bench.registry import start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench_models"
COLUMNS = [f"feature_{i}" for i in range(10)]
GATES = ({"f1_macro": {"min": 0.6}}, {"f1_macro": {"min_delta": 0.0}, "log_loss": {"min_delta": -0.05}})


def _decision_tags(version: int, rng: Any) -> dict[str, str]:
    from mlops_provider.core.gate import decide, decision_tags, evaluate_gates

    challenger = {"f1_macro": rng.uniform(0.55, 0.9), "log_loss": rng.uniform(0.2, 0.6)}
    champion = {"f1_macro": 0.75, "log_loss": 0.4} if version > 1 else None
    gates = evaluate_gates(challenger, champion=champion, thresholds=GATES[0], vs_champion=GATES[1])
    decision = decide(gates, has_champion=champion is not None)
    summary = {
        "decision": "promoted" if decision.decision == "promote" else "refused",
        "reason": decision.reason,
        "old_version": str(version - 1) if version > 1 else None,
        "new_version": str(version),
        "gates": [g.as_dict() for g in decision.gates],
        "decided_by": "gate (automatic)",
        "decided_at": "2026-01-01T02:00:00Z",
        "dag_run": f"airflow:{MODEL}_retrain/scheduled__{version}/promote",
    }
    return decision_tags(summary)


def _lineage_tags(version: int, run_id: str) -> dict[str, str]:
    from mlops_provider.core import lineage

    return {
        lineage.TRAINING_DATA_URI: f"s3://data/{MODEL}/train-{version}.parquet",
        lineage.TRAINING_DATA_FINGERPRINT: f"sha256:{version:064x}",
        lineage.TRAINING_DATA_ROWS: "100000",
        lineage.FEATURES: json.dumps(COLUMNS),
        lineage.TARGET: "label",
        lineage.TASK_TYPE: "classification",
        lineage.VALIDATION_RESULT: "passed",
        lineage.CONFIG_HASH: "sha256:0123456789abcdef",
        lineage.CODE_VERSION: "0.9.0",
        lineage.DAG_ID: f"{MODEL}_retrain",
        lineage.RUN_ID: f"scheduled__{version}",
        lineage.TASK_ID: "train",
        lineage.TRY_NUMBER: "1",
        lineage.TRAINING_RUN_ID: run_id,
        lineage.TRIGGER_CAUSE: "schedule" if version % 3 else "drift",
    }


def _model_tags(name: str, versions: int) -> dict[str, str]:
    from mlops_provider.core.gate import HISTORY_TAG, append_history
    from mlops_provider.core.monitoring import last_decision_value

    history = None
    for v in range(max(1, versions - 30), versions + 1):
        entry = {"alias": "champion", "action": "promote", "from": str(v - 1), "to": str(v), "why": "gates",
                 "who": "gate (automatic)", "when": f"2026-01-{1 + v % 28:02d}T02:00:00Z"}  # fmt: skip
        history = append_history(history, entry)
    refusal = {"decision": "refused", "new_version": str(versions), "reason": "gate(s) failed",
               "gates": [{"gate": "vs_champion", "metric": "f1_macro", "value": -0.02, "threshold": 0.0,
                          "passed": False}], "decided_by": "gate", "dag_run": f"airflow:{name}_retrain/r/promote"}  # fmt: skip
    drift = {"status": "drift", "drift_share": 0.4, "threshold": 0.3, "at": "2026-01-01T00:00:00Z",
             "dag_id": f"{name}_drift_monitor", "dag_run_id": "scheduled__1", "report_uri": None}  # fmt: skip
    return {
        "mlops.managed": "true",
        "mlops.retrain_dag": f"{name}_retrain",
        "mlops.revision": str(time.time_ns()),
        HISTORY_TAG.format(alias="champion"): str(history),
        "mlops.last_decision": str(last_decision_value(refusal)),
        "mlops.last_check.drift": json.dumps(drift),
    }


def _drift_run(client: Any, experiment_id: str, day: int, days: int) -> None:
    from datetime import UTC, datetime, timedelta

    from mlflow.entities import Metric

    from mlops_provider.core.monitoring import drift_record

    at = datetime.now(UTC) - timedelta(days=days - day)
    columns = {c: {"score": (day * (i + 3) % 17) / 100, "drifted": (day + i) % 5 == 0, "method": "wasserstein"}
               for i, c in enumerate(COLUMNS)}  # fmt: skip
    drifted = sum(c["drifted"] for c in columns.values())
    summary = {"status": "drift" if drifted / len(columns) >= 0.3 else "no_drift", "drift_share": drifted / len(columns),
               "threshold_share": 0.3, "n_current": 2000, "n_reference": 100000, "champion_version": "500",
               "report_uri": f"/tmp/reports/{MODEL}_drift_monitor/d{day}/drift/drift_report.html"}  # fmt: skip
    identity = {
        "dag_id": f"{MODEL}_drift_monitor",
        "dag_run_id": f"scheduled__{at:%Y-%m-%d}",
        "task_id": "drift",
    }
    record = drift_record(
        model=MODEL, summary=summary, columns=columns, identity=identity, logical_date=at, checked_at=at
    )
    ms = record.checked_at_ms
    run = client.create_run(experiment_id, start_time=ms, tags=record.tags, run_name=record.run_name)
    metrics = [Metric(k, v, ms, 0) for k, v in record.metrics.items()]
    client.log_batch(run.info.run_id, metrics=metrics)
    client.set_terminated(run.info.run_id, "FINISHED", end_time=ms + 5000)


def _fast_sqlite() -> None:
    """Seeding only: no fsync per commit on the SQLite store (thousands of small commits)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def pragmas(connection: Any, record: Any) -> None:
        if type(connection).__module__.startswith("sqlite3"):
            cursor = connection.cursor()
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.close()

    event.listen(Engine, "connect", pragmas)


def _seed_versions(store: str, versions: int) -> None:
    import random

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    rng = random.Random(42)
    client = MlflowClient(store, store)
    experiment = client.get_experiment_by_name(MODEL).experiment_id
    names = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "log_loss")
    for v in range(1, versions + 1):
        run_id = client.create_run(experiment).info.run_id
        metrics = [Metric(f"{p}{m}", rng.random(), 0, 0) for m in names for p in ("holdout_", "train_")]
        params = [Param(k, str(rng.randint(1, 500))) for k in ("max_iter", "max_depth", "random_state")]
        client.log_batch(run_id, metrics=metrics, params=params, tags=[])
        client.set_terminated(run_id)
        tags = {**_lineage_tags(v, run_id), **_decision_tags(v, rng)}
        client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id, tags=tags)
    client.set_registered_model_alias(MODEL, "champion", str(versions))
    client.set_registered_model_alias(MODEL, "previous_champion", str(max(1, versions - 1)))
    for key, value in _model_tags(MODEL, versions).items():
        client.set_registered_model_tag(MODEL, key, value)


def _seed_monitoring(store: str, days: int, models: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(store, store)
    monitoring = client.get_experiment_by_name(f"{MODEL}-monitoring").experiment_id
    for day in range(days):
        _drift_run(client, monitoring, day, days)
    for i in range(1, models):
        name = f"model_{i:03d}"
        client.create_registered_model(name, tags=_model_tags(name, 3))
        client.create_model_version(name, "file:///tmp/model")
        client.set_registered_model_alias(name, "champion", "1")


def seed(store: str, versions: int, days: int, models: int) -> float:
    """The store's content (see the module docstring); seconds taken."""
    from mlflow import MlflowClient

    started = time.monotonic()
    _fast_sqlite()
    client = MlflowClient(store, store)  # creates the schema
    client.create_experiment(MODEL)
    client.create_experiment(f"{MODEL}-monitoring", tags={"mlops.kind": "monitoring"})
    client.create_registered_model(MODEL)
    _seed_versions(store, versions)
    _seed_monitoring(store, days, models)
    return time.monotonic() - started


# -- the worker (its own process: Airflow and its API app are imported there) -----------------------
class RequestCounter:
    """Counts MLflow REST calls (by endpoint) by wrapping ``mlflow.utils.rest_utils.http_request``."""

    def __init__(self) -> None:
        import mlflow.utils.rest_utils as rest

        self.calls: Counter[str] = Counter()
        real = rest.http_request

        def counted(host_creds: Any, endpoint: str, method: str, *args: Any, **kwargs: Any) -> Any:
            self.calls[f"{method} {endpoint.split('/api/2.0/mlflow/')[-1]}"] += 1
            return real(host_creds, endpoint, method, *args, **kwargs)

        rest.http_request = counted

    def take(self) -> dict[str, int]:
        calls, self.calls = dict(self.calls), Counter()
        return calls


def _worker(url: str, runs: int) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient
    from mlflow import MlflowClient

    client = TestClient(create_app("core"))
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bench", role="admin"))
    headers = {"Authorization": f"Bearer {token}"}
    counter = RequestCounter()
    out: dict[str, Any] = {}

    def call(path: str) -> tuple[float, dict[str, int], int]:
        counter.take()
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        return elapsed, counter.take(), len(response.content)

    for key, path in (("model", f"/mlops/api/models/{MODEL}"), ("list", "/mlops/api/models")):
        out[f"{key}_cold"] = call(path)
        out[f"{key}_warm"] = [call(path) for _ in range(runs)]
    mlflow = MlflowClient(url, url)
    mlflow.set_registered_model_alias(MODEL, "champion", "1")
    mlflow.set_registered_model_tag(MODEL, "mlops.revision", str(time.time_ns()))
    out["model_moved"] = call(f"/mlops/api/models/{MODEL}")
    experiment = mlflow.get_experiment_by_name(f"{MODEL}-monitoring")
    _drift_run(mlflow, experiment.experiment_id, 0, 0)  # checked now: the newest run
    out["model_new_check"] = call(f"/mlops/api/models/{MODEL}")
    return out


def _row(step: str, samples: list[Any], target: float | None = None) -> dict[str, Any]:
    times = [s[0] for s in samples]
    calls = samples[-1][1]
    row = {"call": step, **summary(times), "mlflow_requests": sum(calls.values()), "requests": _brief(calls)}
    row["response_kb"] = round(samples[-1][2] / 1024)
    if target is not None:
        row["target"] = f"<= {target * 1000:.0f} ms: " + (
            "met" if statistics.median(times) <= target else "MISSED"
        )
    return row


def _brief(calls: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(calls.items())) or "none"


def run(runs: int = 15, smoke: bool = False) -> list[dict[str, Any]]:
    """Rows: model cold/warm/after a move/after a check, list cold/warm, seeding and server start."""
    versions, days, models = (500, 730, 100) if not smoke else (5, 10, 3)
    runs = 3 if smoke else runs
    with tempfile.TemporaryDirectory(prefix="bench-models-api-") as tmp_name:
        tmp = Path(tmp_name)
        seed_s = seed(f"sqlite:///{tmp / 'mlflow.db'}", versions, days, models)
        server, url, ready_s = start_server(tmp)
        try:
            env = {
                **os.environ,
                "AIRFLOW_HOME": str(tmp / "airflow"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
                "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": url}),
                "MLOPS_HOME": str(tmp / "mlops"),
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "PYTHONWARNINGS": "ignore",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            }
            env.pop("MLFLOW_TRACKING_URI", None)
            subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=env,
                cwd=tmp,
                check=True,
                capture_output=True,
            )
            result = run_module(
                "bench.models_api",
                ["--worker", url, "--runs", str(runs)],
                env=env,
                cwd=tmp,
                what="models worker",
            )
        finally:
            stop_server(server)
    sizes = f"{versions} versions, {days} daily drift runs"
    return [
        {**_row("model, cold (first call)", [result["model_cold"]]), "data": sizes},
        {**_row("model, warm", result["model_warm"], target=0.3), "data": sizes},
        _row("model, after alias move", [result["model_moved"]]),
        _row("model, after a new drift check", [result["model_new_check"]]),
        {**_row("list, cold (first call)", [result["list_cold"]]), "data": f"{models} models"},
        {**_row("list, warm", result["list_warm"], target=0.5), "data": f"{models} models"},
        {"call": "seeding (MlflowClient on SQLite)", "median_s": round(seed_s, 1), "runs": 1},
        {"call": "server start to /health", "median_s": round(ready_s, 1), "runs": 1},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.models_api", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.runs)), flush=True)
        return 0
    print_rows(run(args.runs, smoke=args.smoke))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
