"""Drift at scale: 20M rows x 20 numeric columns, every row in memory vs a deterministic sample of max_rows rows (time, peak memory, decision).

    .venv/bin/python -m bench.drift_scale                      # 20M rows (~6.4 GB of Parquet in a temp folder)
    .venv/bin/python -m bench.drift_scale --rows 2000000 --max-rows 200000
    .venv/bin/python -m bench.drift_scale --smoke              # 20k rows sampled to 5k: CI

Data (generated in pieces of 1M rows, seed 0, written as Parquet part files, then deleted): a reference
and a current data set of ``rows`` rows each, 20 numeric columns (normal, lognormal, uniform, integer
counts); 7 columns drift in the current data by 0.25 to 1 standard deviation (7/20 = 0.35 >= drift_share
0.3: dataset drift), the other 13 are drawn from the same distributions as the reference.

Each figure runs in a fresh process (imports warmed first, their time and memory reported apart):
- ``full``: what the check did before ``max_rows``: ``DataHook.read_frame`` of both folders (every row in
  memory) and ``compute_drift`` on all rows;
- ``sampled``: ``DataHook.read_sample`` of both folders (a deterministic sample of ``max_rows`` rows each,
  read in batches) and ``compute_drift`` on the samples;
- ``check``: the drift task's whole path, ``DriftCheckHook.run`` with ``max_rows`` (reads, decision,
  Evidently's report on its 50k-row sample, drift_summary.json), no MLflow.
``peak_rss_mb`` is the process's peak resident memory (``getrusage`` ``ru_maxrss``: what the parent's
``RUSAGE_CHILDREN`` reports for that one child); ``after_imports_mb`` the resident memory before the
work starts. The last row compares the dataset status and the drifted columns of every run with ``full``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import print_rows, run_module

ROWS = 20_000_000
MAX_ROWS = 1_000_000  # the drift check's default
SMOKE_ROWS = 20_000
SMOKE_MAX_ROWS = 5_000
PIECE_ROWS = 1_000_000
COLUMNS = [f"num_{i:02d}" for i in range(20)]
SHIFTS = {
    "num_00": 0.5,
    "num_03": 0.25,
    "num_06": 0.5,
    "num_09": 0.3,
    "num_12": 1.0,
    "num_15": 0.3,
    "num_18": 0.5,
}
DRIFT_SHARE = 0.3
RUNS = ("sampled", "check", "full")


# -- the data ---------------------------------------------------------------------------------------
def _column(rng: Any, i: int, rows: int, shift: float) -> Any:
    """Column ``i``'s values, moved by ``shift`` standard deviations (of its reference distribution)."""
    kind = i % 4
    if kind == 0:
        return rng.normal(10 + 4 * shift, 4, rows)
    if kind == 1:
        return rng.lognormal(1 + 0.6 * shift, 0.6, rows)
    if kind == 2:
        return rng.uniform(0, 100, rows) + 28.9 * shift
    return rng.poisson(20 + 4.5 * shift, rows).astype("float64")


def generate(folder: Path, rows: int, piece_rows: int = PIECE_ROWS) -> tuple[str, str]:
    """Write the reference and current data sets as Parquet part files; their folders."""
    import numpy as np
    import pandas as pd

    out = []
    for current, name in ((False, "reference"), (True, "current")):
        target = folder / name
        target.mkdir(parents=True)
        for piece, start in enumerate(range(0, rows, piece_rows)):
            n = min(piece_rows, rows - start)
            rng = np.random.default_rng([0, int(current), piece])
            data = {
                col: _column(rng, i, n, SHIFTS.get(col, 0.0) if current else 0.0)
                for i, col in enumerate(COLUMNS)
            }
            pd.DataFrame(data).to_parquet(target / f"part-{piece:05d}.parquet", index=False)
        out.append(str(target))
    return out[0], out[1]


# -- the workers (each in a fresh process) ----------------------------------------------------------
def _rss_mb() -> float:
    from bench.common import status_kb

    return status_kb("VmRSS") / 1024


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _full(reference: str, current: str, max_rows: int, reports: str) -> Any:
    from mlops_provider.core.drift import compute_drift
    from mlops_provider.hooks.data import DataHook

    data = DataHook()
    ref, cur = data.read_frame(reference), data.read_frame(current)
    return compute_drift(ref, cur, COLUMNS, drift_share=DRIFT_SHARE).summary()


def _sampled(reference: str, current: str, max_rows: int, reports: str) -> Any:
    from mlops_provider.core.drift import DriftSample, compute_drift
    from mlops_provider.hooks.data import DataHook

    data = DataHook()
    ref, n_ref = data.read_sample(reference, max_rows)
    cur, n_cur = data.read_sample(current, max_rows)
    sample = DriftSample(len(ref), n_ref, len(cur), n_cur, 0)
    return compute_drift(ref, cur, COLUMNS, drift_share=DRIFT_SHARE, sample=sample).summary()


def _check(reference: str, current: str, max_rows: int, reports: str) -> Any:
    from mlops_provider.hooks.drift import DriftCheck, DriftCheckHook

    check = DriftCheck(
        model_name="bench",
        current_uri=current,
        reference_uri=reference,
        columns=COLUMNS,
        drift_share=DRIFT_SHARE,
        max_rows=max_rows,
    )
    summary, _ = DriftCheckHook().run(check, reports)
    if not summary.get("report_uri"):
        raise RuntimeError(f"no report: {summary.get('report_error')}")
    return summary


WORKERS = {"full": _full, "sampled": _sampled, "check": _check}


def _worker(run: str, reference: str, current: str, max_rows: int, reports: str) -> None:
    """Warm the imports, run once, print one JSON line."""
    started = time.perf_counter()
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import scipy.stats  # noqa: F401

    import mlops_provider.core.drift
    import mlops_provider.hooks.data

    if run == "check":
        import evidently  # noqa: F401

        import mlops_provider.hooks.drift  # noqa: F401
    imports_s = time.perf_counter() - started
    after_imports = _rss_mb()
    started = time.perf_counter()
    summary = WORKERS[run](reference, current, max_rows, reports)
    seconds = time.perf_counter() - started
    out = {
        "seconds": round(seconds, 1),
        "imports_s": round(imports_s, 1),
        "peak_rss_mb": round(_peak_mb()),
        "after_imports_mb": round(after_imports),
        "status": summary["status"],
        "drift_share": summary["drift_share"],
        "drifted": sorted(summary["drifted_columns"]),
        "n_reference": summary["n_reference"],
        "sample": summary.get("sample"),
    }
    print(json.dumps(out), flush=True)


# -- the benchmark ----------------------------------------------------------------------------------
def _measure(run: str, folders: tuple[str, str], max_rows: int, reports: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MLFLOW_DISABLE_TELEMETRY": "true"}
    args = ["--worker", run, "--reference", folders[0], "--current", folders[1]]
    args += ["--max-rows", str(max_rows), "--reports", reports]
    result: dict[str, Any] = run_module("bench.drift_scale", args, env=env, what=f"drift_scale {run}")
    return result


def run(smoke: bool = False, rows: int | None = None, max_rows: int | None = None) -> list[dict[str, Any]]:
    """Generate the data, measure each run in its own process; one row per run and one comparing them."""
    rows = rows or (SMOKE_ROWS if smoke else ROWS)
    max_rows = max_rows or (SMOKE_MAX_ROWS if smoke else MAX_ROWS)
    folder = Path(tempfile.mkdtemp(prefix="mlops-drift-scale-"))
    try:
        started = time.perf_counter()
        folders = generate(folder, rows, piece_rows=min(PIECE_ROWS, max(rows // 4, 1)))
        size_mb = sum(p.stat().st_size for p in folder.rglob("*.parquet")) / 2**20
        print(
            f"   generated 2 x {rows} rows ({size_mb:.0f} MB of Parquet) in {time.perf_counter() - started:.0f} s"
        )
        measured = {name: _measure(name, folders, max_rows, str(folder / "reports" / name)) for name in RUNS}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    planted = sorted(SHIFTS)
    rows_out: list[dict[str, Any]] = []
    for name in RUNS:
        m = measured[name]
        sample = m["sample"]
        rows_out.append(
            {
                "run": name,
                "rows": rows,
                "columns": len(COLUMNS),
                "rows_compared": sample["reference"]["rows"] if sample else m["n_reference"],
                "seconds": m["seconds"],
                "imports_s": m["imports_s"],
                "peak_rss_mb": m["peak_rss_mb"],
                "after_imports_mb": m["after_imports_mb"],
                "status": m["status"],
                "drift_share": m["drift_share"],
                "drifted": len(m["drifted"]),
                "drifted_as_planted": m["drifted"] == planted,
            }
        )
    full = measured["full"]
    equal = all(
        (measured[n]["status"], measured[n]["drifted"]) == (full["status"], full["drifted"]) for n in RUNS
    )
    rows_out.append(
        {"run": "decisions equal (status, drifted columns) to full's", "rows": rows, "status": equal}
    )
    if not equal:
        print("   WARNING: a sampled decision differs from the full computation's", file=sys.stderr)
    print_rows(rows_out)
    return rows_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help=f"rows per data set (default {ROWS})")
    parser.add_argument("--max-rows", type=int, help=f"the sample's size (default {MAX_ROWS})")
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_ROWS} rows sampled to {SMOKE_MAX_ROWS}")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    parser.add_argument("--reports", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.reference, args.current, args.max_rows, args.reports)
        return 0
    run(smoke=args.smoke, rows=args.rows, max_rows=args.max_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
