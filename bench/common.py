"""Helpers shared by the benchmarks: timing, summaries, peak memory."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    """Wall times of ``runs`` calls of ``fn`` and the last value it returned."""
    times: list[float] = []
    value = None
    for _ in range(runs):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return times, value


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """``median_s``, ``min_max_s`` and ``runs`` of a list of timings."""
    return {
        "median_s": round(statistics.median(values), digits),
        "min_max_s": f"{min(values):.{digits}f}-{max(values):.{digits}f}",
        "runs": len(values),
    }


def status_kb(field: str) -> int:
    """A ``/proc/self/status`` field in kB (``VmHWM``: peak RSS, ``VmRSS``: current RSS); Linux only."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def run_module(module: str, args: Sequence[str], *, env: dict[str, str], cwd: Any = None, what: str) -> Any:
    """``python -m <module> ARGS`` in a fresh process; its last stdout line parsed as JSON."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Rows as ``a | b | c`` lines under a header of every key (what ``python -m bench.<name>`` prints)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row.get(k, "")) for k in keys))
