"""Drift defaults: the false-alarm rate of the shipped defaults on same-distribution batches (lower is better; target <= 5%).

Each sample draws a current batch and a reference from ONE data set (so nothing drifted) and counts how
often the dataset decision says "drift". Batches up to 1000 rows: a random batch vs the rest of the
data set; above: bootstrap samples (2,000 current vs 5,000 reference rows). The shipped defaults
(methods "auto", drift_share 0.5) are compared with the former ones (Wasserstein/JS pinned, 0.3).

    .venv/bin/python -m bench.drift_defaults [--seeds 200] [--smoke]
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

from bench.common import print_rows

SETTINGS = {
    "shipped (auto, 0.5)": {},
    "former (wasserstein/JS, 0.3)": {
        "numeric_method": "wasserstein",
        "categorical_method": "jensenshannon",
        "drift_share": 0.3,
    },
}


def data_sets() -> dict[str, Any]:
    from palmerpenguins import load_penguins
    from sklearn import datasets
    from vega_datasets import data as vega

    return {
        "seattle_weather": vega.seattle_weather().drop(columns=["date"]),
        "penguins": load_penguins().dropna(),
        "breast_cancer": datasets.load_breast_cancer(as_frame=True).frame,
        "wine": datasets.load_wine(as_frame=True).frame,
        "diabetes": datasets.load_diabetes(as_frame=True).frame,
    }


def draws(rows: int) -> Callable[[Any, Any], tuple[Any, Any]]:
    def batch_vs_rest(frame: Any, rng: Any) -> tuple[Any, Any]:
        order = rng.permutation(len(frame))
        return frame.iloc[order[rows:]], frame.iloc[order[:rows]]

    def bootstrap(frame: Any, rng: Any) -> tuple[Any, Any]:
        return frame.iloc[rng.integers(0, len(frame), 5000)], frame.iloc[rng.integers(0, len(frame), rows)]

    return batch_vs_rest if rows <= 1000 else bootstrap


def rate(frame: Any, rows: int, seeds: int, settings: dict[str, Any]) -> float:
    import numpy as np

    from mlops_provider.core.drift import compute_drift

    draw = draws(rows)
    alarms = 0
    for seed in range(seeds):
        reference, current = draw(frame, np.random.default_rng(seed))
        alarms += compute_drift(reference, current, list(frame.columns), **settings).status == "drift"
    return alarms / seeds


def run(seeds: int = 200, smoke: bool = False) -> list[dict[str, Any]]:
    warnings.filterwarnings("ignore")
    if smoke:
        seeds = 3
    rows_out = []
    for name, frame in data_sets().items():
        for rows in (200, 300, 500, 2000):
            if rows <= 1000 and rows * 2 > len(frame):
                continue
            row: dict[str, Any] = {"data set": f"{name} ({len(frame.columns)} columns)", "batch rows": rows}
            for label, settings in SETTINGS.items():
                row[label] = f"{rate(frame, rows, seeds, settings):.1%}"
            row["seeds"] = seeds
            rows_out.append(row)
    return rows_out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.drift_defaults", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    print_rows(run(args.seeds, smoke=args.smoke))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
