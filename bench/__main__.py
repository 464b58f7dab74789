"""`make bench`: run every benchmark, print its figures and write bench/RESULTS.md.

.venv/bin/python -m bench            # full sizes (takes a while)
.venv/bin/python -m bench --smoke    # tiny sizes, what CI runs so the benchmarks never rot
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

BENCHMARKS = ("parse", "drift", "drift_defaults", "validation", "loop", "registry", "models_api", "feedback")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    cpus = os.cpu_count()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    libs = ", ".join(
        f"{name} {version(name)}"
        for name in (
            "apache-airflow",
            "mlflow",
            "great-expectations",
            "evidently",
            "scikit-learn",
            "pandas",
            "numpy",
        )
    )
    return f"{platform.platform()}, {cpus} CPUs, {mem:.0f} GiB, Python {platform.python_version()}; {libs}"


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; checks the benchmarks still run")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS)
    parser.add_argument("--output", type=Path, default=None, help="results file (default bench/RESULTS.md)")
    args = parser.parse_args(argv)
    sections = []
    failed = []
    for name in args.only or BENCHMARKS:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"bench.{name}":
                print(f"== {name}: not present, skipped")
                continue
            raise
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            rows = module.run(smoke=args.smoke)
        except Exception as err:  # report and go on: one broken benchmark must not hide the others
            failed.append(name)
            print(f"   FAILED: {type(err).__name__}: {err}", file=sys.stderr)
            sections.append(f"## {name}\n\nFAILED: `{type(err).__name__}: {err}`\n")
            continue
        text = table(rows)
        print(text)
        doc = (module.__doc__ or "").strip().splitlines()[0]
        sections.append(f"## {name}\n\n{doc}\n\n{text}\n({time.monotonic() - started:.0f} s)\n")
    output = args.output or (RESULTS if not args.smoke else RESULTS.with_name("RESULTS.smoke.md"))
    header = (
        f"# Benchmark results\n\nWritten by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        f"{' (smoke sizes)' if args.smoke else ''}.\n\nMachine: {machine()}\n\n"
        "Medians over the runs with (min-max); ratios are measured side by side in the same run.\n\n"
    )
    output.write_text(header + "\n".join(sections))
    print(f"wrote {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
