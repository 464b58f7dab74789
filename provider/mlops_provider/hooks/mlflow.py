"""MLflow: the connection, the client, the scoped environment MLflow's SDK reads, and the one error
translation from MLflow's exceptions to Airflow outcomes.

Resolution order for where MLflow lives:

1. the Airflow connection ``mlflow_conn_id`` (default ``mlflow_default``);
2. the ``MLFLOW_TRACKING_URI`` environment variable (only when the default connection is absent);
3. the embedded default: ``sqlite:///<MLOPS_HOME>/.mlflow/mlflow.db``, artifacts under
   ``<MLOPS_HOME>/.mlflow/artifacts`` (``MLOPS_HOME`` defaults to the working directory).

MLflow's SDK reads credentials, HTTP timeouts and the S3 endpoint from environment variables only,
so :meth:`MLflowHook.session` sets them for the duration of a ``with`` block and restores the
previous environment afterwards: nothing is left in ``os.environ`` once the hook returns.

The hooks beside this one add the rest of MLflow: :class:`~mlops_provider.hooks.models.MLflowModelHook`
(runs, artifacts, model log and load) and :class:`~mlops_provider.hooks.registry.MLflowRegistryHook`
(versions, aliases under a lock, decisions).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from mlops_provider.exceptions import MLflowConfigError, MLflowRequestError, MLflowUnavailableError
from mlops_provider.hooks.mlflow_settings import (
    ENVIRON_LOCK,
    SUPPORTED_SCHEMES,
    MLflowSettings,
    redact_uri,
    scoped_environ,
    settings_from_connection,
    settings_without_connection,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "SUPPORTED_SCHEMES",
    "MLflowHook",
    "MLflowHookMixin",
    "MLflowSettings",
    "redact_uri",
    "scoped_environ",
]

# MLflow reads this at import: turn telemetry off before any import of mlflow can happen.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# MLflow error codes that say "your request is wrong", not "try again later".
REFUSED_CODES = frozenset(
    {
        "RESOURCE_DOES_NOT_EXIST",
        "RESOURCE_ALREADY_EXISTS",
        "INVALID_PARAMETER_VALUE",
        "BAD_REQUEST",
        "INVALID_STATE",
        "ENDPOINT_NOT_FOUND",
        "FEATURE_DISABLED",
    }
)
AUTH_CODES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})
MAX_MESSAGE_CHARS = 600


def error_code(err: BaseException) -> str:
    """MLflow's error code of ``err`` ("" for other exceptions)."""
    return str(getattr(err, "error_code", "") or "")


def http_status(err: BaseException) -> int | None:
    """The HTTP status of a ``requests`` error (artifact transfers raise those), else ``None``."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def is_mlflow_error(err: BaseException) -> bool:
    """An ``MlflowException`` (without importing mlflow when it is not loaded)."""
    import sys

    module = sys.modules.get("mlflow.exceptions")
    return module is not None and isinstance(err, module.MlflowException)


def run_artifact_repo(run: Any, tracking_uri: str) -> Any:
    """The run's artifact repository, from its artifact URI (a ``runs:/`` URI looks the run up again for
    every file, and searches its logged models)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(run.info.artifact_uri, tracking_uri=tracking_uri)


def download_listed(
    repo: Any, paths: Sequence[str], dst: str, max_bytes: int | None = None
) -> dict[str, Path | None]:
    """``paths`` of a run's artifacts (``repo``: its repository) downloaded into ``dst``; None where a
    file is missing (or listed larger than ``max_bytes``). One listing per folder, then only listed files
    are downloaded: a missing file is never guessed from an exception, and a failing download raises."""
    listed: dict[str, Any] = {}
    for folder in dict.fromkeys(path.rpartition("/")[0] for path in paths):
        listed.update((info.path, info) for info in repo.list_artifacts(folder) if not info.is_dir)
    found: dict[str, Path | None] = dict.fromkeys(paths)
    for path in paths:
        if path in listed and (max_bytes is None or (listed[path].file_size or 0) <= max_bytes):
            found[path] = Path(repo.download_artifacts(path, dst))
    return found


class MLflowHook(BaseHook):
    """
    Talks to an MLflow tracking server and model registry.

    Usage::

        hook = MLflowHook()  # connection mlflow_default, else MLFLOW_TRACKING_URI, else embedded
        with hook.session() as client, hook.errors("listing models"):
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
            return settings_without_connection()
        return settings_from_connection(conn, self.mlflow_conn_id, self.conn_type)

    # -- clients -------------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[MlflowClient]:
        """
        Yield an ``MlflowClient`` with MLflow's environment (URIs, credentials, timeouts, S3) set for
        the block only. The fluent API (``mlflow.start_run``, ``mlflow.sklearn.log_model``) works
        inside the block too.
        """
        settings = self.settings
        if settings.source == "embedded default" and settings.artifact_location:
            Path(settings.artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        with ENVIRON_LOCK, scoped_environ(settings.environ()):
            import mlflow
            from mlflow.tracking._model_registry import utils as registry_state
            from mlflow.tracking._tracking_service import utils as tracking_state

            # What was set explicitly (None: nothing, MLflow reads the environment): the public getters
            # would answer with this block's environment, and restoring that would pin it for good.
            previous = (tracking_state._tracking_uri, registry_state._registry_uri)  # pinned by a test
            mlflow.set_tracking_uri(settings.tracking_uri)
            mlflow.set_registry_uri(settings.registry_uri)
            try:
                yield mlflow.MlflowClient(settings.tracking_uri, settings.registry_uri)
            finally:
                mlflow.set_tracking_uri(previous[0])  # type: ignore[arg-type]  # None unsets it
                registry_state._registry_uri = previous[1]

    @contextmanager
    def client(self, doing: str = "") -> Iterator[MlflowClient]:
        """:meth:`session` and :meth:`errors` in one: the usual way a hook method talks to MLflow."""
        with self.session() as client, self.errors(doing):
            yield client

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

    # -- errors --------------------------------------------------------------------------------
    @contextmanager
    def errors(self, doing: str = "") -> Iterator[None]:
        """Translate MLflow and network errors raised in the block (see :meth:`translate_error`)."""
        try:
            yield
        except Exception as err:
            if is_mlflow_error(err) or isinstance(err, OSError):
                # from None: the original's text may hold a credentialed URI; the message is scrubbed
                raise self.translate_error(err, doing) from None
            raise

    def translate_error(self, err: BaseException, doing: str = "") -> Exception:
        """
        The one translation of an MLflow/HTTP failure, naming the host with credentials stripped:

        * refused credentials (``PERMISSION_DENIED``, ``UNAUTHENTICATED``): :class:`MLflowConfigError`;
        * a request MLflow refuses as wrong (unknown run or version, bad name, ...):
          :class:`MLflowRequestError`; neither is retried;
        * anything else (unreachable, timeouts, a locked database, 5xx): :class:`MLflowUnavailableError`,
          which Airflow retries.
        """
        message = self._scrub(f"{type(err).__name__}: {err}")
        what = f" while {doing}" if doing else ""
        code, status = error_code(err), http_status(err)
        if code in AUTH_CODES or status in (401, 403):
            user = f" of user {self.settings.username!r}" if self.settings.username else ""
            if code == "UNAUTHENTICATED" or status == 401:
                why = "login rejected (HTTP 401: wrong user or password, or an expired token)"
            else:
                why = "permission denied (HTTP 403: the account lacks a grant on this experiment or model)"
            return MLflowConfigError(
                f"MLflow at {self.describe()} refused the credentials{user}{what}: {why}: {message}"
            )
        if code in REFUSED_CODES:
            return MLflowRequestError(f"MLflow at {self.describe()} refused the request{what}: {message}")
        return MLflowUnavailableError(
            f"MLflow at {self.describe()} is unreachable or failing{what} (timeout {self.settings.timeout}s "
            f"per request, {self.settings.max_retries} retries): {message}"
        )

    def _scrub(self, message: str) -> str:
        for secret in self.settings.secrets:
            message = message.replace(secret, "***")
        for uri in {self.settings.tracking_uri, self.settings.registry_uri}:
            message = message.replace(uri, redact_uri(uri))
        message = message.split(". To increase the timeout", 1)[0]
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + "..."
        return message

    # -- experiments ---------------------------------------------------------------------------
    def ensure_experiment(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it (with this hook's artifact location)."""
        with self.client(f"creating experiment {name!r}") as client:
            experiment = client.get_experiment_by_name(name)
            if experiment is not None:
                return str(experiment.experiment_id)
            location = self.settings.artifact_location
            if location:
                location = f"{location.rstrip('/')}/{name}"
            try:
                return str(client.create_experiment(name, artifact_location=location))
            except Exception as err:
                experiment = client.get_experiment_by_name(name)  # created concurrently
                if experiment is None or not is_mlflow_error(err):
                    raise
                return str(experiment.experiment_id)

    # -- links ---------------------------------------------------------------------------------
    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The MLflow UI page of a run, if there is a UI."""
        base = self.settings.ui_base_url()
        return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else None

    def model_version_url(self, model_name: str, version: str | int) -> str | None:
        """The MLflow UI page of a model version, if there is a UI."""
        base = self.settings.ui_base_url()
        return f"{base}/#/models/{model_name}/versions/{version}" if base else None

    # -- checks --------------------------------------------------------------------------------
    def check(self) -> str:
        """
        Call the tracking server and the registry once each; raise a clear error naming the host.

        :return: a one-line description of what answered
        """
        started = time.monotonic()
        with self.client("checking the connection") as client:
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        return f"MLflow at {self.describe()} answered in {time.monotonic() - started:.2f}s"

    def test_connection(self) -> tuple[bool, str]:
        """Used by the Airflow UI's "Test" button."""
        try:
            return True, self.check()
        except Exception as err:  # the UI shows the message
            return False, str(err)


class MLflowHookMixin:
    """For operators and sensors with an ``mlflow_conn_id``: a ``hook`` built on first use."""

    mlflow_conn_id: str
    hook_class: type[MLflowHook] = MLflowHook

    @cached_property
    def hook(self) -> Any:
        return self.hook_class(mlflow_conn_id=self.mlflow_conn_id)


def _mask(secret: str) -> None:
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # masking is best effort outside a task process
        pass
