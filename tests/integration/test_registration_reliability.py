"""Registration under faults and races, on a real MLflow store (SQLite; a real server where the network
matters): a create the server committed but whose answer was lost leaves one version, and concurrent
registrations get unique, dense versions (different runs) or one version (the same run)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from mlops_provider.core import lineage
from mlops_provider.exceptions import MLflowUnavailableError
from mlops_provider.hooks.models import COMPLETE_TAG
from mlops_provider.hooks.registry import MLflowRegistryHook

REGISTER = textwrap.dedent(
    """
    import json, sys
    from mlops_provider.hooks.registry import MLflowRegistryHook

    version, created = MLflowRegistryHook().register_run(sys.argv[1], sys.argv[2], {})
    print("RESULT " + json.dumps({"run": sys.argv[2], "version": version, "created": created}))
    """
)


def finished_runs(hook: MLflowRegistryHook, count: int) -> list[str]:
    """FINISHED runs holding a model as TrainModelOperator leaves it (an MLmodel file, the complete tag)."""
    with hook.session() as client:
        experiment = hook.ensure_experiment("registration")
        runs = []
        for _ in range(count):
            run_id = client.create_run(
                experiment, tags={COMPLETE_TAG: "true", lineage.TARGET: "y"}
            ).info.run_id
            client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
            client.set_terminated(run_id, "FINISHED")
            runs.append(run_id)
    return runs


def versions(hook: MLflowRegistryHook, name: str) -> dict[str, str]:
    """Every live version of ``name`` -> the training run it was registered from."""
    with hook.session() as client:
        found = client.search_model_versions(f"name = '{name}'")
    return {str(v.version): v.tags.get(lineage.TRAINING_RUN_ID) for v in found}


def lose_the_answer(before_commit: bool = False):
    """Fault: the create reaches the server and commits (or not), then the connection resets."""
    from mlflow import MlflowClient

    real = MlflowClient._create_model_version
    calls: list[int] = []

    def create(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            if not before_commit:
                real(self, *args, **kwargs)
            raise ConnectionResetError(104, "Connection reset by peer")
        return real(self, *args, **kwargs)

    return mock.patch.object(MlflowClient, "_create_model_version", create), calls


def test_a_lost_answer_after_the_commit_returns_the_committed_version(mlflow_store: Path):
    hook, name = MLflowRegistryHook(), f"lost-{uuid.uuid4().hex[:6]}"
    first, second = finished_runs(hook, 2)
    patch, calls = lose_the_answer()
    with patch:
        assert hook.register_run(name, first, {}) == ("1", True)
    assert calls == [1]  # the fault fired: one create, committed, its answer lost
    assert versions(hook, name) == {"1": first}
    assert hook.register_run(name, first, {}) == ("1", False)  # a task retry changes nothing
    assert hook.register_run(name, second, {}) == ("2", True)  # and the numbering goes on densely
    assert versions(hook, name) == {"1": first, "2": second}


def test_a_create_lost_before_the_commit_fails_retryably_and_the_retry_registers_once(mlflow_store: Path):
    hook, name = MLflowRegistryHook(), f"lost-{uuid.uuid4().hex[:6]}"
    (run,) = finished_runs(hook, 1)
    patch, calls = lose_the_answer(before_commit=True)
    with patch, pytest.raises(MLflowUnavailableError, match="Connection reset"):
        hook.register_run(name, run, {})
    assert calls == [1]
    assert versions(hook, name) == {}
    assert hook.register_run(name, run, {}) == ("1", True)
    assert versions(hook, name) == {"1": run}


def register_concurrently(name: str, runs: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER, name, run],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-3000:]
        line = [row for row in out.splitlines() if row.startswith("RESULT ")][-1]
        results.append(json.loads(line.removeprefix("RESULT ")))
    return results


def test_eight_concurrent_registrations_of_different_runs_get_unique_dense_versions(mlflow_store: Path):
    hook, name = MLflowRegistryHook(), f"race-{uuid.uuid4().hex[:6]}"
    runs = finished_runs(hook, 8)
    results = register_concurrently(name, runs)
    assert sorted(int(r["version"]) for r in results) == list(range(1, 9))
    assert all(r["created"] for r in results)
    assert versions(hook, name) == {r["version"]: r["run"] for r in results}


def test_eight_concurrent_registrations_of_one_run_leave_one_version(mlflow_store: Path):
    hook, name = MLflowRegistryHook(), f"race-{uuid.uuid4().hex[:6]}"
    (run,) = finished_runs(hook, 1)
    results = register_concurrently(name, [run] * 8)
    kept = {r["version"] for r in results}
    assert len(kept) == 1, results
    assert versions(hook, name) == {kept.pop(): run}
    assert sum(r["created"] for r in results) == 1, results


# -- over HTTP: the answer to CreateModelVersion is lost on the wire (a real `mlflow server`) --
@pytest.fixture(scope="module")
def server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import urllib.request

    tmp = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(tmp / "artifacts")]
    with (tmp / "server.log").open("w") as log:
        server = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while server.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        assert server.poll() is None, (tmp / "server.log").read_text()[-3000:]
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


@pytest.mark.slow
def test_over_http_a_lost_create_answer_leaves_one_version(
    server_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import requests
    from mlflow.utils import rest_utils

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": server_uri}))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    hook, name = MLflowRegistryHook(), f"http-{uuid.uuid4().hex[:6]}"
    (run,) = finished_runs(hook, 1)
    real, lost = rest_utils.http_request, []

    def http_request(host_creds, endpoint, method, *args, **kwargs):
        answer = real(host_creds, endpoint, method, *args, **kwargs)
        if endpoint.endswith("/model-versions/create") and not lost:
            lost.append(answer.status_code)  # the server answered (committed); the answer never arrives
            raise requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected")
        return answer

    with mock.patch.object(rest_utils, "http_request", http_request):
        assert hook.register_run(name, run, {}) == ("1", True)
    assert lost == [200]
    assert versions(hook, name) == {"1": run}
