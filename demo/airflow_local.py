"""Run real Airflow components (scheduler, dag-processor, triggerer, api-server) as child processes.

Each runs in its own process group so that stopping it stops its children too; logs go to
``$AIRFLOW_HOME/logs/<component>.log``. Used by the demo, the benchmarks and the end-to-end tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Warm workers (mlops_provider.preload): LocalExecutor workers fork from a forkserver that imported
# the heavy libraries once, so task processes inherit them instead of importing them again.
WARM_WORKERS = {
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": "mlops_provider.preload",
}


def embedded_env(root: Path = ROOT) -> dict[str, str]:
    """The embedded default's environment (what the Makefile exports), for `python -m demo` runs."""
    defaults = {
        "MLOPS_HOME": str(root),
        "AIRFLOW_HOME": str(root / ".airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        **WARM_WORKERS,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLOPS_MLFLOW_UI_URL": "http://127.0.0.1:5000",
    }
    return {k: os.environ.get(k, v) for k, v in defaults.items()}


def airflow_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=check,
    )


# Every process a component starts inherits this variable (value: the component's tag), so a
# process that left the component's session (``setsid``) is still found and stopped.
TAG_VARIABLE = "MLOPS_PROCESS_TAG"
# Every process started by one `make up` / `make demo` carries its owner id (see :func:`claim_home`).
OWNER_VARIABLE = "MLOPS_OWNER"


@dataclass
class Component:
    """
    A child process started in its own session (``start_new_session``): its session id is its pid.
    Airflow moves task processes and workers into process groups of their own (``setpgid``), so a
    component is stopped by session, never by one process group.
    """

    name: str
    process: subprocess.Popen
    log_path: Path
    tag: str = ""
    # what asks the component itself to stop; it gets half of stop()'s timeout to stop its children
    stop_signal: int = signal.SIGTERM

    @property
    def sid(self) -> int:
        return self.process.pid


def new_tag(name: str) -> str:
    import secrets

    return f"{name}-{os.getpid()}-{secrets.token_hex(4)}"


def start(name: str, *args: str, env: dict[str, str] | None = None) -> Component:
    home = Path((env or os.environ).get("AIRFLOW_HOME") or os.environ["AIRFLOW_HOME"])
    tag = (env or {}).get(TAG_VARIABLE) or new_tag(name)
    return spawn(
        name,
        [sys.executable, "-m", "airflow", *(args or (name,))],
        env={**os.environ, **(env or {}), TAG_VARIABLE: tag},
        log_dir=home / "logs",
        cwd=Path.cwd(),
    )


# -- processes: /proc scans, stopping whole sessions ------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    pgid: int
    sid: int
    state: str
    cmdline: str
    start: int = 0  # clock ticks after boot
    ppid: int = 0


def _proc(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses
    fields = stat[stat.rindex(")") + 2 :].split()
    return Proc(
        pid, int(fields[2]), int(fields[3]), fields[0], cmdline.strip(), int(fields[19]), int(fields[1])
    )


def processes() -> list[Proc]:
    """Every live (non-zombie) process on the machine that this user can see."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            proc = _proc(int(entry))
            if proc is not None and proc.state not in ("Z", "X"):
                found.append(proc)
    return found


def _environ_has(pid: int, entries: set[bytes]) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return not entries.isdisjoint(environ.split(b"\0"))


def members(sids: Iterable[int] = (), tags: Iterable[str] = (), owners: Iterable[str] = ()) -> list[Proc]:
    """Live processes in one of the sessions ``sids``, or carrying one of the ``tags`` or ``owners``."""
    sids = set(sids)
    entries = {f"{TAG_VARIABLE}={t}".encode() for t in tags if t}
    entries |= {f"{OWNER_VARIABLE}={o}".encode() for o in owners if o}
    return [p for p in processes() if p.sid in sids or (entries and _environ_has(p.pid, entries))]


def stop_processes(find: Callable[[], list[Proc]], timeout: float = 10) -> list[Proc]:
    """SIGTERM what ``find()`` returns, SIGKILL what is left after ``timeout``; the survivors after 5 s more."""
    left = find()
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        if not left:
            break
        _signal(left, sig)
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = find()
    return left


def _signal(procs: Iterable[Proc], sig: int) -> None:
    for proc in procs:
        try:
            os.kill(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(components: Iterable[Component]) -> None:
    for c in components:
        c.process.poll()


def _wait_gone(
    components: list[Component], until: float, escalate: Callable[[], bool], leaders_only: bool = False
) -> list[Proc]:
    """
    Wait until no process of the components is left, ``until`` passes or ``escalate()``; with
    ``leaders_only``, also stop waiting once every component process has exited (what is left then
    was orphaned: no shutdown of theirs will stop it).
    """
    sids, tags = {c.sid for c in components}, {c.tag for c in components}
    while True:
        _reap(components)
        left = members(sids, tags)
        if not left or time.monotonic() >= until or escalate():
            return left
        if leaders_only and all(c.process.returncode is not None for c in components):
            return left
        time.sleep(0.1)


def stop(
    components: Iterable[Component], timeout: float = 20, escalate: Callable[[], bool] | None = None
) -> list[Proc]:
    """
    Stop components and everything they started, whatever state they are in:

    1. each component gets its ``stop_signal`` (its own shutdown stops its children);
    2. after ``timeout / 2`` (or once the components themselves have exited), SIGTERM to every
       process left in their sessions (or carrying their tag);
    3. after ``timeout``, SIGKILL to all of them; then wait (5 s at most) until none is left.

    ``escalate()`` returning true skips straight to SIGKILL; by default, a second signal caught by
    :func:`stop_on_signals` (Ctrl-C twice) does. Returns the processes still alive at the end (none,
    unless one is stuck in the kernel).
    """
    components = list(components)
    escalate = escalate or interrupted_twice
    _stopping()  # a signal caught from now on escalates instead of aborting this stop
    start_time = time.monotonic()
    for c in components:
        if c.process.poll() is None:
            try:
                os.kill(c.process.pid, c.stop_signal)
            except ProcessLookupError:
                pass
    left = _wait_gone(components, start_time + timeout / 2, escalate, leaders_only=True)
    if left and not escalate():
        _signal(left, signal.SIGTERM)
        left = _wait_gone(components, start_time + timeout, escalate)
    if left:
        left = kill_sessions(components)
    for c in components:
        try:
            c.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    return left


def kill_sessions(components: Iterable[Component]) -> list[Proc]:
    """SIGKILL every process of the components' sessions (and tags); wait 5 s at most until none is left."""
    components = list(components)
    sids, tags = {c.sid for c in components}, {c.tag for c in components}
    left = members(sids, tags)
    for _ in range(3):  # a process may fork while we kill: repeat until the sessions are empty
        for sid in sids:
            try:
                os.killpg(sid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _signal(left, signal.SIGKILL)
        left = _wait_gone(components, time.monotonic() + 5, lambda: False)
        if not left:
            break
    return left


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT, SIGTERM or SIGHUP (see :func:`stop_on_signals`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# Signals caught by stop_on_signals: the first stops the children; another one, a second or more
# later (a second Ctrl-C, not the copy `make` forwards on SIGTERM), makes stop() escalate to SIGKILL.
_interrupts: dict[str, Any] = {"first": None, "escalate": False, "deferred": 0, "pending": 0}
SECOND_SIGNAL_AFTER = 1.0


def interrupted_twice() -> bool:
    return bool(_interrupts["escalate"])


def _stopping() -> None:
    """From now on a caught signal escalates; it must not raise into the stop under way."""
    if _interrupts["first"] is None:
        _interrupts["first"] = time.monotonic()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """
    Turn the first SIGINT/SIGTERM/SIGHUP into :class:`Interrupted` in the main thread (so ``finally``
    blocks stop the children); a later one (a second or more after) only makes :func:`stop` escalate
    to SIGKILL at once. Restores the previous handlers on exit.
    """

    def handler(signum: int, frame: Any) -> None:
        now = time.monotonic()
        if _interrupts["first"] is not None:
            if now - _interrupts["first"] >= SECOND_SIGNAL_AFTER:
                _interrupts["escalate"] = True
            return
        _interrupts["first"] = now
        if _interrupts["deferred"]:
            _interrupts["pending"] = signum
        else:
            raise Interrupted(signum)

    _interrupts.update(first=None, escalate=False, pending=0)
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, handler) for s in watched}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """
    Hold back :class:`Interrupted` for the block (starting a child and recording it, so that no
    child escapes the ``finally`` that stops it); a signal caught meanwhile is raised at the end.
    """
    _interrupts["deferred"] += 1
    try:
        yield
    finally:
        _interrupts["deferred"] -= 1
    if not _interrupts["deferred"] and _interrupts["pending"]:
        signum, _interrupts["pending"] = _interrupts["pending"], 0
        raise Interrupted(signum)


class HomeBusy(RuntimeError):
    """Another `make up` / `make demo` / scheduler uses this AIRFLOW_HOME."""


def _is_scheduler(proc: Proc) -> bool:
    words = proc.cmdline.split()
    return "scheduler" in words and any(w.endswith("airflow") or w == "airflow" for w in words)


_claim: dict[str, Any] = {}


def _read_claim(record: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return {}


def _write_claim() -> None:
    import json

    if _claim:
        data = {k: v for k, v in _claim.items() if k != "record"}
        tmp = _claim["record"].with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(_claim["record"])


def _record_session(sid: int) -> None:
    """Remember a child's session in the claim, so that a next run finds it even if this one is killed."""
    if _claim:
        _claim["sids"].append(sid)
        _write_claim()


def _left_by(previous: dict[str, Any]) -> list[Proc]:
    """Processes of an earlier owner: carrying its id, or in one of its sessions and started after it."""
    owner, since, sids = (
        str(previous.get("owner", "")),
        int(previous.get("start", 0)),
        set(previous.get("sids", [])),
    )
    if not owner:
        return []
    return [
        p
        for p in processes()
        if (p.sid in sids and p.start >= since) or _environ_has(p.pid, {f"{OWNER_VARIABLE}={owner}".encode()})
    ]


def _uses_home(proc: Proc, home: Path) -> bool:
    if _environ_has(proc.pid, {f"AIRFLOW_HOME={home}".encode()}):
        return True
    try:  # setproctitle overwrites a process's environ: an open metadata DB file tells too
        fds = os.listdir(f"/proc/{proc.pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith(str(home / "airflow.db")):
                return True
        except OSError:
            pass
    return False


def claim_home(home: Path, what: str) -> str:
    """
    Make this process the only user of ``home`` (an SQLite metadata DB takes one scheduler) and return
    its owner id, exported as ``MLOPS_OWNER`` to every child started afterwards; the sessions of
    children started with :func:`spawn` / :func:`start` are recorded in ``home/owner.json``.

    * the owner recorded there still runs: :class:`HomeBusy`;
    * it died and left processes behind (a ``kill -9``): they are stopped, with a message;
    * an Airflow scheduler started by anything else uses ``home``: :class:`HomeBusy`.
    """
    import secrets

    home.mkdir(parents=True, exist_ok=True)
    record = home / "owner.json"
    previous = _read_claim(record)
    if previous.get("owner"):
        owner_entry = {f"{OWNER_VARIABLE}={previous['owner']}".encode()}
        if _environ_has(int(previous.get("pid", 0)), owner_entry):
            raise HomeBusy(
                f"{previous.get('what', 'another run')} (pid {previous['pid']}) already uses "
                f"AIRFLOW_HOME={home}: stop it first (Ctrl-C in its terminal, or kill {previous['pid']})"
            )
        left = _left_by(previous)
        if left:
            print(
                f"stopping {len(left)} processes left by an earlier {previous.get('what', 'run')} "
                f"(pids {', '.join(str(p.pid) for p in left[:10])})",
                file=sys.stderr,
                flush=True,
            )
            left = stop_processes(lambda: _left_by(previous))
            if left:
                raise HomeBusy(f"could not stop pids {[p.pid for p in left]} left by an earlier run")
    foreign = [p for p in processes() if _is_scheduler(p) and _uses_home(p, home)]
    if foreign:
        listed = "; ".join(f"pid {p.pid}: {p.cmdline[:80]}" for p in foreign[:5])
        raise HomeBusy(
            f"an Airflow scheduler already uses AIRFLOW_HOME={home} ({listed}); two schedulers on one "
            "SQLite database conflict: stop it first"
        )
    owner = f"{what.replace(' ', '-')}-{os.getpid()}-{secrets.token_hex(4)}"
    me = _proc(os.getpid())
    _claim.clear()
    _claim.update(
        record=record, owner=owner, pid=os.getpid(), what=what, start=me.start if me else 0, sids=[]
    )
    _write_claim()
    os.environ[OWNER_VARIABLE] = owner
    return owner


def release_home(home: Path, owner: str) -> list[Proc]:
    """Stop any process of ``owner`` still alive (10 s, then SIGKILL); forget the claim if none is left."""
    claim = dict(_claim) if _claim.get("owner") == owner else {"owner": owner}
    left = stop_processes(lambda: _left_by(claim))
    record = home / "owner.json"
    if not left and _read_claim(record).get("owner") == owner:
        record.unlink(missing_ok=True)
        _claim.clear()
    return left


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether a server could bind ``port`` on 127.0.0.1 now (nothing listens there)."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_http(url: str, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s") from None
            time.sleep(0.5)


@contextmanager
def running(*names: str, env: dict[str, str] | None = None) -> Iterator[list[Component]]:
    """
    Start the named components; ``api-server`` (which task processes talk to through the execution
    API) is always started first, on a free 127.0.0.1 port, and the others are told where it is.
    """
    port = free_port()
    env = {
        **(env or {}),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW__")})
    components: list[Component] = []
    try:
        with uninterrupted():  # a Ctrl-C is raised once the child is recorded (and so stopped)
            components.append(
                start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), env=env)
            )
        wait_http(f"http://127.0.0.1:{port}/api/v2/monitor/health")
        for name in names:
            if name != "api-server":
                with uninterrupted():
                    components.append(start(name, env=env))
        yield components
    finally:
        stop(components)


def wait_for_dags(dag_ids: Iterable[str], timeout: float = 180) -> None:
    """Wait until the dag-processor has serialized every DAG id."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    wanted = set(dag_ids)
    deadline = time.monotonic() + timeout
    while True:
        with create_session() as session:
            found = {d for (d,) in session.query(DagModel.dag_id).filter(DagModel.dag_id.in_(wanted))}
        if found == wanted:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"DAGs not parsed after {timeout}s: {sorted(wanted - found)}")
        time.sleep(1)


def set_paused(dag_id: str, paused: bool) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({DagModel.is_paused: paused})


def trigger(dag_id: str, *, logical_date: datetime | None = None, conf: dict[str, Any] | None = None) -> str:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    run = trigger_dag(
        dag_id,
        triggered_by=DagRunTriggeredByType.CLI,
        logical_date=logical_date,
        run_after=logical_date,
        conf=conf or {},
        triggering_user_name="demo",
    )
    assert run is not None
    return run.run_id


def runs(dag_id: str) -> list[dict[str, Any]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id).all()
        return [{"run_id": r.run_id, "state": str(r.state), "run_type": str(r.run_type)} for r in rows]


def wait_run(dag_id: str, run_id: str, timeout: float = 600) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    deadline = time.monotonic() + timeout
    while True:
        with create_session() as session:
            run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one()
            state = str(run.state)
        if state in ("success", "failed"):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout}s")
        time.sleep(1)


def wait_new_run(dag_id: str, known: set[str], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in runs(dag_id):
            if run["run_id"] not in known:
                return run["run_id"]
        time.sleep(1)
    raise TimeoutError(f"no new run of {dag_id} after {timeout}s")


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        return {ti.task_id: str(ti.state) for ti in rows}


def xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
            .first()
        )
        if row is None:
            return None
        value = row.value
    import json

    return json.loads(value) if isinstance(value, str | bytes) else value


# -- the production topology, natively (tests/e2e): non-Airflow servers and the REST API v2 -------


def spawn(
    name: str, argv: list[str], *, env: dict[str, str], log_dir: Path, cwd: Path | None = None
) -> Component:
    """
    Start any server (``weed mini``, ``mlflow server``, ``airflow ...``) in a session of its own,
    output appended to ``log_dir/<name>.log`` (a file never fills up and blocks the child, as an
    unread pipe does).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    tag = env.get(TAG_VARIABLE) or new_tag(name)
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            argv,
            env={**env, TAG_VARIABLE: tag},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(cwd or log_dir),
        )
    _record_session(process.pid)
    return Component(name, process, log_path, tag)


def kill(component: Component, sig: int = signal.SIGKILL) -> None:
    """
    Signal one component (SIGKILL by default) and reap it. SIGKILL kills its whole session at once
    (a machine lost: task processes in their own process groups too); another signal goes to the
    component's process group, and what is left after 20 s is killed.
    """
    if sig == signal.SIGKILL:
        kill_sessions([component])
        component.process.wait(timeout=5)
        return
    try:
        os.killpg(component.process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        component.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    kill_sessions([component])


def free_ports(count: int) -> list[int]:
    """``count`` distinct free 127.0.0.1 ports (held open together while choosing)."""
    import socket

    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


class RestClient:
    """A minimal Airflow REST API v2 client authenticated like a user (``POST /auth/token``)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._token: str | None = None

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        import json
        import urllib.error
        import urllib.request

        if self._token is None:
            self._token = self._login()
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path}: HTTP {err.code}: {err.read().decode()[:500]}") from None
        return json.loads(text) if text else None

    def _login(self) -> str:
        import json
        import urllib.request

        request = urllib.request.Request(
            f"{self.base_url}/auth/token",
            data=json.dumps({"username": self.username, "password": self.password}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: Any) -> Any:
        return self._request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self._request("PATCH", path, body)

    def trigger(
        self, dag_id: str, conf: dict[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        run = self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf or {}})
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {row["task_id"]: row["state"] for row in rows}

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{dag_id} {run_id} still {state} after {timeout}s: {self.task_states(dag_id, run_id)}"
                )
            time.sleep(1)

    def wait_task(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 180
    ) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.task_states(dag_id, run_id).get(task_id)
            if state in states:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} {task_id} still {state} after {timeout}s")
            time.sleep(0.2)

    def run_ids(self, dag_id: str) -> list[str]:
        rows = self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=id&limit=100")["dag_runs"]
        return [row["dag_run_id"] for row in rows]

    def wait_dags(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while True:
            found = {d["dag_id"] for d in self.get("/api/v2/dags?limit=100")["dags"]}
            if wanted <= found:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAGs not parsed after {timeout}s: {sorted(wanted - found)}")
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        self.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
