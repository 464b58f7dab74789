"""Where MLflow lives and how to talk to it: settings from a connection or the environment.

Resolution order (see :class:`~mlops_provider.hooks.mlflow.MLflowHook`): the Airflow connection, then
``MLFLOW_TRACKING_URI``, then the embedded default under ``MLOPS_HOME``. MLflow's SDK reads
credentials, timeouts and the S3 endpoint from environment variables only: :func:`scoped_environ`
sets them for a block and restores the previous environment afterwards.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlops_provider.core.paths import mlops_home
from mlops_provider.exceptions import MLflowConfigError

SUPPORTED_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "file", "databricks")
DEFAULT_TIMEOUT_S = 15
DEFAULT_MAX_RETRIES = 2
EXTRA_KEYS = frozenset(
    {
        "registry_uri",
        "token",
        "ui_url",
        "s3_endpoint_url",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_region",
        "timeout",
        "max_retries",
        "insecure_tls",
        "artifact_location",
    }
)


def redact_uri(uri: str) -> str:
    """Strip user info (credentials) from a URI so it can be shown in logs and errors."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class MLflowSettings:
    """Where MLflow lives and how to talk to it; secrets are kept out of ``repr``."""

    tracking_uri: str
    registry_uri: str
    source: str
    ui_url: str | None = None
    artifact_location: str | None = None
    timeout: int = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    insecure_tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_region: str | None = None

    @property
    def is_remote(self) -> bool:
        return urlsplit(self.tracking_uri).scheme in ("http", "https")

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.password, self.token, self.aws_secret_access_key) if s]

    def environ(self) -> dict[str, str | None]:
        """
        The environment variables MLflow's SDK (and boto3 for S3 artifacts) reads. A credential this
        source does not set maps to ``None``: it is cleared for the session, so a worker's own
        ``MLFLOW_TRACKING_TOKEN`` or AWS keys never reach a server the connection names.
        """
        env: dict[str, str | None] = {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_REGISTRY_URI": self.registry_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(self.timeout),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
            # else MLflow copies the uv.lock/pyproject.toml of the task's working directory into models
            "MLFLOW_LOG_UV_FILES": os.environ.get("MLFLOW_LOG_UV_FILES", "false"),
        }
        optional = {
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
            "MLFLOW_TRACKING_TOKEN": self.token,
            "MLFLOW_TRACKING_INSECURE_TLS": "true" if self.insecure_tls else None,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key,
            "AWS_DEFAULT_REGION": self.aws_region,
        }
        env.update({k: v or None for k, v in optional.items()})
        return env

    def ui_base_url(self) -> str | None:
        """Base URL of the MLflow UI for links, if there is one."""
        if self.ui_url:
            return self.ui_url.rstrip("/")
        if self.is_remote:
            parts = urlsplit(self.tracking_uri)
            host = parts.hostname or ""
            if parts.port:
                host = f"{host}:{parts.port}"
            return urlunsplit((parts.scheme, host, parts.path, "", "")).rstrip("/")
        return os.environ.get("MLOPS_MLFLOW_UI_URL") or None


# One MLflow session at a time per process: os.environ and MLflow's global tracking URI are shared by
# every thread (the triggerer polls in threads), so overlapping sessions would see each other's secrets.
ENVIRON_LOCK = threading.RLock()


@contextmanager
def scoped_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """
    Set environment variables for the block only (``None`` removes one); restore the previous values
    afterwards. The environment is the process's: hold :data:`ENVIRON_LOCK` while threads share it.
    """
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _check_uri(uri: str, what: str, source: str) -> str:
    scheme = urlsplit(uri).scheme
    if not scheme:
        raise MLflowConfigError(
            f"{what} {redact_uri(uri)!r} from {source} has no scheme; expected one of "
            f"{', '.join(s + '://' for s in SUPPORTED_SCHEMES)}"
        )
    base = scheme.split("+", 1)[0]
    if base not in SUPPORTED_SCHEMES:
        raise MLflowConfigError(
            f"{what} {redact_uri(uri)!r} from {source} has unsupported scheme {scheme!r}; expected one "
            f"of {', '.join(SUPPORTED_SCHEMES)}"
        )
    if base in ("http", "https") and not urlsplit(uri).hostname:
        raise MLflowConfigError(f"{what} {redact_uri(uri)!r} from {source} names no host")
    return uri


def _int_extra(extra: Mapping[str, Any], key: str, default: int, source: str) -> int:
    value = extra.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MLflowConfigError(f"{source}: extra {key!r} must be an integer, got {value!r}") from None
    if number < 0:
        raise MLflowConfigError(f"{source}: extra {key!r} must be >= 0, got {number}")
    return number


def settings_without_connection() -> MLflowSettings:
    """From ``MLFLOW_TRACKING_URI`` (and friends), else the embedded default."""
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if env_uri:
        source = "environment variable MLFLOW_TRACKING_URI"
        registry = os.environ.get("MLFLOW_REGISTRY_URI") or env_uri
        return MLflowSettings(
            tracking_uri=_check_uri(env_uri, "tracking URI", source),
            registry_uri=_check_uri(registry, "registry URI", source),
            source=source,
            username=os.environ.get("MLFLOW_TRACKING_USERNAME"),
            password=os.environ.get("MLFLOW_TRACKING_PASSWORD"),
            token=os.environ.get("MLFLOW_TRACKING_TOKEN"),
            s3_endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL"),
        )
    home = mlops_home() / ".mlflow"
    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MLflowSettings(
        tracking_uri=uri,
        registry_uri=uri,
        source="embedded default",
        artifact_location=(home / "artifacts").as_uri(),
    )


def settings_from_connection(conn: Any, conn_id: str, conn_type: str = "mlflow") -> MLflowSettings:
    """From an Airflow connection of type ``mlflow``; every bad field is named."""
    source = f"Airflow connection {conn_id!r}"
    try:
        extra = conn.extra_dejson if conn.extra else {}
        if conn.extra and not isinstance(json.loads(conn.extra), dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise MLflowConfigError(f"{source}: extra is not a JSON object ({err})") from None
    extra = {k.removeprefix(f"extra__{conn_type}__"): v for k, v in extra.items()}
    unknown = sorted(set(extra) - EXTRA_KEYS)
    if unknown:
        raise MLflowConfigError(
            f"{source}: unknown extra key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(EXTRA_KEYS))}"
        )
    host = (conn.host or "").strip()
    if not host:
        raise MLflowConfigError(f"{source}: the Tracking URI (host) field is empty")
    if "://" not in host:
        scheme = conn.schema or "http"
        host = f"{scheme}://{host}"
    if conn.port and urlsplit(host).port is None and urlsplit(host).scheme in ("http", "https"):
        parts = urlsplit(host)
        host = urlunsplit((parts.scheme, f"{parts.netloc}:{conn.port}", parts.path, "", ""))
    tracking_uri = _check_uri(host, "tracking URI", source)
    registry_uri = _check_uri(extra.get("registry_uri") or tracking_uri, "registry URI", source)
    return MLflowSettings(
        tracking_uri=tracking_uri,
        registry_uri=registry_uri,
        source=source,
        ui_url=extra.get("ui_url"),
        artifact_location=extra.get("artifact_location"),
        timeout=_int_extra(extra, "timeout", DEFAULT_TIMEOUT_S, source) or DEFAULT_TIMEOUT_S,
        max_retries=_int_extra(extra, "max_retries", DEFAULT_MAX_RETRIES, source),
        insecure_tls=str(extra.get("insecure_tls", "")).lower() in ("1", "true", "yes"),
        username=conn.login or None,
        password=conn.password or None,
        token=extra.get("token"),
        s3_endpoint_url=extra.get("s3_endpoint_url"),
        aws_access_key_id=extra.get("aws_access_key_id"),
        aws_secret_access_key=extra.get("aws_secret_access_key"),
        aws_region=extra.get("aws_region"),
    )
