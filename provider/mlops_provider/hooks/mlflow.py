"""MLflow: the connection, the client and the scoped environment MLflow's SDK reads.

Resolution order for where MLflow lives:

1. the Airflow connection ``mlflow_conn_id`` (default ``mlflow_default``);
2. the ``MLFLOW_TRACKING_URI`` environment variable (only when the default connection is absent);
3. the embedded default: ``sqlite:///<MLOPS_HOME>/.mlflow/mlflow.db``, artifacts under
   ``<MLOPS_HOME>/.mlflow/artifacts`` (``MLOPS_HOME`` defaults to the working directory).

MLflow's SDK reads credentials, HTTP timeouts and the S3 endpoint from environment variables only,
so :meth:`MLflowHook.session` sets them for the duration of a ``with`` block and restores the
previous environment afterwards: nothing is left in ``os.environ`` once the hook returns.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from mlops_provider.exceptions import MLflowConfigError, MLflowUnavailableError

if TYPE_CHECKING:
    from mlflow import MlflowClient

# MLflow reads this at import: turn telemetry off before any import of mlflow can happen.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

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


def embedded_home() -> Path:
    """Root of the embedded default (``MLOPS_HOME`` or the working directory)."""
    return Path(os.environ.get("MLOPS_HOME") or os.getcwd()).resolve()


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

    def environ(self) -> dict[str, str]:
        """The environment variables MLflow's SDK (and boto3 for S3 artifacts) reads."""
        env = {
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
        env.update({k: v for k, v in optional.items() if v})
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


@contextmanager
def scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block only; restore the previous values afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
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


class MLflowHook(BaseHook):
    """
    Talks to an MLflow tracking server and model registry.

    Usage::

        hook = MLflowHook()  # connection mlflow_default, else MLFLOW_TRACKING_URI, else embedded
        with hook.session() as client:  # an mlflow.MlflowClient, credentials scoped to the block
            client.search_registered_models(max_results=5)

    :param mlflow_conn_id: Airflow connection of type ``mlflow``. The host field holds the tracking
        URI (``http://mlflow:5000``, ``sqlite:///...``); login/password are HTTP basic auth; extras:
        ``registry_uri``, ``token``, ``ui_url``, ``s3_endpoint_url``, ``aws_access_key_id``,
        ``aws_secret_access_key``, ``aws_region``, ``timeout`` (s per HTTP request, default 15),
        ``max_retries`` (default 2), ``insecure_tls``, ``artifact_location``.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id
        self._settings: MLflowSettings | None = None

    # -- configuration -------------------------------------------------------------------------
    @property
    def settings(self) -> MLflowSettings:
        if self._settings is None:
            self._settings = self._resolve_settings()
            for secret in self._settings.secrets:
                _mask(secret)
        return self._settings

    def _resolve_settings(self) -> MLflowSettings:
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            if self.mlflow_conn_id != self.default_conn_name:
                raise MLflowConfigError(
                    f"Airflow connection {self.mlflow_conn_id!r} (type mlflow) does not exist; create it "
                    f"or use {self.default_conn_name!r}"
                ) from None
            return self._settings_without_connection()
        return self._settings_from_connection(conn)

    @staticmethod
    def _settings_without_connection() -> MLflowSettings:
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
        home = embedded_home() / ".mlflow"
        uri = f"sqlite:///{home / 'mlflow.db'}"
        return MLflowSettings(
            tracking_uri=uri,
            registry_uri=uri,
            source="embedded default",
            artifact_location=(home / "artifacts").as_uri(),
        )

    def _settings_from_connection(self, conn: Any) -> MLflowSettings:
        source = f"Airflow connection {self.mlflow_conn_id!r}"
        try:
            extra = conn.extra_dejson if conn.extra else {}
            if conn.extra and not isinstance(json.loads(conn.extra), dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            raise MLflowConfigError(f"{source}: extra is not a JSON object ({err})") from None
        extra = {k.removeprefix(f"extra__{self.conn_type}__"): v for k, v in extra.items()}
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

    # -- clients -------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[MlflowClient]:
        """
        Yield an ``MlflowClient`` with MLflow's environment (URIs, credentials, timeouts, S3) set for
        the block only. The fluent API (``mlflow.start_run``, ``mlflow.sklearn.log_model``) works
        inside the block too.
        """
        settings = self.settings
        if settings.source == "embedded default":
            Path(settings.artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        with scoped_environ(settings.environ()):
            import mlflow

            previous = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
            mlflow.set_tracking_uri(settings.tracking_uri)
            mlflow.set_registry_uri(settings.registry_uri)
            try:
                yield mlflow.MlflowClient(settings.tracking_uri, settings.registry_uri)
            finally:
                mlflow.set_tracking_uri(previous[0])
                mlflow.set_registry_uri(previous[1])

    def get_conn(self) -> MlflowClient:
        """
        A client bound to this hook's URIs. Credentials and timeouts are only applied inside
        :meth:`session`; prefer it for anything that talks to a server.
        """
        import mlflow

        return mlflow.MlflowClient(self.settings.tracking_uri, self.settings.registry_uri)

    def describe(self) -> str:
        """Where this hook points, credentials stripped."""
        s = self.settings
        return f"{redact_uri(s.tracking_uri)} ({s.source})"

    def ensure_experiment(self, client: MlflowClient, name: str) -> str:
        """Return the id of experiment ``name``, creating it (with this hook's artifact location)."""
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = self.settings.artifact_location
        if location:
            location = f"{location.rstrip('/')}/{name}"
        from mlflow.exceptions import MlflowException

        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # created concurrently
            if experiment is None:
                raise
            return experiment.experiment_id

    def check(self) -> str:
        """
        Call the tracking server and the registry once each; raise a clear error naming the host.

        :return: a one-line description of what answered
        """
        started = time.monotonic()
        with self.session() as client:
            from mlflow.exceptions import MlflowException

            try:
                client.search_experiments(max_results=1)
                client.search_registered_models(max_results=1)
            except (MlflowException, OSError) as err:
                raise self.unavailable(err) from err
        return f"MLflow at {self.describe()} answered in {time.monotonic() - started:.2f}s"

    def unavailable(self, err: BaseException) -> Exception:
        """Turn an MLflow/HTTP failure into an error naming the host, with credentials stripped."""
        message = str(err)
        for secret in self.settings.secrets:
            message = message.replace(secret, "***")
        for uri in {self.settings.tracking_uri, self.settings.registry_uri}:
            message = message.replace(uri, redact_uri(uri))
        message = message.split(". To increase the timeout", 1)[0]
        if len(message) > 600:
            message = message[:600] + "..."
        status = getattr(err, "error_code", "") or ""
        if status in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            return MLflowConfigError(f"MLflow at {self.describe()} refused the credentials: {message}")
        return MLflowUnavailableError(
            f"MLflow at {self.describe()} is unreachable or failing (timeout {self.settings.timeout}s per "
            f"request, {self.settings.max_retries} retries): {message}"
        )

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Airflow UI's "Test" button."""
        try:
            return True, self.check()
        except Exception as err:  # the UI shows the message
            return False, str(err)


class MLflowHookMixin:
    """For operators, sensors and mixins with an ``mlflow_conn_id``: a ``hook`` built on first use."""

    mlflow_conn_id: str

    @cached_property
    def hook(self) -> MLflowHook:
        return MLflowHook(mlflow_conn_id=self.mlflow_conn_id)


def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # masking is best effort outside a task process
        pass
