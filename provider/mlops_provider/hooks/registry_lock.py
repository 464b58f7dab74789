"""A mutual-exclusion lock for alias moves on one registered model, held in MLflow itself."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from mlops_provider.hooks.mlflow import error_code, is_mlflow_error

if TYPE_CHECKING:
    from mlflow import MlflowClient


class LockTimeout(RuntimeError):
    """Another promotion holds the registry lock for this model beyond the wait time."""


class RegistryLock:
    """
    A mutual-exclusion lock for alias moves on one registered model, held in MLflow itself.

    MLflow has no compare-and-set, but creating a registered model is atomic: exactly one of two
    concurrent ``create_registered_model(name)`` calls succeeds. The lock is a registered model named
    ``<model>.mlops-lock`` carrying the holder's token; it is deleted on release. A lock older than
    ``stale_after`` seconds (a crashed holder) is broken. A retried create whose first attempt did
    succeed is recognised by the token.
    """

    SUFFIX = ".mlops-lock"

    def __init__(
        self,
        client: MlflowClient,
        model_name: str,
        *,
        owner: str,
        wait: float = 120.0,
        stale_after: float = 600.0,
        poll: float = 0.2,
    ) -> None:
        self.client = client
        self.name = f"{model_name}{self.SUFFIX}"
        self.owner = owner
        self.token = uuid.uuid4().hex
        self.wait = wait
        self.stale_after = stale_after
        self.poll = poll
        self.held = False

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                self.client.create_registered_model(
                    self.name,
                    tags={"mlops.lock_token": self.token, "mlops.lock_owner": self.owner},
                    description=f"Promotion lock held by {self.owner}; safe to delete when older than "
                    f"{self.stale_after:.0f}s.",
                )
                self.held = True
                return
            except Exception as err:
                if not is_mlflow_error(err) or error_code(err) not in (
                    "RESOURCE_ALREADY_EXISTS",
                    "ALREADY_EXISTS",
                ):
                    raise
            holder = self._holder()
            if holder is not None and holder.tags.get("mlops.lock_token") == self.token:
                self.held = True  # our create succeeded, its answer was lost and the client retried
                return
            if holder is not None:
                age = time.time() - (holder.creation_timestamp or 0) / 1000.0
                if age > self.stale_after:
                    self._delete(expect_token=holder.tags.get("mlops.lock_token"))
                    continue
            if time.monotonic() > deadline:
                who = holder.tags.get("mlops.lock_owner") if holder is not None else "unknown"
                raise LockTimeout(
                    f"registered model {self.name!r} (promotion lock) is held by {who} for more than "
                    f"{self.wait:.0f}s"
                )
            time.sleep(self.poll)

    def _holder(self) -> Any:
        try:
            return self.client.get_registered_model(self.name)
        except Exception as err:
            if is_mlflow_error(err) and error_code(err) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _delete(self, expect_token: str | None) -> None:
        holder = self._holder()
        if holder is None or holder.tags.get("mlops.lock_token") != expect_token:
            return
        try:
            self.client.delete_registered_model(self.name)
        except Exception as err:
            if not is_mlflow_error(err) or error_code(err) != "RESOURCE_DOES_NOT_EXIST":
                raise

    def release(self) -> None:
        if self.held:
            self._delete(expect_token=self.token)
            self.held = False

    def __enter__(self) -> RegistryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
