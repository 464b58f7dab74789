"""`make up` stops everything it started on Ctrl-C, whatever state it is in, within 30 s.

The test runs `make up` as a user would, in a session of its own with private AIRFLOW_HOME,
MLOPS_HOME and ports, then sends SIGINT to make's process group (what Ctrl-C in the terminal does).
It then scans /proc for any process of that session or carrying the run's owner id in its
environment (Airflow moves task processes and LocalExecutor workers into process groups of their
own, and a process may even leave the session): none may be left, and both ports must be free.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from demo import airflow_local as af

ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN = 30  # the requirement: Ctrl-C stops everything within 30 s
START_WITHIN = 240  # a bound for a loaded 2-core machine (~40-60 s when idle)


@dataclass
class Up:
    process: subprocess.Popen
    home: Path
    ports: tuple[int, int]
    output: Path
    claim: dict = field(default_factory=dict)
    started: int = 0  # make's start time (the /proc clock), kept for when make has exited

    @property
    def sid(self) -> int:
        return self.process.pid  # start_new_session: make leads its own session and group

    def owner(self) -> str | None:
        """The owner id `make up` exports to its children (``AIRFLOW_HOME/owner.json``), once known."""
        try:
            self.claim = json.loads((self.home / "owner.json").read_text())
        except (OSError, ValueError):
            pass  # not written yet, or removed on a clean stop: keep the last one read
        return self.claim.get("owner")

    def ours(self) -> list[af.Proc]:
        """
        Every process `make up` started. The test process is a child subreaper (see the fixture), so
        every descendant of make, orphaned or not, stays a descendant of this process: that finds
        them whatever `make up` does. Also make's session, the sessions recorded in owner.json and
        anything carrying the owner id (what `make up` itself uses).
        """
        _reap_orphans(self.process.pid)
        everything = af.processes()
        children: dict[int, list[af.Proc]] = {}
        for proc in everything:
            children.setdefault(proc.ppid, []).append(proc)
        # make, and the orphans it left that were re-parented to this process: only those started
        # after make (other tests' servers, e.g. the e2e topology, are children of this process too)
        make = next((p for p in everything if p.pid == self.process.pid), None)
        born = make.start if make is not None else self.started
        roots = [self.process.pid] + [
            p.pid for p in children.get(os.getpid(), []) if p.pid != self.process.pid and p.start >= born
        ]
        found: dict[int, af.Proc] = {}
        todo = list(roots)
        for pid in roots:
            proc = next((p for p in everything if p.pid == pid), None)
            if proc is not None:
                found[pid] = proc
        while todo:
            for child in children.get(todo.pop(), []):
                if child.pid not in found:
                    found[child.pid] = child
                    todo.append(child.pid)
        self.owner()
        sids = {self.sid, *self.claim.get("sids", [])}
        owner = self.claim.get("owner")
        for proc in af.members(sids=sids, owners=[owner] if owner else []):
            found.setdefault(proc.pid, proc)
        return list(found.values())

    def log(self) -> str:
        text = self.output.read_text(errors="replace")[-3000:]
        standalone = self.home / "logs" / "standalone.log"
        if standalone.exists():
            text += "\n--- standalone.log\n" + standalone.read_text(errors="replace")[-3000:]
        return text


def _set_child_subreaper(on: bool) -> None:
    import ctypes

    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_child_subreaper, int(on), 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}")


def _reap_orphans(keep: int) -> None:
    """Reap zombies reparented to this (subreaper) process; ``keep`` (make) is Popen's to reap."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == keep:
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            try:
                os.waitpid(int(proc.name), os.WNOHANG)
            except ChildProcessError:
                pass


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as r:
            body = json.loads(r.read())
    except (OSError, ValueError):
        return False
    return all((body.get(part) or {}).get("status") == "healthy" for part in ("metadatabase", "scheduler"))


def _wait(what: str, check, timeout: float, up: Up) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if up.process.poll() is not None:
            pytest.fail(f"make up exited ({up.process.returncode}) before {what}:\n{up.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s:\n{up.log()}")
        time.sleep(0.5)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if not (ROOT / ".venv" / ".installed").exists() or Path(sys.executable).parent != ROOT / ".venv" / "bin":
        pytest.skip("needs the project's .venv (make install)")
    airflow_port, mlflow_port = af.free_ports(2)
    home = tmp_path / "airflow"
    output = tmp_path / "make-up.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "MLOPS_"))}
    env.update({"AIRFLOW_PORT": str(airflow_port), "MLFLOW_PORT": str(mlflow_port)})
    argv = [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.installed",  # never re-sync the shared virtualenv from a test
        "up",
        f"AIRFLOW_HOME={home}",  # command-line variables override the Makefile's exports
        f"MLOPS_HOME={tmp_path}",
        f"MLOPS_MLFLOW_UI_URL=http://127.0.0.1:{mlflow_port}",
    ]
    if sys.platform != "linux":
        pytest.skip("scans /proc")
    _set_child_subreaper(True)  # orphans of make's descendants become this process's children
    with open(output, "wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    started = Up(process, home, (airflow_port, mlflow_port), output)
    started.started = next((p.start for p in af.processes() if p.pid == process.pid), 0)
    try:
        yield started
    finally:  # whatever the test saw: leave nothing behind
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        af.stop_processes(lambda: started.ours(), timeout=1)
        process.wait(timeout=10)
        _reap_orphans(process.pid)
        _set_child_subreaper(False)


def _interrupt_and_check(up: Up, sig: int = signal.SIGINT) -> None:
    before = up.ours()
    assert before, "no process of make up was found before the interrupt"
    os.killpg(up.process.pid, sig)  # Ctrl-C: the terminal signals the foreground group
    deadline = time.monotonic() + STOP_WITHIN
    left = up.ours()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = up.ours()
    assert not left, (
        f"still alive {STOP_WITHIN}s after Ctrl-C: {[(p.pid, p.cmdline[:80]) for p in left]}\n{up.log()}"
    )
    up.process.wait(timeout=5)
    assert all(af.port_free(p) for p in up.ports), up.ports
    assert not (up.home / "owner.json").exists(), "the claim on AIRFLOW_HOME was not released"


@pytest.mark.slow
def test_ctrl_c_after_healthy_stops_everything(up: Up) -> None:
    airflow_port, mlflow_port = up.ports
    _wait("Airflow healthy (API, metadatabase, scheduler)", lambda: _healthy(airflow_port), START_WITHIN, up)
    # the scheduler's LocalExecutor workers and forkserver are up once it heartbeats; wait for them
    _wait("MLflow UI answering", lambda: not af.port_free(mlflow_port), START_WITHIN, up)
    owner = up.owner()
    assert owner
    _interrupt_and_check(up)
    assert "stopped." in up.output.read_text(errors="replace")


@pytest.mark.slow
def test_sigterm_with_a_wedged_scheduler_stops_everything(up: Up) -> None:
    """SIGTERM (a closing terminal, a supervisor) while the scheduler ignores signals: SIGKILL ends it."""
    airflow_port, _ = up.ports
    _wait("Airflow healthy (API, metadatabase, scheduler)", lambda: _healthy(airflow_port), START_WITHIN, up)
    schedulers = [p for p in up.ours() if "scheduler" in p.cmdline.split()]
    assert schedulers, [p.cmdline for p in up.ours()]
    for proc in schedulers:  # like the scheduler stuck in its SIGTERM handler: no signal but SIGKILL acts
        os.kill(proc.pid, signal.SIGSTOP)
    _interrupt_and_check(up, signal.SIGTERM)


@pytest.mark.slow
def test_ctrl_c_while_starting_stops_everything(up: Up) -> None:
    # the moment `airflow standalone` has started its components (the scheduler among them)
    def scheduler_started() -> bool:
        return any("scheduler" in p.cmdline.split() for p in up.ours())

    _wait("the scheduler process started", scheduler_started, START_WITHIN, up)
    _interrupt_and_check(up)


@pytest.mark.slow
def test_second_make_up_cleans_what_a_killed_one_left(up: Up, tmp_path: Path) -> None:
    """`kill -9` of make up itself leaves Airflow behind: the next `make up` stops it before starting."""
    airflow_port, _ = up.ports
    _wait("Airflow healthy (API, metadatabase, scheduler)", lambda: _healthy(airflow_port), START_WITHIN, up)
    owner = up.owner()
    assert owner
    launcher = [p for p in up.ours() if p.cmdline.split()[1:3] == ["-m", "demo.up"]]
    assert len(launcher) == 1, launcher
    os.kill(launcher[0].pid, signal.SIGKILL)
    up.process.wait(timeout=10)  # make exits; Airflow and MLflow stay, as before the fix
    assert up.ours(), "nothing was left behind to clean"

    import socket

    with socket.socket() as busy:  # a port in use: this run cleans up, then refuses to start
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "MLOPS_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(up.home),
                "MLOPS_HOME": str(tmp_path),
                "AIRFLOW_PORT": port,
                "MLFLOW_PORT": port,
            }
        )
        done = subprocess.run(
            [sys.executable, "-m", "demo.up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "left by an earlier make up" in done.stderr, done.stderr
    assert not up.ours()
    assert not (up.home / "owner.json").exists()


# What `make up` relies on, without Airflow (fast): a child whose descendants left its process group,
# retitled themselves (their environment is unreadable) and ignore SIGTERM is still stopped in time.
TREE = r"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
for _ in range(2):
    if os.fork() == 0:
        os.setpgid(0, 0)  # as Airflow's task supervisor does
        import setproctitle

        setproctitle.setproctitle("airflow worker -- " + "x" * 60)  # overwrites the environ
        time.sleep(600)
        os._exit(0)
print("ready", flush=True)
time.sleep(600)
"""


def test_stop_reaches_descendants_in_other_process_groups(tmp_path: Path) -> None:
    child = af.spawn("tree", [sys.executable, "-c", TREE], env=dict(os.environ), log_dir=tmp_path)
    deadline = time.monotonic() + 60
    while len(af.members([child.sid])) < 3:
        assert child.process.poll() is None, child.log_path.read_text()
        assert time.monotonic() < deadline, af.members([child.sid])
        time.sleep(0.1)
    groups = {p.pgid for p in af.members([child.sid])}
    assert len(groups) == 3, "the descendants did not leave the child's process group"
    started = time.monotonic()
    left = af.stop([child], timeout=2)
    assert not left
    assert not af.members([child.sid], [child.tag])
    assert time.monotonic() - started < 2 + 5 + 2  # SIGKILL at the timeout, reaped within 5 s
