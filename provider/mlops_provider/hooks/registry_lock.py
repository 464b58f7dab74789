"""A mutual-exclusion lock for alias moves on one registered model, held in MLflow itself.

MLflow has no compare-and-set. Two of its writes are atomic and conditional, and the lock is built on
them alone: ``create_registered_model(name)`` (exactly one of two concurrent creates succeeds) and
``rename_registered_model(old, new)`` (fails unless ``old`` exists and ``new`` does not).

* **Acquire**: create the registered model ``<model>.mlops-lock`` tagged ``mlops.lock=true``, the
  holder's random ``mlops.lock_token`` and ``mlops.lock_beat``. A create whose answer was lost is
  recognised by reading the token back.
* **Liveness without clocks**: while it holds the lock, the holder rewrites ``mlops.lock_beat`` every
  ``lease / 10`` seconds from a background thread. A waiter calls the lock stale only after it has seen
  the same (token, beat) for a whole ``lease`` on ITS OWN monotonic clock; no server timestamp is ever
  compared with a local clock, so clock skew changes nothing. A dead holder is broken within about
  ``lease + poll`` seconds (default 30 s) of the waiter's first look; waiters wait ``wait`` (150 s).
* **Atomic break**: a waiter breaks a stale lock by renaming it to ``<lock>.stale-<stale token>``. The
  rename is the claim: of all waiters that judged the same holder stale, only one rename can succeed
  (the tombstone name is then taken), and a late one cannot touch a newer lock because its target name
  exists. The breaker reads the tombstone back; had it renamed a newer lock (the stale holder released
  in the few milliseconds between the breaker's re-check and its rename) it renames it back. Nothing
  is ever deleted to break a lock, so no delete can hit a lock created meanwhile.
* **Why two holders cannot coexist**: a holder exists only through a successful create of the lock
  name; the name becomes free again only by the holder's own release (read token, delete), or by a
  rename of a lock whose beat had not changed for a whole lease. So two holders overlap only when a live
  holder's heartbeat stalled for a whole lease (a process paused for 30 s); the holder then notices
  (:meth:`RegistryLock.ensure_held`, checked before every alias write) and fails with :class:`LockLost`.
* **Only the provider's own models are deleted**: the lock and its tombstones are deleted only when they
  carry the provider's tags and have no versions; a real registered model named ``<model>.mlops-lock``
  makes every promotion of ``<model>`` fail with :class:`LockConflict` naming it.
* Tombstones are deleted by the next holder's release once they are an hour older (server time
  against server time) than its own lock; until then they keep late breakers' renames failing.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import MLflowConfigError, MLflowRequestError, MLflowUnavailableError
from mlops_provider.hooks.mlflow import AUTH_CODES, REFUSED_CODES, error_code, is_mlflow_error

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

LOCK_TAG = "mlops.lock"
TOKEN_TAG = "mlops.lock_token"
OWNER_TAG = "mlops.lock_owner"
BEAT_TAG = "mlops.lock_beat"
LEGACY_DESCRIPTION = "Promotion lock held by"  # locks of earlier releases carried only the token
STALE_INFIX = ".stale-"
DEFAULT_LEASE_S = 30.0
DEFAULT_WAIT_S = 150.0
DEFAULT_POLL_S = 0.25
TOMBSTONE_KEEP_MS = 3_600_000
LEASE_ENV = "MLOPS_REGISTRY_LOCK_LEASE"
WAIT_ENV = "MLOPS_REGISTRY_LOCK_WAIT"


class LockTimeout(MLflowUnavailableError):
    """Another promotion held the registry lock for this model, alive, beyond the wait: retry later."""


class LockLost(MLflowUnavailableError):
    """This holder's heartbeat stalled for a whole lease and a waiter broke its lock: nothing was moved."""


class LockRefused(MLflowConfigError):
    """The server refuses this account the lock model (another account's lock, or no grant): no retry."""


class LockConflict(MLflowRequestError):
    """A registered model with the lock's name exists that the provider did not create."""


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise LockConflict(f"{name}={raw!r} is not a number of seconds") from None
    return value if value > 0 else default


def _transient(err: BaseException) -> bool:
    """A fault worth trying again while waiting (network, a locked SQLite file, a 5xx)."""
    if isinstance(err, OSError):
        return True
    return is_mlflow_error(err) and error_code(err) not in REFUSED_CODES | AUTH_CODES


def _code(err: BaseException) -> str:
    return error_code(err) if is_mlflow_error(err) else ""


class RegistryLock:
    """The lock on ``<model_name>.mlops-lock`` (see the module docstring). Use as a context manager."""

    SUFFIX = ".mlops-lock"

    def __init__(
        self,
        client: MlflowClient,
        model_name: str,
        *,
        owner: str,
        wait: float | None = None,
        lease: float | None = None,
        poll: float = DEFAULT_POLL_S,
        where: str = "",
    ) -> None:
        self.client = client
        self.where = f"{where}: " if where else ""  # names the server in errors
        self.name = f"{model_name}{self.SUFFIX}"
        self.owner = owner
        self.token = uuid.uuid4().hex
        self.wait = wait if wait is not None else _env_seconds(WAIT_ENV, DEFAULT_WAIT_S)
        self.lease = lease if lease is not None else _env_seconds(LEASE_ENV, DEFAULT_LEASE_S)
        self.poll = min(poll, self.lease / 4)
        self.beat_every = self.lease / 10
        self.held = False
        self.lost = False
        self.broken: list[str] = []  # tombstones this lock made (names), for the log and tests
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    # -- acquire -------------------------------------------------------------------------------
    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        seen: list[Any] = [None, None, 0.0]  # the (token, beat) last seen, and since when (my clock)
        while True:
            try:
                if self._step(seen, deadline):
                    return self._start_beating()
            except Exception as err:
                if _code(err) == "PERMISSION_DENIED":
                    raise LockRefused(
                        f"{self.where}registered model {self.name!r} (the promotion lock of "
                        f"{self.name.removesuffix(self.SUFFIX)!r}): the server refused this account "
                        f"({_code(err)}); a lock left by another account can be neither read nor broken. "
                        f"Grant this account MANAGE on {self.name!r}, or have its owner or an admin delete it"
                    ) from None
                if not _transient(err) or time.monotonic() > deadline:
                    raise
                log.warning("registry lock %s: %s; trying again", self.name, err)
            time.sleep(self.poll * random.uniform(0.5, 1.5))

    def _step(self, seen: list[Any], deadline: float) -> bool:
        """One look at the lock: True once we hold it; breaks it after a lease without a heartbeat."""
        if self._try_create():
            return True
        holder = self._read()
        if holder is None:
            return self._try_create()
        token, beat = holder.tags[TOKEN_TAG], holder.tags.get(BEAT_TAG)
        if token == self.token:  # our create succeeded, its answer was lost
            return True
        now = time.monotonic()
        if seen[:2] != [token, beat]:
            seen[:] = [token, beat, now]
        elif now - seen[2] >= self.lease:
            self._break(token, beat, holder.tags.get(OWNER_TAG))
            seen[:] = [None, None, 0.0]
            return self._try_create()
        if now > deadline:
            raise LockTimeout(
                f"registered model {self.name!r} (promotion lock) is held by {holder.tags.get(OWNER_TAG)} "
                f"beyond the {self.wait:.0f}s wait (its heartbeat moved within every "
                f"{self.lease:.0f}s lease); the task may retry"
            )
        return False

    def _try_create(self) -> bool:
        tags = {LOCK_TAG: "true", TOKEN_TAG: self.token, OWNER_TAG: self.owner, BEAT_TAG: "0"}
        description = f"Promotion lock held by {self.owner} (mlops provider); removed on release."
        try:
            self.client.create_registered_model(self.name, tags=tags, description=description)
        except Exception as err:
            # "not found" from a create: the server made the model, then a breaker renamed it before
            # the server read it back (it renames it back when it sees the new token): look again
            if _code(err) in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                return False
            raise
        return True

    @staticmethod
    def _is_ours(model: Any) -> bool:
        """A lock or tombstone the provider made: its tags, and no versions."""
        tags = model.tags or {}
        made = tags.get(LOCK_TAG) == "true" or (model.description or "").startswith(LEGACY_DESCRIPTION)
        return bool(TOKEN_TAG in tags and made and not model.latest_versions)

    def _check_ours(self, model: Any) -> Any:
        """The lock's token; :class:`LockConflict` when the model is not a lock the provider made."""
        if not self._is_ours(model):
            raise LockConflict(
                f"registered model {model.name!r} exists but is not a promotion lock made by the mlops "
                f"provider (it lacks the {LOCK_TAG!r} tag or has versions): rename it, the provider "
                f"uses this name to lock alias moves of {model.name.removesuffix(self.SUFFIX)!r}"
            )
        return model.tags[TOKEN_TAG]

    def _read(self) -> Any:
        """
        The lock model, checked to be the provider's; ``None`` when absent. The SQL store reads a model
        and its tags in separate queries, so a read racing a rename or delete can come back without
        tags: a model that does not look like a lock is read again before it is called a conflict.
        """
        for attempt in range(6):
            model = self._get(self.name)
            if model is None or self._is_ours(model):
                return model
            time.sleep(self.poll * attempt)
        self._check_ours(model)
        return model

    def _get(self, name: str) -> Any:
        try:
            return self.client.get_registered_model(name)
        except Exception as err:
            if _code(err) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    # -- break ---------------------------------------------------------------------------------
    def _break(self, token: str, beat: Any, owner: Any) -> None:
        """Rename the stale lock of ``token`` to its tombstone; only one waiter can (module docstring)."""
        holder = self._read()  # re-check right before the rename: narrows the window
        if holder is None or (holder.tags[TOKEN_TAG], holder.tags.get(BEAT_TAG)) != (token, beat):
            return
        tombstone = f"{self.name}{STALE_INFIX}{token}"
        try:
            self.client.rename_registered_model(self.name, tombstone)
        except Exception as err:
            if not (is_mlflow_error(err) or _transient(err)) or _code(err) in AUTH_CODES:
                raise  # a refused rename is no sign of another breaker: acquire() names the lock
            log.info("registry lock %s: another waiter broke the stale lock first (%s)", self.name, err)
            return
        renamed = self._get(tombstone)
        if renamed is not None and renamed.tags.get(TOKEN_TAG) != token:
            log.warning("registry lock %s: renamed a newer lock by mistake; putting it back", self.name)
            try:
                self.client.rename_registered_model(tombstone, self.name)
            except Exception as err:  # its holder notices at its next heartbeat (LockLost)
                log.error("registry lock %s: could not put the lock back: %s", self.name, err)
            return
        self.broken.append(tombstone)
        log.warning(
            "registry lock %s: broke the lock of %s (heartbeat %s unchanged for %.0fs on this worker)",
            self.name,
            owner,
            beat,
            self.lease,
        )

    # -- heartbeat -----------------------------------------------------------------------------
    def _start_beating(self) -> None:
        self.held, self.lost = True, False
        self._stop.clear()
        self._beater = threading.Thread(target=self._beat, name=f"heartbeat {self.name}", daemon=True)
        self._beater.start()

    def _beat(self) -> None:
        sequence = 0
        while not self._stop.wait(self.beat_every):
            try:
                holder = self._get(self.name)
                if holder is None or holder.tags.get(TOKEN_TAG) != self.token:
                    self.lost = True
                    log.error("registry lock %s: lost (broken by a waiter after a stall)", self.name)
                    return
                sequence += 1
                self.client.set_registered_model_tag(self.name, BEAT_TAG, str(sequence))
            except Exception as err:  # a missed beat is fine; a whole lease of them is not
                log.warning("registry lock %s: heartbeat failed: %s", self.name, err)

    def ensure_held(self) -> None:
        """:class:`LockLost` unless this lock still holds the name (checked before each alias write)."""
        holder = self._get(self.name) if not self.lost else None
        if holder is None or holder.tags.get(TOKEN_TAG) != self.token:
            self.lost = True
            raise LockLost(
                f"registry lock {self.name!r} was broken while held (this worker stalled for more than "
                f"the {self.lease:.0f}s lease): nothing more is moved; the task may retry"
            )

    # -- release -------------------------------------------------------------------------------
    def release(self) -> None:
        self._stop.set()
        if self._beater is not None:
            self._beater.join()
            self._beater = None
        if not self.held:
            return
        self.held = False
        holder = self._get(self.name)
        if holder is None or holder.tags.get(TOKEN_TAG) != self.token:
            return  # broken while we held it: the name now belongs to someone else
        self._delete(self.name)  # first: the lock is free even if the sweep fails
        self._sweep(holder.creation_timestamp or 0)

    def _sweep(self, now_ms: int) -> None:
        """Delete tombstones an hour older (server time) than our own lock."""
        try:
            found = self.client.search_registered_models(f"name LIKE '{self.name}{STALE_INFIX}%'")
        except Exception as err:
            log.warning("registry lock %s: cannot list tombstones: %s", self.name, err)
            return
        for model in found:
            if model.name.startswith(f"{self.name}{STALE_INFIX}") and (
                (model.last_updated_timestamp or now_ms) < now_ms - TOMBSTONE_KEEP_MS
            ):
                try:
                    self._delete(model.name)
                except Exception as err:  # best effort: an old tombstone never fails a finished move
                    log.warning(
                        "registry lock %s: cannot delete tombstone %s: %s", self.name, model.name, err
                    )

    def _delete(self, name: str) -> None:
        """Delete ``name`` only if it still is a lock or tombstone the provider made, without versions."""
        model = self._get(name)
        if model is None or not self._is_ours(model):
            return
        try:
            self.client.delete_registered_model(name)
        except Exception as err:
            if _code(err) != "RESOURCE_DOES_NOT_EXIST":
                raise

    def __enter__(self) -> RegistryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
