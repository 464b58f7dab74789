"""MLflowHook's credential scoping: what a session sets, clears and leaves behind, across threads, and
what an error shows. Sentinel secrets must never leak into another session, os.environ or a traceback."""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlops_provider.exceptions import MLflowUnavailableError
from mlops_provider.hooks.mlflow import MLflowHook

CREDENTIAL_VARS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str, **fields: object) -> None:
    payload = {"conn_type": "mlflow", "host": host, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(payload))


def test_a_connection_without_credentials_clears_the_workers_own(monkeypatch, tmp_path):
    worker = {
        "MLFLOW_TRACKING_TOKEN": "worker-token-SENTINEL",
        "MLFLOW_TRACKING_USERNAME": "worker-user",
        "MLFLOW_TRACKING_PASSWORD": "worker-pw-SENTINEL",
        "AWS_SECRET_ACCESS_KEY": "worker-aws-SENTINEL",
        "AWS_ACCESS_KEY_ID": "worker-key",
    }
    for key, value in worker.items():
        monkeypatch.setenv(key, value)
    set_conn(monkeypatch, "mlflow_plain", f"sqlite:///{tmp_path / 'm.db'}")
    with MLflowHook("mlflow_plain").session():
        leaked = {k: os.environ[k] for k in CREDENTIAL_VARS if k in os.environ}
    assert leaked == {}
    assert {k: os.environ.get(k) for k in worker} == worker  # restored afterwards


def test_a_connection_sets_only_its_own_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "worker-token-SENTINEL")
    set_conn(monkeypatch, "mlflow_basic", f"sqlite:///{tmp_path / 'm.db'}", login="svc", password="pw-1")
    with MLflowHook("mlflow_basic").session():
        assert os.environ["MLFLOW_TRACKING_USERNAME"] == "svc"
        assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw-1"
        assert "MLFLOW_TRACKING_TOKEN" not in os.environ
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "worker-token-SENTINEL"
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ


def test_sessions_in_threads_never_see_each_others_secrets(monkeypatch, tmp_path):
    hooks = {}
    for i in range(4):
        set_conn(
            monkeypatch,
            f"mlflow_t{i}",
            f"sqlite:///{tmp_path / f'{i}.db'}",
            login=f"u{i}",
            password=f"pw-{i}",
        )
        hooks[f"pw-{i}"] = MLflowHook(f"mlflow_t{i}")
    for hook in hooks.values():
        assert hook.settings.password  # resolve the connections in this thread first

    def work(secret: str) -> list[str]:
        seen = []
        for _ in range(25):
            with hooks[secret].session():
                seen.append(os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
                time.sleep(0.001)  # hand the GIL to the other threads inside the session
                seen.append(os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        return seen

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(hooks, pool.map(work, hooks), strict=True))
    for secret, seen in results.items():
        assert set(seen) == {secret}
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ


def test_a_failed_call_shows_no_credential_of_the_uri_in_its_traceback(monkeypatch):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens: connection refused
    uri = f"http://alice:uri-SENTINEL-pw@127.0.0.1:{port}"
    set_conn(monkeypatch, "mlflow_down", uri, extra={"timeout": 2, "max_retries": 0})
    hook = MLflowHook("mlflow_down")
    with pytest.raises(MLflowUnavailableError) as raised:
        hook.check()
    text = "".join(traceback.format_exception(raised.value))
    assert "uri-SENTINEL-pw" not in text
    assert f"127.0.0.1:{port}" in text  # still says where


def test_the_lock_is_released_when_a_session_fails(monkeypatch, tmp_path):
    set_conn(monkeypatch, "mlflow_x", f"sqlite:///{tmp_path / 'm.db'}")
    hook = MLflowHook("mlflow_x")
    with pytest.raises(RuntimeError), hook.session():
        raise RuntimeError("boom")
    done = threading.Event()

    def other() -> None:
        with hook.session():
            done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=60)
    assert done.is_set()
