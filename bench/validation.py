"""Validation: ValidateDataOperator with a 30-expectation suite vs the same suite run by GX directly vs plain pandas.

    .venv/bin/python -m bench.validation                 # 100k and 1M rows x 20 columns, 5 runs each
    .venv/bin/python -m bench.validation --rows 100000   # one size
    .venv/bin/python -m bench.validation --smoke         # 5k rows, one run: CI

Data: the drift benchmark's synthetic reference frame (deterministic, seed 0): 15 numeric columns and
5 categorical (string) columns. The suite (30 expectations): the column set, the row count, not-null on
11 columns, ranges on 10 numeric columns, value sets on the 5 categorical ones, a column-pair order
and a mean range. A "dirty" copy (1M rows: 100k) breaks 4 of them, to check that every
implementation fails the same expectations and to time the failure path (failed ones re-run for
details).

Implementations, each timed on the same data in the same process, interleaved:

- ``operator``: ``ValidateDataOperator.execute()`` on a Parquet file (read + validate + JSON result +
  HTML report written), with a minimal task context; ``x_gx_best`` uses its time minus the median
  Parquet read (``read_s``), so it compares like with like;
- ``ours``: ``core.validation.validate_frame`` on the in-memory frame (what the operator runs);
- ``gx_boolean``: GX 1.x directly, ephemeral context + ``batch.validate(suite,
  result_format="BOOLEAN_ONLY")`` (GX's fastest way to run the suite);
- ``gx_summary``: the same with GX's default result format (``SUMMARY``, per-expectation details);
- ``pandas``: the same 30 checks written as vectorised pandas expressions, no framework.

All run in a worker subprocess with a temporary AIRFLOW_HOME (Airflow is imported there, never in the
parent). Time: median (min-max) over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import print_rows, run_module, timed

SIZES = (100_000, 1_000_000)
SMOKE_SIZES = (5_000,)
ROOT = Path(__file__).resolve().parents[1]

NOT_NULL = [f"num_{i:02d}" for i in range(9)] + ["cat_0", "cat_1"]
# Ranges the clean data always satisfies (see bench.drift.generate: normal, lognormal, uniform, poisson).
RANGES = {
    "num_00": (-50, 70),
    "num_01": (0, 500),
    "num_02": (0, 200),
    "num_03": (0, 200),
    "num_04": (-50, 70),
    "num_05": (0, 500),
    "num_06": (0, 200),
    "num_07": (0, 200),
    "num_08": (-50, 70),
    "num_09": (0, 500),
}
# Dirty data breaks exactly these expectations (see _short).
DIRTY_BREAKS = ("not_null num_03", "between num_01", "in_set cat_2", "pair num_03 num_13")


def categories(i: int) -> list[str]:
    return [f"v{j:02d}" for j in range(5 + 10 * i)]


def suite_spec() -> dict[str, Any]:
    from bench.drift import CATEGORICAL, NUMERIC

    exps: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": NUMERIC + CATEGORICAL}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
    ]
    exps += [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c}} for c in NOT_NULL]
    exps += [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": c, "min_value": lo, "max_value": hi},
        }
        for c, (lo, hi) in RANGES.items()
    ]
    exps += [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": c, "value_set": categories(i)}}
        for i, c in enumerate(CATEGORICAL)
    ]
    # make_data sets num_13 = num_03 + poisson(20): the pair check holds on clean data.
    exps.append(
        {
            "type": "expect_column_pair_values_a_to_be_greater_than_b",
            "kwargs": {"column_A": "num_13", "column_B": "num_03", "or_equal": True},
        }
    )
    exps.append(
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "num_00", "min_value": 5, "max_value": 15},
        }
    )
    assert len(exps) == 30, len(exps)
    return {"name": "bench_30", "expectations": exps}


def make_data(rows: int, dirty: bool = False) -> Any:
    import numpy as np

    from bench.drift import generate

    frame, _ = generate(rows)
    # num_13 (poisson(20)) >= num_03 (poisson(20)) does not hold row-wise: make the pair check valid.
    frame["num_13"] = frame["num_03"] + frame["num_13"]
    if dirty:
        rng = np.random.default_rng(7)
        idx = rng.choice(rows, max(3, rows // 1000), replace=False)
        frame.loc[idx[: len(idx) // 3], "num_03"] = (
            np.nan
        )  # not_null num_03 (and pair num_13 >= num_03 ignores NaN)
        frame.loc[idx, "num_01"] = -1.0  # between num_01
        frame["cat_2"] = frame["cat_2"].astype(object)
        frame.loc[idx, "cat_2"] = "unknown"  # in_set cat_2
        frame.loc[idx[-1:], "num_13"] = -5.0  # pair num_13 >= num_03
    return frame


# -- implementations ---------------------------------------------------------------------------------
def failed_indices_gx(result: dict[str, Any], spec: dict[str, Any]) -> list[int]:
    keys = [_key(e) for e in spec["expectations"]]
    failed = []
    for r in result["results"]:
        if not r["success"]:
            failed.append(keys.index(_key(r["expectation_config"])))
    return sorted(failed)


def _key(config: dict[str, Any]) -> str:
    """An expectation's identity; numbers compare as floats (GX turns ``0`` into ``0.0``)."""

    def norm(value: Any) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        return str(value)

    kwargs = {k: norm(v) for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    return json.dumps([config.get("type"), kwargs], sort_keys=True)


def gx_direct(frame: Any, spec: dict[str, Any], result_format: str) -> list[int]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # GX at its best: no bars
    batch = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("data")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(**json.loads(json.dumps(spec)))
    result = batch.validate(suite, result_format=result_format).to_json_dict()
    return failed_indices_gx(result, spec)


def ours(frame: Any, spec: dict[str, Any]) -> list[int]:
    from mlops_provider.core import validation

    suite = validation.build_suite(json.loads(json.dumps(spec)), "bench", default_name="bench_30")
    outcome = validation.validate_frame(frame, suite, data_name="bench")
    keys = [_key(e) for e in spec["expectations"]]
    return sorted(
        keys.index(_key({"type": d["failure"].type, "kwargs": d["kwargs"]}))
        for d in outcome.details
        if not d["success"]
    )


def pandas_checks(frame: Any, spec: dict[str, Any]) -> list[int]:
    failed = []
    for i, exp in enumerate(spec["expectations"]):
        kind, kw = exp["type"], exp["kwargs"]
        if kind == "expect_table_columns_to_match_set":
            ok = set(frame.columns) == set(kw["column_set"])
        elif kind == "expect_table_row_count_to_be_between":
            ok = len(frame) >= kw["min_value"]
        elif kind == "expect_column_values_to_not_be_null":
            ok = not frame[kw["column"]].isna().any()
        elif kind == "expect_column_values_to_be_between":
            col = frame[kw["column"]]
            col = col[col.notna()]
            ok = bool(((col >= kw["min_value"]) & (col <= kw["max_value"])).all())
        elif kind == "expect_column_values_to_be_in_set":
            col = frame[kw["column"]]
            col = col[col.notna()]
            ok = bool(col.isin(kw["value_set"]).all())
        elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
            a, b = frame[kw["column_A"]], frame[kw["column_B"]]
            both = a.notna() & b.notna()
            ok = bool((a[both] >= b[both]).all())
        elif kind == "expect_column_mean_to_be_between":
            ok = kw["min_value"] <= frame[kw["column"]].mean() <= kw["max_value"]
        else:
            raise ValueError(kind)
        if not ok:
            failed.append(i)
    return failed


class _TI:
    dag_id, run_id, task_id, try_number = "bench", "bench__1", "validate", 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def operator(path: str, spec: dict[str, Any], reports: str) -> list[int]:
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_provider.operators.validation import ValidateDataOperator

    op = ValidateDataOperator(task_id="validate", data_uri=path, suite=spec, reports_uri=reports)
    ti = _TI()
    try:
        summary = op.execute({"ti": ti, "task_instance": ti})  # type: ignore[arg-type]
    except AirflowFailException:
        summary = None
    result = json.loads(Path(reports, "bench", "bench__1", "validate", "validation_result.json").read_text())
    failed = failed_indices_gx(result["validation_result"], spec)
    if summary is not None and summary["failed"] != len(failed):
        raise RuntimeError("operator summary disagrees with its result file")
    return failed


# -- worker ------------------------------------------------------------------------------------------
def _worker(rows: int, runs: int, dirty: bool) -> dict[str, Any]:
    """In a fresh process: build the data, warm every implementation, then time them interleaved."""
    import pandas as pd

    from mlops_provider.core.validation import quiet_gx_logging

    quiet_gx_logging()
    import great_expectations  # noqa: F401

    quiet_gx_logging()
    spec = suite_spec()
    tmp = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    path = str(tmp / "data.parquet")
    make_data(rows, dirty).to_parquet(path, index=False)
    # Every implementation gets the frame as read from the file (consolidated blocks, as in the task).
    frame = pd.read_parquet(path)
    reports = str(tmp / "reports")
    impls: dict[str, Callable[[], list[int]]] = {
        "read": lambda: (pd.read_parquet(path), [])[1],
        "operator": lambda: operator(path, spec, reports),
        "ours": lambda: ours(frame, spec),
        "gx_boolean": lambda: gx_direct(frame, spec, "BOOLEAN_ONLY"),
        "gx_summary": lambda: gx_direct(frame, spec, "SUMMARY"),
        "pandas": lambda: pandas_checks(frame, spec),
    }
    warm = make_data(500, dirty)
    for name in ("ours", "gx_boolean", "gx_summary", "pandas"):  # imports and first calls out of the timings
        {
            "ours": ours,
            "gx_boolean": lambda f, s: gx_direct(f, s, "BOOLEAN_ONLY"),
            "gx_summary": lambda f, s: gx_direct(f, s, "SUMMARY"),
            "pandas": pandas_checks,
        }[name](warm, spec)
    operator(path, spec, reports)
    times: dict[str, list[float]] = {name: [] for name in impls}
    failed: dict[str, list[int]] = {}
    for _ in range(runs):  # interleaved: machine noise hits all alike
        for name, fn in impls.items():
            t, value = timed(fn, 1)
            times[name] += t
            failed[name] = value
    frame_mb = frame.memory_usage(deep=True).sum() / 2**20
    shutil.rmtree(tmp, ignore_errors=True)
    return {"times": times, "failed": failed, "frame_mb": frame_mb}


def _run_worker(rows: int, runs: int, dirty: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-af-") as home:
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PYTHONWARNINGS": "ignore",
        }
        return run_module(
            "bench.validation",
            ["--worker", "--rows", str(rows), "--runs", str(runs), *(["--dirty"] if dirty else [])],
            env=env,
            cwd=ROOT,
            what=f"validation worker ({rows} rows)",
        )


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def run(sizes: Sequence[int] | None = None, smoke: bool = False, runs: int = 5) -> list[dict[str, Any]]:
    """One row per size, data kind and implementation."""
    sizes = tuple(sizes or (SMOKE_SIZES if smoke else SIZES))
    runs = 1 if smoke else runs
    cases = [(rows, False) for rows in sizes] + [(min(sizes), True)]
    spec = suite_spec()
    out: list[dict[str, Any]] = []
    for rows, dirty in cases:
        result = _run_worker(rows, runs, dirty)
        times, failed = result["times"], result["failed"]
        read = _median(times["read"])
        gx_best = min(_median(times["gx_boolean"]), _median(times["gx_summary"]))
        plain = _median(times["pandas"])
        expected = sorted(
            i for i, e in enumerate(spec["expectations"]) if dirty and _short(e) in DIRTY_BREAKS
        )
        for name in ("operator", "ours", "gx_boolean", "gx_summary", "pandas"):
            t = times[name]
            work = _median(t) - (read if name == "operator" else 0.0)
            out.append(
                {
                    "rows": rows,
                    "data": "dirty" if dirty else "clean",
                    "impl": name,
                    "median_s": round(_median(t), 3),
                    "min_max_s": f"{min(t):.3f}-{max(t):.3f}",
                    "runs": len(t),
                    "read_s": round(read, 3) if name == "operator" else "",
                    "x_gx_best": round(work / gx_best, 2),
                    "x_pandas": round(work / plain, 2),
                    "failed": len(failed[name]),
                    "same_verdicts": failed[name] == expected,
                    "frame_mb": round(result["frame_mb"], 1),
                }
            )
    return out


def _short(exp: dict[str, Any]) -> str:
    kind, kw = exp["type"], exp["kwargs"]
    short = {
        "expect_column_values_to_not_be_null": "not_null",
        "expect_column_values_to_be_between": "between",
        "expect_column_values_to_be_in_set": "in_set",
        "expect_column_pair_values_a_to_be_greater_than_b": "pair",
    }.get(kind, kind)
    if "column_A" in kw:
        return f"{short} {kw['column_B']} {kw['column_A']}"
    return f"{short} {kw.get('column', '')}".strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dirty", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.rows[0], args.runs, args.dirty)), flush=True)
        return 0
    rows = run(args.rows, smoke=args.smoke, runs=args.runs)
    print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
