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
