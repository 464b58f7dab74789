"""Drift: the drift check's computation vs a plain numpy/scipy floor vs Evidently's DataDriftPreset (20 columns).

    .venv/bin/python -m bench.drift                     # 10k, 100k, 1M rows (Evidently skipped at 1M)
    .venv/bin/python -m bench.drift --rows 100000 --full  # Evidently at every size (95 s at 1M)
    .venv/bin/python -m bench.drift --smoke             # 2k rows, one run: CI

Synthetic data, deterministic (seed 0): 15 numeric columns (normal, lognormal, uniform, integer counts)
and 5 categorical (string) columns, reference and current of the same size; 5 numeric and 2 categorical
columns drift in the current data (7/20 = 0.35 >= drift_share 0.3: dataset drift).

Figures per size:
- ``ours``: ``core.drift.compute_drift`` (what the operator decides on), all rows, pinned methods
  (wasserstein / jensenshannon);
- ``floor``: the same scores as directly as possible: per column ``scipy.stats.wasserstein_distance /
  np.std`` and value counts + ``scipy.spatial.distance.jensenshannon``, no checks;
- ``report``: the operator's whole computation: ``ours`` plus the report for humans (Evidently's
  DataDriftPreset on a deterministic 50k-row sample, HTML + JSON rendered); Evidently's import time is
  reported apart (paid once per task process);
- ``evidently``: DataDriftPreset on all rows, methods pinned, ``.dict()`` (no HTML).
Time: median (min-max) over the runs. Memory: peak RSS increase over the process holding the two frames
(Linux VmHWM after resetting it via /proc/self/clear_refs), measured in a fresh subprocess per figure,
as a ratio to the two frames' size (``memory_usage(deep=True)``). ``decisions`` compares the per-column
and dataset decisions with Evidently's (at sizes where Evidently runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from bench.common import print_rows, status_kb, summary, timed

SIZES = (10_000, 100_000, 1_000_000)
SMOKE_SIZES = (2_000,)
NUMERIC = [f"num_{i:02d}" for i in range(15)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
DRIFTED = {"num_00", "num_03", "num_06", "num_09", "num_12", "cat_0", "cat_3"}
DRIFT_SHARE = 0.3
REPORT_SAMPLE_ROWS = 50_000
EVIDENTLY_FULL_LIMIT = 100_000  # above this, Evidently runs only with --full


def generate(rows: int, seed: int = 0) -> tuple[Any, Any]:
    """Reference and current frames (``rows`` each) with the columns in ``DRIFTED`` shifted."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)

    def numeric(i: int, drifted: bool) -> Any:
        shift = 0.5 if drifted else 0.0
        kind = i % 4
        if kind == 0:
            return rng.normal(10 + shift * 4, 4, rows)
        if kind == 1:
            return rng.lognormal(1 + shift, 0.6, rows)
        if kind == 2:
            return rng.uniform(0, 100 + 100 * shift, rows)
        return rng.poisson(20 * (1 + shift), rows).astype("float64")

    def categorical(i: int, drifted: bool) -> Any:
        k = 5 + 10 * i
        labels = np.array([f"v{j:02d}" for j in range(k)], dtype=object)
        weights = np.linspace(1, 3, k)
        if drifted:
            weights = weights[::-1] ** 2
        return labels[rng.choice(k, rows, p=weights / weights.sum())]

    frames = []
    for current in (False, True):
        data = {name: numeric(i, current and name in DRIFTED) for i, name in enumerate(NUMERIC)}
        data.update({name: categorical(i, current and name in DRIFTED) for i, name in enumerate(CATEGORICAL)})
        frames.append(pd.DataFrame(data))
    return frames[0], frames[1]


# -- the workloads ----------------------------------------------------------------------------------
def ours(reference: Any, current: Any) -> dict[str, bool]:
    from mlops_provider.core.drift import compute_drift

    result = compute_drift(reference, current, NUMERIC + CATEGORICAL, drift_share=DRIFT_SHARE, min_rows=200)
    return {c.column: c.drifted for c in result.columns}


def floor(reference: Any, current: Any) -> dict[str, bool]:
    import numpy as np
    from scipy import stats
    from scipy.spatial import distance

    out = {}
    for name in NUMERIC:
        ref = reference[name].to_numpy()
        cur = current[name].to_numpy()
        out[name] = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001) >= 0.1
    for name in CATEGORICAL:
        ref_counts = reference[name].value_counts()
        cur_counts = current[name].value_counts().reindex(ref_counts.index.union(current[name].unique()))
        ref_counts = ref_counts.reindex(cur_counts.index, fill_value=0)
        cur_counts = cur_counts.fillna(0)
        out[name] = distance.jensenshannon(ref_counts.to_numpy(float), cur_counts.to_numpy(float)) >= 0.1
    return out


def evidently_preset(reference: Any, current: Any) -> dict[str, bool]:
    warnings.filterwarnings("ignore")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report(
        [DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon", drift_share=DRIFT_SHARE)]
    ).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            out[config["column"]] = metric["value"] >= config.get("threshold", 0.1)
    return out


def report(reference: Any, current: Any) -> dict[str, bool]:
    """The operator's report step: deterministic sample, Evidently preset, HTML + JSON bytes."""
    from mlops_provider.core.drift import compute_drift
    from mlops_provider.hooks.evidently import EvidentlyHook

    result = compute_drift(reference, current, NUMERIC + CATEGORICAL, drift_share=DRIFT_SHARE, min_rows=200)
    rendered = EvidentlyHook().drift_report(
        reference,
        current,
        result,
        model_name="bench",
        reference_uri="reference",
        current_uri="current",
        sample_rows=REPORT_SAMPLE_ROWS,
    )
    if rendered is None or not rendered.html:
        raise RuntimeError("no report rendered")
    return {c.column: c.drifted for c in result.columns}


WORKLOADS: dict[str, Callable[[Any, Any], dict[str, bool]]] = {
    "ours": ours,
    "floor": floor,
    "report": report,
    "evidently": evidently_preset,
}


# -- measuring --------------------------------------------------------------------------------------
def frames_mb(reference: Any, current: Any) -> float:
    return (reference.memory_usage(deep=True).sum() + current.memory_usage(deep=True).sum()) / 2**20


def _memory_worker(workload: str, rows: int) -> None:
    """In a fresh process: build the frames, warm imports, reset the peak, run once, print JSON."""
    reference, current = generate(rows)
    warm_ref, warm_cur = generate(300, seed=1)
    WORKLOADS[workload](warm_ref, warm_cur)  # imports and first-call costs out of the measured peak
    before = status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    WORKLOADS[workload](reference, current)
    peak = status_kb("VmHWM")
    print(
        json.dumps({"peak_increase_mb": (peak - before) / 1024, "frames_mb": frames_mb(reference, current)}),
        flush=True,
    )


def peak_memory(workload: str, rows: int) -> dict[str, float] | None:
    """Peak RSS increase of one run in a subprocess; ``None`` where /proc cannot measure it."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    proc = subprocess.run(
        [sys.executable, "-m", "bench.drift", "--memory-worker", workload, "--rows", str(rows)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        print(f"   memory worker {workload} at {rows} failed: {proc.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(sizes: Sequence[int] | None = None, smoke: bool = False, full: bool = False) -> list[dict[str, Any]]:
    """Run the benchmark; return one row (dict) per size and implementation, and print a table."""
    sizes = tuple(sizes or (SMOKE_SIZES if smoke else SIZES))
    started = time.perf_counter()
    warnings.filterwarnings("ignore")
    import evidently  # noqa: F401  (import cost reported apart)

    evidently_import_s = time.perf_counter() - started
    warm_ref, warm_cur = generate(300, seed=1)
    for workload in WORKLOADS.values():  # imports and first-call costs out of the timings
        workload(warm_ref, warm_cur)
    rows_out: list[dict[str, Any]] = []
    for rows in sizes:
        reference, current = generate(rows)
        size_mb = frames_mb(reference, current)
        runs = 1 if smoke else (5 if rows <= 1_000_000 else 3)
        measured: dict[str, tuple[list[float], dict[str, bool]]] = {}
        for name in ("floor", "ours", "report", "evidently"):
            if name == "evidently" and rows > EVIDENTLY_FULL_LIMIT and not full:
                continue
            n = runs
            if name == "report":
                n = 1 if smoke else 3
            if name == "evidently":
                n = 1 if (smoke or rows > 10_000) else 3
            workload = WORKLOADS[name]
            measured[name] = timed(lambda w=workload, r=reference, c=current: w(r, c), n)
        floor_median = statistics.median(measured["floor"][0])
        reference_decisions = measured.get("evidently", measured["floor"])[1]
        for name, (times, decisions) in measured.items():
            row: dict[str, Any] = {
                "benchmark": "drift",
                "rows": rows,
                "columns": 20,
                "impl": name,
                **summary(times),
            }
            row["x_floor"] = round(statistics.median(times) / floor_median, 2)
            row["drifted"] = sum(decisions.values())
            row["dataset_drift"] = sum(decisions.values()) / len(decisions) >= DRIFT_SHARE
            row["decisions_vs"] = "evidently" if "evidently" in measured else "floor"
            row["decisions_identical"] = decisions == reference_decisions
            row["frames_mb"] = round(size_mb, 1)
            if not smoke and name in ("ours", "floor", "report", "evidently"):
                memory = peak_memory(name, rows)
                if memory:
                    row["peak_increase_mb"] = round(memory["peak_increase_mb"], 1)
                    row["peak_x_frames"] = round(memory["peak_increase_mb"] / memory["frames_mb"], 2)
            if name == "report":
                row["note"] = (
                    f"ours + Evidently report on a {min(rows, REPORT_SAMPLE_ROWS)}-row sample; "
                    f"evidently import {evidently_import_s:.1f} s apart"
                )
            rows_out.append(row)
        if not all(r["decisions_identical"] for r in rows_out if r["rows"] == rows):
            print(f"   WARNING: decisions differ at {rows} rows", file=sys.stderr)
        if rows == max(sizes):
            truth = {name: name in DRIFTED for name in NUMERIC + CATEGORICAL}
            if measured["ours"][1] != truth:
                print("   WARNING: our decisions differ from the planted drift", file=sys.stderr)
    print_rows(rows_out)
    return rows_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", help=f"sizes (default {', '.join(map(str, SIZES))})")
    parser.add_argument("--smoke", action="store_true", help="one tiny size, one run")
    parser.add_argument("--full", action="store_true", help="run Evidently's preset at every size")
    parser.add_argument("--memory-worker", choices=sorted(WORKLOADS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        _memory_worker(args.memory_worker, args.rows[0])
        return 0
    run(args.rows, smoke=args.smoke, full=args.full)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
