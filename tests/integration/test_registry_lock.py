"""The registry lock on a real MLflow store: mutual exclusion among 8 promoter processes while a holder
is SIGKILLed, a dead holder broken within the lease whatever the clocks say, breaking that only one
waiter can do, and never a deletion of a registered model the provider did not create."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import pytest

from mlops_provider.exceptions import MLflowUnavailableError
from mlops_provider.hooks.registry_lock import (
    BEAT_TAG,
    OWNER_TAG,
    LockConflict,
    LockLost,
    LockTimeout,
    RegistryLock,
)

LEASE = 3.0
SKEW = 11 * 60.0  # beyond the earlier release's 600 s staleness

PROMOTER = textwrap.dedent(
    """
    import os, sys, time
    from mlflow import MlflowClient
    from mlops_provider.hooks.registry_lock import RegistryLock

    role, uri, model, log, me = sys.argv[1:6]

    def note(event):
        with open(log, "a") as f:
            f.write(f"{event} {me} {time.monotonic():.6f}\\n")

    client = MlflowClient(uri, uri)
    client.search_registered_models(max_results=1)  # warm up before saying ready
    note("ready")
    lock = RegistryLock(client, model, owner=me)  # lease and wait from MLOPS_REGISTRY_LOCK_*
    with lock:
        note("enter")
        if role == "holder":
            sys.stdin.read()  # holds until SIGKILLed
        time.sleep(0.05)  # a critical section long enough for an overlap to show
        note("exit")
    print("BROKE " + " ".join(lock.broken))
    """
)


def wait_for(what: str, check: Callable[[], object], timeout: float = 240.0) -> object:
    """Poll ``check`` until it returns something truthy (a state), failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def events(log: Path) -> list[tuple[str, str, float]]:
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return [(event, who, float(stamp)) for event, who, stamp in rows]


def client_for(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(uri, uri)


# -- backends: the SQLite store, and a real `mlflow server` (slow) ---------------------------------------
@pytest.fixture(scope="module")
def server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("mlflow-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(tmp / "artifacts")]
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for("mlflow server", lambda: _answers(uri) or server.poll() is not None, timeout=300)
        assert server.poll() is None, (tmp / "server.log").read_text()[-3000:]
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


def _answers(uri: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(params=["sqlite", pytest.param("server", marks=pytest.mark.slow)])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "server":
        return str(request.getfixturevalue("server_uri"))
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


# -- 8 promoters and a holder killed while holding -------------------------------------------------------
def test_eight_promoters_and_a_killed_holder(uri: str, tmp_path: Path):
    model, log = f"m-{uuid.uuid4().hex[:6]}", tmp_path / "events.log"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MLOPS_REGISTRY_LOCK_LEASE": str(LEASE)}
    env["MLOPS_REGISTRY_LOCK_WAIT"] = "300"

    def start(role: str, me: str) -> subprocess.Popen[str]:
        args = [sys.executable, "-c", PROMOTER, role, uri, model, str(log), me]
        return subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    holder = start("holder", "holder")
    wait_for("the holder to hold", lambda: ("enter", "holder") in {e[:2] for e in events(log)})
    promoters = [start("promoter", f"p{i}") for i in range(8)]
    wait_for("8 promoters waiting", lambda: sum(e[0] == "ready" for e in events(log)) == 9)
    # the live holder keeps its lock over more than a whole lease while 8 promoters watch it
    client, lock_name = client_for(uri), f"{model}{RegistryLock.SUFFIX}"
    beat = int(client.get_registered_model(lock_name).tags[BEAT_TAG])
    beats_per_lease = 10
    wait_for(
        "the heartbeat to move for over a lease",
        lambda: int(client.get_registered_model(lock_name).tags[BEAT_TAG]) > beat + beats_per_lease + 1,
    )
    assert [e[1] for e in events(log) if e[0] == "enter"] == ["holder"]
    holder.kill()
    killed = time.monotonic()
    holder.wait(timeout=60)
    broke = []
    for proc in promoters:
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0
        broke += out.split("BROKE", 1)[1].split()

    spans = {who: [stamp, None] for event, who, stamp in events(log) if event == "enter"}
    for event, who, stamp in events(log):
        if event == "exit":
            spans[who][1] = stamp
    spans["holder"][1] = killed
    assert len(spans) == 9
    assert all(end is not None for _, end in spans.values())
    ordered = sorted(spans.values())
    for (_, end), (start_next, _) in zip(ordered, ordered[1:], strict=False):
        assert start_next >= end, f"two holders at once: {ordered}"  # mutual exclusion
    recovered = ordered[1][0] - killed
    assert recovered <= LEASE + 8.0, f"the dead holder's lock was broken only after {recovered:.1f}s"
    # exactly one promoter broke it, into the holder's tombstone; the lock itself is gone
    assert len(broke) == 1, broke
    assert client.get_registered_model(broke[0]).tags[OWNER_TAG] == "holder"
    assert not client.search_registered_models(f"name = '{lock_name}'")


# -- clocks ----------------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def die(lock: RegistryLock) -> None:
    """The holder's process dies: its heartbeat stops, nothing is released."""
    lock._stop.set()
    assert lock._beater is not None
    lock._beater.join()


def stale_first(lock: RegistryLock, stale: object):
    """Fault: the lock's re-check before breaking reads an old snapshot (it was slow), then reads truly."""
    real, calls = lock._get, []

    def get(name: str) -> object:
        calls.append(name)
        return stale if len(calls) == 1 else real(name)

    return mock.patch.object(lock, "_get", get)


def skewed(seconds: float):
    real = time.time
    return mock.patch("time.time", side_effect=lambda: real() + seconds)


def test_a_waiter_clock_ahead_never_breaks_a_live_lock(sqlite_uri: str):
    holder = RegistryLock(client_for(sqlite_uri), "m", owner="holder", lease=2.0)
    holder.acquire()
    try:
        waiter = RegistryLock(client_for(sqlite_uri), "m", owner="waiter", lease=2.0, wait=3 * 2.0)
        with skewed(+SKEW), pytest.raises(LockTimeout, match="held by holder"):
            waiter.acquire()  # three leases of a moving heartbeat: the live holder keeps it
        assert waiter.broken == []
        holder.ensure_held()
    finally:
        holder.release()


@pytest.mark.parametrize("skew", [+SKEW, -SKEW])
def test_a_dead_holder_is_broken_within_the_lease_whatever_the_waiter_clock(sqlite_uri: str, skew: float):
    holder = RegistryLock(client_for(sqlite_uri), "m", owner="holder", lease=2.0)
    holder.acquire()
    die(holder)
    waiter = RegistryLock(client_for(sqlite_uri), "m", owner="waiter", lease=2.0, wait=60.0)
    started = time.monotonic()
    with skewed(skew):
        waiter.acquire()
    try:
        assert 2.0 <= time.monotonic() - started <= 2.0 + 8.0
        assert waiter.broken == [f"m{RegistryLock.SUFFIX}.stale-{holder.token}"]
        with pytest.raises(LockLost):  # the dead holder, had it only stalled, would notice
            holder.ensure_held()
        holder.release()  # and its release leaves the new holder's lock alone
        waiter.ensure_held()
    finally:
        waiter.release()


# -- breaking is a claim only one waiter wins ------------------------------------------------------------
def test_a_late_breaker_of_the_same_stale_lock_cannot_touch_the_next_holder(sqlite_uri: str):
    client = client_for(sqlite_uri)
    dead = RegistryLock(client, "m", owner="dead", lease=1.0)
    dead.acquire()
    die(dead)
    lock, tomb = f"m{RegistryLock.SUFFIX}", f"m{RegistryLock.SUFFIX}.stale-{dead.token}"
    stale = client.get_registered_model(lock)
    first = RegistryLock(client, "m", owner="first", lease=1.0, wait=30.0)
    first.acquire()  # breaks the dead lock after a lease, then takes it
    assert first.broken
    late = RegistryLock(client, "m", owner="late", lease=1.0)
    # the late breaker re-checked before the first broke it (it still sees the stale lock) ...
    with stale_first(late, stale):
        late._break(dead.token, stale.tags[BEAT_TAG], "dead")
    # ... but its rename fails: the tombstone name is taken; the new holder keeps the lock
    assert late.broken == []
    first.ensure_held()
    # with the tombstone gone, a late rename moves the new lock away, reads it back, puts it back
    client.delete_registered_model(first.broken[0])
    with (
        stale_first(late, stale),
        mock.patch.object(client, "rename_registered_model", wraps=client.rename_registered_model) as rename,
    ):
        late._break(dead.token, stale.tags[BEAT_TAG], "dead")
    assert [c.args for c in rename.call_args_list] == [(lock, tomb), (tomb, lock)]
    assert late.broken == []
    # the lock is back with its holder (whose heartbeat may have seen the gap: then it stops moving
    # aliases with LockLost, the safe side); nobody else could take it meanwhile
    assert client.get_registered_model(lock).tags["mlops.lock_token"] == first.token
    first.release()


# -- only the provider's own models are ever deleted -----------------------------------------------------
def test_a_real_model_named_like_the_lock_is_refused_and_kept(sqlite_uri: str):
    client = client_for(sqlite_uri)
    client.create_registered_model(f"m{RegistryLock.SUFFIX}", tags={"team": "risk"})
    lock = RegistryLock(client, "m", owner="promoter", lease=1.0, wait=5.0)
    with pytest.raises(LockConflict, match="not a promotion lock made by the mlops provider") as raised:
        lock.acquire()
    assert not isinstance(raised.value, MLflowUnavailableError)  # a retry cannot fix it
    assert client.get_registered_model(f"m{RegistryLock.SUFFIX}").tags == {"team": "risk"}


def test_a_lock_tagged_model_with_versions_is_refused_and_kept(sqlite_uri: str):
    client = client_for(sqlite_uri)
    name = f"m{RegistryLock.SUFFIX}"
    client.create_registered_model(name, tags={"mlops.lock": "true", "mlops.lock_token": "x"})
    client.create_model_version(name, "file:///nowhere/model")
    lock = RegistryLock(client, "m", owner="promoter", lease=1.0, wait=5.0)
    with pytest.raises(LockConflict, match="has versions"):
        lock.acquire()
    lock._delete(name)  # even asked directly, it deletes nothing that is not its own
    assert client.get_registered_model(name).latest_versions


def test_a_lock_of_the_earlier_release_is_broken_after_a_lease(sqlite_uri: str):
    client = client_for(sqlite_uri)
    description = "Promotion lock held by airflow:old/run/promote; safe to delete when older than 600s."
    tags = {"mlops.lock_token": "old", "mlops.lock_owner": "airflow:old/run/promote"}
    client.create_registered_model(f"m{RegistryLock.SUFFIX}", tags=tags, description=description)
    with RegistryLock(client, "m", owner="new", lease=1.0, wait=30.0) as lock:
        assert lock.broken == [f"m{RegistryLock.SUFFIX}.stale-old"]


def test_a_lock_timeout_is_retryable_and_names_the_holder(sqlite_uri: str):
    with RegistryLock(client_for(sqlite_uri), "m", owner="airflow:d/r/promote", lease=30.0):
        waiter = RegistryLock(client_for(sqlite_uri), "m", owner="w", lease=30.0, wait=0.5)
        with pytest.raises(LockTimeout, match="airflow:d/r/promote") as raised:
            waiter.acquire()
    assert isinstance(raised.value, MLflowUnavailableError)


def test_the_heartbeat_runs_in_a_thread_and_stops_on_release(sqlite_uri: str):
    client = client_for(sqlite_uri)
    lock = RegistryLock(client, "m", owner="h", lease=1.0)
    with lock:
        name = f"m{RegistryLock.SUFFIX}"
        wait_for("two heartbeats", lambda: int(client.get_registered_model(name).tags[BEAT_TAG]) >= 2, 30)
        assert isinstance(lock._beater, threading.Thread)
        assert lock._beater.is_alive()
    assert lock._beater is None
    assert not client.search_registered_models(f"name = '{name}'")
