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

BENCHMARKS = (
    "parse",
    "drift",
    "drift_defaults",
    "drift_scale",
    "validation",
    "loop",
    "registry",
    "models_api",
    "feedback",
    "scoring",
)
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


def stamp_now(smoke: bool) -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC{' (smoke sizes)' if smoke else ''}"


def merged(previous: str, fresh: list[str]) -> list[str]:
    """The previous file's sections in BENCHMARKS order, those just measured replaced."""
    import re

    parts = re.split(r"^## (\S+)\n", previous, flags=re.MULTILINE)
    kept = {
        name: f"## {name}\n{body.rstrip()}\n" for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }
    kept.update({section.split("\n", 1)[0][3:]: section for section in fresh})
    order = [n for n in BENCHMARKS if n in kept] + [n for n in kept if n not in BENCHMARKS]
    return [kept[n] for n in order]


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
        took = time.monotonic() - started
        sections.append(f"## {name}\n\n{doc}\n\n{text}\n({took:.0f} s, measured {stamp_now(args.smoke)})\n")
    output = args.output or (RESULTS if not args.smoke else RESULTS.with_name("RESULTS.smoke.md"))
    if args.only and output.exists():  # the other sections stay as they were recorded
        sections = merged(output.read_text(), sections)
    header = (
        f"# Benchmark results\n\nWritten by `make bench`; each section says when it was measured.\n\n"
        f"Machine: {machine()}\n\n"
        "Medians over the runs with (min-max); ratios are measured side by side in the same run.\n\n"
    )
    output.write_text(header + "\n".join(sections))
    print(f"wrote {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
