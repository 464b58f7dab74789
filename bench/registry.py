"""Registry: register + gate + alias move (RegisterModelOperator, PromoteModelOperator) against a local MLflow server.

    .venv/bin/python -m bench.registry              # 7 measured promotions after one warm-up
    .venv/bin/python -m bench.registry --smoke      # one promotion: CI

Set-up: ``mlflow server --workers 1`` (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``, SQLite backend and
proxied artifacts in a temporary folder) on a free 127.0.0.1 port; a worker process (temporary
AIRFLOW_HOME, the ``mlflow_default`` connection pointing at the server) trains one run per promotion
beforehand (TrainModelOperator, breast-cancer data from scikit-learn, LogisticRegression), then
measures, per new run, in a warm process:

- ``register``: ``RegisterModelOperator.execute()`` (idempotency lookups + ``register_model``);
- ``gate``: ``PromoteModelOperator.execute()`` minus the alias move: challenger and champion models
  and the holdout downloaded from the server, both scored, gates evaluated, decision tags written;
- ``alias_move``: the locked, read-back alias move with its history tag (inside the promotion);
- ``total``: register + promote, what the target (< 2 s median) is about;
- ``floor``: the bare client calls a hand-written script needs for the same registry outcome
  (``create_model_version`` on the run's model, ``set_registered_model_alias`` twice), no gate.

Finer rows (parts of the above): the version's first model card (inside ``register``); the decision's
tags (``record_decision``) and the model cards rewritten after it, with the registered model's
description (inside ``gate``); ``gate`` minus both is the scoring. ``requests``: HTTP requests to the
server per step (median), which the machine's load does not change.

Every measured promotion moves ``@champion`` (same data and seed: the gate passes). Median (min-max).
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
import uuid
from pathlib import Path
from typing import Any

from bench.common import print_rows, run_module, summary
from demo.airflow_local import free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench_registry"
STEPS = (  # sample key, row label
    ("register", "register"),
    ("first_card", "register: the first model card"),
    ("gate", "gate"),
    ("decision_tags", "gate: the decision's tags"),
    ("cards", "gate: model cards and description after it"),
    ("alias_move", "alias_move"),
    ("total", "total"),
)


def _wait_http(url: str, process: subprocess.Popen, timeout: float = 180) -> float:
    import urllib.request

    started = time.monotonic()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.monotonic() - started
        except OSError:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{url} did not answer within {timeout} s") from None
            time.sleep(0.5)


def start_server(folder: Path) -> tuple[subprocess.Popen, str, float]:
    """A local MLflow server (one worker, no job consumers) in its own process group."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = open(folder / "mlflow-server.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ],
        env=env,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        ready = _wait_http(f"{url}/health", process)
    except BaseException:
        stop_server(process)
        raise
    return process, url, ready


def stop_server(process: subprocess.Popen) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# -- the worker (its own process: Airflow is imported there) ----------------------------------------
class _TI:
    def __init__(self, task_id: str, run_id: str) -> None:
        self.dag_id, self.run_id, self.task_id, self.try_number = "bench_registry", run_id, task_id, 1
        self.id = uuid.uuid4()

    def xcom_push(self, key: str, value: Any) -> None:
        pass


class _Meter:
    """Seconds and HTTP requests spent inside patched methods, by key (a card writer's worker thread
    counts toward the call that waits for it)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.requests = 0
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def count_requests(self) -> None:
        import requests

        send, meter = requests.Session.send, self

        trace = os.environ.get("BENCH_REGISTRY_TRACE")  # a file: one "METHOD path" line per request

        def counted(session: Any, request: Any, **kwargs: Any) -> Any:
            with meter.lock:
                meter.requests += 1
                if trace:
                    with open(trace, "a", encoding="utf-8") as f:
                        f.write(f"{meter.requests} {request.method} {request.path_url}\n")
            return send(session, request, **kwargs)

        requests.Session.send = counted  # type: ignore[method-assign,assignment]

    def wrap(self, owner: type, name: str, key: str) -> None:
        original, meter = getattr(owner, name), self

        def timed(hook: Any, *args: Any, **kwargs: Any) -> Any:
            started, before = time.perf_counter(), meter.requests
            try:
                return original(hook, *args, **kwargs)
            finally:
                meter.seconds[key] = meter.seconds.get(key, 0.0) + time.perf_counter() - started
                meter.counts[key] = meter.counts.get(key, 0) + meter.requests - before

        setattr(owner, name, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.counts.clear()


def _mark(label: str) -> None:
    if trace := os.environ.get("BENCH_REGISTRY_TRACE"):
        with open(trace, "a", encoding="utf-8") as f:
            f.write(f"# {label}\n")


class _DagRun:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id


def _context(task_id: str, run_id: str) -> dict[str, Any]:
    ti = _TI(task_id, run_id)
    return {"ti": ti, "task_instance": ti, "dag_run": _DagRun(run_id)}


def _worker(runs: int, warmup: int, folder: str) -> dict[str, Any]:
    import warnings

    warnings.filterwarnings("ignore")
    from sklearn.datasets import load_breast_cancer

    from mlops_provider.hooks.mlflow import MLflowHook
    from mlops_provider.hooks.model_card import ModelCardHook
    from mlops_provider.hooks.registry import MLflowRegistryHook
    from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator
    from mlops_provider.operators.training import TrainModelOperator

    frame = load_breast_cancer(as_frame=True).frame
    data = Path(folder) / "cancer.csv"
    frame.to_csv(data, index=False)
    total = warmup + runs
    train_runs = []
    for i in range(total + 1):  # one more for the floor's registry calls
        op = TrainModelOperator(
            task_id="train",
            model_name=MODEL,
            data_uri=str(data),
            target="target",
            estimator="sklearn.linear_model.LogisticRegression",
            estimator_params={"max_iter": 2000},
        )
        train_runs.append(op.execute(_context("train", f"train_{i}"))["run_id"])  # type: ignore[arg-type]

    meter = _Meter()
    meter.count_requests()
    meter.wrap(MLflowRegistryHook, "move_alias", "alias_move")
    meter.wrap(MLflowRegistryHook, "record_decision", "decision_tags")
    meter.wrap(ModelCardHook, "write_card", "write_card")
    meter.wrap(ModelCardHook, "_after_decision", "cards")
    samples = []
    for i in range(total):
        meter.reset()
        run_id = f"promote_{i}"
        t0, r0 = time.perf_counter(), meter.requests
        _mark(f"register {i}")
        registered = RegisterModelOperator(
            task_id="register", model_name=MODEL, run_id=train_runs[i]
        ).execute(
            _context("register", run_id)  # type: ignore[arg-type]
        )
        t1, r1 = time.perf_counter(), meter.requests
        first_card = (meter.seconds.get("write_card", 0.0), meter.counts.get("write_card", 0))
        _mark(f"promote {i}")
        decision = PromoteModelOperator(
            task_id="promote",
            model_name=MODEL,
            version=registered["version"],
            thresholds={"f1_macro": {"min": 0.5}},
            vs_champion={"f1_macro": {"min_delta": -0.01}},
        ).execute(_context("promote", run_id))  # type: ignore[arg-type]
        t2, r2 = time.perf_counter(), meter.requests
        if decision["decision"] != "promoted":
            raise RuntimeError(f"promotion {i}: {decision['decision']}: {decision['reason']}")
        spent, counts = meter.seconds, meter.counts
        samples.append(
            {
                "register": (t1 - t0, r1 - r0),
                "first_card": first_card,
                "gate": (t2 - t1 - spent["alias_move"], r2 - r1 - counts["alias_move"]),
                "decision_tags": (spent["decision_tags"], counts["decision_tags"]),
                "cards": (spent.get("cards", 0.0), counts.get("cards", 0)),
                "alias_move": (spent["alias_move"], counts["alias_move"]),
                "total": (t2 - t0, r2 - r0),
                "warm": i >= warmup,
            }
        )

    floor = []
    with MLflowHook().session() as client:
        run = client.get_run(train_runs[-1])
        source = f"{run.info.artifact_uri}/model"
        for _ in range(runs):
            t0, r0 = time.perf_counter(), meter.requests
            champion = client.get_model_version_by_alias(MODEL, "champion").version
            version = client.create_model_version(MODEL, source, run_id=train_runs[-1]).version
            client.set_registered_model_alias(MODEL, "previous_champion", champion)
            client.set_registered_model_alias(MODEL, "champion", version)
            floor.append((time.perf_counter() - t0, meter.requests - r0))
    return {"samples": samples, "floor": floor}


def run(runs: int = 7, smoke: bool = False) -> list[dict[str, Any]]:
    """Rows: register, gate, alias move, total (target < 2 s), floor; plus the cold first promotion."""
    warmup = 1
    if smoke:
        runs, warmup = 1, 0
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp_name:
        tmp = Path(tmp_name)
        server, url, ready_s = start_server(tmp)
        try:
            env = {
                **os.environ,
                "AIRFLOW_HOME": str(tmp / "airflow"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": url}),
                "MLOPS_HOME": str(tmp / "mlops"),
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "PYTHONWARNINGS": "ignore",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            }
            env.pop("MLFLOW_TRACKING_URI", None)
            result = run_module(
                "bench.registry",
                ["--worker", tmp_name, "--runs", str(runs), "--warmup", str(warmup)],
                env=env,
                cwd=tmp,  # MLflow reads the cwd (uv project detection): keep it out of the repository
                what="registry worker",
            )
        finally:
            stop_server(server)
    warm = [s for s in result["samples"] if s["warm"]]
    cold = [s for s in result["samples"] if not s["warm"]]
    rows = []
    for step, label in STEPS:
        requests = statistics.median(s[step][1] for s in warm)
        rows.append(
            {"step": label, **summary([s[step][0] for s in warm]), "requests": round(requests)}
            | {"server": "mlflow server --workers 1"}
        )
    total = next(row for row in rows if row["step"] == "total")
    total["target"] = "< 2 s: " + ("met" if total["median_s"] < 2 else "MISSED")
    floor = result["floor"]
    rows.append(
        {"step": "floor (bare client calls, no gate)", **summary([f[0] for f in floor])}
        | {"requests": round(statistics.median(f[1] for f in floor))}
    )
    if cold:
        rows.append(
            {"step": "total, first promotion (cold process)", **summary([s["total"][0] for s in cold])}
        )
    rows.append({"step": "server start to /health", "median_s": round(ready_s, 1), "runs": 1})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.registry", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--worker", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.runs, args.warmup, args.worker)), flush=True)
        return 0
    rows = run(args.runs, smoke=args.smoke)
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
