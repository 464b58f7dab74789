"""The benchmarks still run: `python -m bench --smoke` (tiny sizes) exits 0 and every benchmark gives rows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def sections(text: str) -> dict[str, str]:
    """``## <name>`` sections of the results file, by name."""
    parts = re.split(r"^## (\S+)\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


# Three chunks that make test runs on whichever worker is free (tests/conftest.py: ALONE): loop and
# scoring take over a minute each at smoke sizes, the others together about as long.
CHUNKS = {
    "loop": ("loop",),
    "scoring": ("scoring",),
    "the_others": (
        "parse",
        "drift",
        "drift_defaults",
        "drift_scale",
        "validation",
        "registry",
        "models_api",
        "feedback",
    ),
}


def test_the_chunks_cover_every_benchmark_once() -> None:
    from bench.__main__ import BENCHMARKS

    names = [name for chunk in CHUNKS.values() for name in chunk]
    assert sorted(names) == sorted(BENCHMARKS)


@pytest.mark.slow
@pytest.mark.timeout(900)  # tiny sizes, servers included; generous for a loaded machine
@pytest.mark.parametrize("chunk", list(CHUNKS))
def test_the_benchmarks_run_at_smoke_sizes(tmp_path: Path, chunk: str) -> None:
    output = tmp_path / "RESULTS.smoke.md"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "PYTHONWARNINGS": "ignore"}
    env.pop("AIRFLOW__CORE__DAGS_FOLDER", None)  # the loop benchmark sets its own
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", *CHUNKS[chunk], "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = sections(output.read_text())
    assert set(found) == set(CHUNKS[chunk])
    for name, body in found.items():
        assert "FAILED" not in body, f"{name}: {body[:500]}"
        table = [line for line in body.splitlines() if line.startswith("| ")]
        assert len(table) >= 2, f"{name} produced no rows:\n{body[:500]}"  # header + at least one row
    if chunk == "loop":
        assert_warm_workers(found["loop"])


def assert_warm_workers(loop_section: str) -> None:
    """Warm workers (mlops_provider.preload, what we ship): the retrain tasks inherited their libraries."""
    loop = [line.strip("|").split("|") for line in loop_section.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in loop[0]]
    rows = [dict(zip(header, (cell.strip() for cell in line), strict=True)) for line in loop[2:]]
    tasks = [r for r in rows if r["row"].startswith("task bench_model_retrain.")]
    assert {r["row"].rsplit(".", 1)[1] for r in tasks} == {
        "validate_data",
        "train_model",
        "evaluate_model",
        "register_model",
        "promote_model",
    }
    assert all(r["workers"] == "warm" and r["imports_inherited"] == "True" for r in tasks), tasks
