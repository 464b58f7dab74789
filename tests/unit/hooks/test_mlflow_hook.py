"""MLflowHook: resolution order, bad input, scoped credentials, bounded failures, real SQLite store."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest

from mlops_provider.exceptions import MLflowConfigError, MLflowUnavailableError
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.mlflow_settings import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    redact_uri,
    scoped_environ,
)


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str = "mlflow_default", **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_connection_wins_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    set_conn(monkeypatch, host="http://mlflow.internal:5000", extra={"registry_uri": "sqlite:///r.db"})
    settings = MLflowHook().settings
    assert settings.tracking_uri == "http://mlflow.internal:5000"
    assert settings.registry_uri == "sqlite:///r.db"
    assert settings.source == "Airflow connection 'mlflow_default'"


def test_host_without_scheme_and_port_field(monkeypatch):
    set_conn(monkeypatch, host="mlflow", port=5001)
    assert MLflowHook().settings.tracking_uri == "http://mlflow:5001"


def test_environment_then_embedded_default(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env-host:5000")
    assert MLflowHook().settings.source == "environment variable MLFLOW_TRACKING_URI"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    settings = MLflowHook().settings
    assert settings.source == "embedded default"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / '.mlflow' / 'mlflow.db'}"
    assert settings.artifact_location == (tmp_path / ".mlflow" / "artifacts").as_uri()


def test_missing_named_connection_is_an_error(monkeypatch):
    with pytest.raises(MLflowConfigError, match="connection 'mlflow_prod'.*does not exist"):
        _ = MLflowHook(mlflow_conn_id="mlflow_prod").settings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": "htp://x:5000"}, "unsupported scheme 'htp'"),
        ({"host": ""}, "Tracking URI .* is empty"),
        ({"host": "http://x", "extra": {"timout": 3}}, "unknown extra key.*timout"),
        ({"host": "http://x", "extra": {"timeout": "soon"}}, "'timeout' must be an integer"),
        ({"host": "http://x", "extra": "[1, 2]"}, "extra is not a JSON object"),
    ],
)
def test_bad_connection_gives_one_clear_error(monkeypatch, fields, message):
    set_conn(monkeypatch, **fields)
    with pytest.raises(MLflowConfigError, match=message):
        _ = MLflowHook().settings


def test_bad_tracking_uri_in_environment(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "localhost:5000")
    with pytest.raises(MLflowConfigError, match="MLFLOW_TRACKING_URI"):
        _ = MLflowHook().settings


def test_session_scopes_credentials_and_real_store_answers(monkeypatch, tmp_path):
    db = tmp_path / "m.db"
    set_conn(
        monkeypatch,
        host=f"sqlite:///{db}",
        login="alice",
        password="pw-123",
        extra={"token": "tok-456", "aws_secret_access_key": "aws-789"},
    )
    before = dict(os.environ)
    hook = MLflowHook()
    with hook.session() as client:
        assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw-123"
        assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
        experiment_id = hook.ensure_experiment("exp")
        assert hook.ensure_experiment("exp") == experiment_id
        assert client.get_experiment(experiment_id).name == "exp"
    after = dict(os.environ)
    assert after == before
    ok, message = hook.test_connection()
    assert ok, message
    assert str(db) in message


def test_secrets_are_masked(monkeypatch):
    from airflow.sdk._shared.secrets_masker import redact

    set_conn(monkeypatch, host="http://h:5000", password="pw-masked-1", extra={"token": "tok-masked-2"})
    _ = MLflowHook().settings
    assert "pw-masked-1" not in str(redact("x pw-masked-1 y"))
    assert "tok-masked-2" not in str(redact("tok-masked-2"))


def test_silent_server_fails_fast_naming_host_without_credentials(monkeypatch, silent_port):
    set_conn(
        monkeypatch,
        host=f"http://bob:uri-secret@127.0.0.1:{silent_port}",
        password="conn-secret",
        extra={"timeout": 1, "max_retries": 1},
    )
    hook = MLflowHook()
    started = time.monotonic()
    with pytest.raises(MLflowUnavailableError) as info:
        hook.check()
    assert time.monotonic() - started < 15
    message = str(info.value)
    assert f"127.0.0.1:{silent_port}" in message
    assert "uri-secret" not in message
    assert "conn-secret" not in message
    ok, text = hook.test_connection()
    assert not ok
    assert "unreachable" in text


def test_refused_connection_fails_fast(monkeypatch):
    set_conn(monkeypatch, host="http://127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(MLflowUnavailableError, match=r"127\.0\.0\.1:1"):
        MLflowHook().check()
    assert time.monotonic() - started < 20


def test_default_budget_for_an_unreachable_server_is_under_a_minute():
    # attempts x per-request timeout + urllib3 backoff (factor 1: 1 s, 2 s, ...)
    attempts = DEFAULT_MAX_RETRIES + 1
    worst = attempts * DEFAULT_TIMEOUT_S + sum(2**i for i in range(DEFAULT_MAX_RETRIES)) * 1.5
    assert worst < 60


def test_redact_uri_and_scoped_environ(monkeypatch):
    assert redact_uri("https://u:p@host:443/x") == "https://***@host:443/x"
    assert redact_uri("sqlite:///a.db") == "sqlite:///a.db"
    monkeypatch.setenv("KEEP_ME", "1")
    with scoped_environ({"KEEP_ME": "2", "NEW_ONE": "3"}):
        assert os.environ["KEEP_ME"] == "2"
    assert os.environ["KEEP_ME"] == "1"
    assert "NEW_ONE" not in os.environ


def test_a_session_leaves_no_uri_pinned_in_the_process(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """After a hook's session MLflow reads its URIs from the environment again, as before it: a later
    client in the same process (another connection, another test) never talks to this one's server."""
    import mlflow

    first = {"conn_type": "mlflow", "host": "http://127.0.0.1:9", "extra": {"max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_FIRST", json.dumps(first))
    with MLflowHook("mlflow_first").session():
        assert mlflow.get_registry_uri() == "http://127.0.0.1:9"
    later = f"sqlite:///{tmp_path / 'later.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", later)
    assert mlflow.get_tracking_uri() == later
    assert mlflow.get_registry_uri() == later
