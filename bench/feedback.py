"""Benchmark 8, live performance: joining 1M scored rows with their labels and computing metrics for two versions vs a plain pandas merge + scikit-learn.

    .venv/bin/python -m bench.feedback            # 1M ids (2M prediction rows), 3 interleaved runs
    .venv/bin/python -m bench.feedback --smoke    # 20k ids, one run: CI

Synthetic data, deterministic (seed 0): ``ids`` integer ids scored over 28 daily batches by two versions,
the served ``champion`` and the ``previous_champion`` in shadow (so twice as many prediction rows, in the
prediction-file vocabulary of ``core.feedback``: three string classes, one ``proba_<class>`` column each),
and a label for every id, in shuffled order (late labels arrive in any order).

- ``merge + sklearn``: ``pd.merge(predictions, labels, on="id")``, then per version scikit-learn's
  ``accuracy_score``, ``f1_score(average="macro")`` and ``log_loss`` on the probabilities; no checks;
- ``ours``: ``prepare_labels`` + ``join_labels`` (id normalisation, duplicate / conflict / type checks,
  re-scored rows, the issue counts) + ``live_metrics`` for the same three metrics (``roc_auc`` is computed
  as well: ``core.metrics.classification_metrics`` always computes it when it is defined).
Runs alternate (baseline, ours, baseline, ...) in one process; medians, (min-max) and ``x_baseline`` =
ours / baseline. ``same_metrics``: both give the same values (within 1e-9) for both versions.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

from bench.common import print_rows, summary

IDS = 1_000_000
SMOKE_IDS = 20_000
CLASSES = ("cloudy", "rain", "sun")
METRICS = ("accuracy", "f1_macro", "log_loss")
DAYS = 28
VERSIONS = {"champion": ("5", 1.6), "previous_champion": ("4", 1.2)}  # alias: (version, skill)
TARGET = 2.0


def generate(ids: int, seed: int = 0) -> tuple[Any, Any]:
    """Predictions of both versions (``2 * ids`` rows) and one label per id, shuffled."""
    import numpy as np
    import pandas as pd

    from mlops_provider.core.feedback import proba_columns

    rng = np.random.default_rng(seed)
    classes = np.array(CLASSES, dtype=object)
    truth = rng.integers(0, len(CLASSES), ids)
    dates = np.array([f"2024-03-{d:02d}T00:00:00+00:00" for d in range(1, DAYS + 1)], dtype=object)
    day = rng.integers(0, DAYS, ids)
    frames = []
    for alias, (version, skill) in VERSIONS.items():
        logits = rng.normal(size=(ids, len(CLASSES)))
        logits[np.arange(ids), truth] += skill
        proba = np.exp(logits)
        proba /= proba.sum(axis=1, keepdims=True)
        frame = pd.DataFrame({"id": np.arange(ids, dtype=np.int64), "row": np.arange(ids)})
        frame["prediction"] = classes[proba.argmax(axis=1)]
        for i, column in enumerate(proba_columns(CLASSES)):
            frame[column] = proba[:, i]
        frame["model_version"] = version
        frame["alias"] = alias
        frame["scored_at"] = dates[day]
        frame["scoring_date"] = dates[day]
        frames.append(frame)
    order = rng.permutation(ids)
    labels = pd.DataFrame({"id": order.astype(np.int64), "weather": classes[truth[order]]})
    return pd.concat(frames, ignore_index=True), labels


def baseline(predictions: Any, labels: Any) -> dict[str, dict[str, float]]:
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    from mlops_provider.core.feedback import proba_columns

    merged = pd.merge(predictions, labels, on="id")
    out = {}
    for version, rows in merged.groupby("model_version"):
        truth, predicted = rows["weather"], rows["prediction"]
        out[str(version)] = {
            "accuracy": float(accuracy_score(truth, predicted)),
            "f1_macro": float(f1_score(truth, predicted, average="macro")),
            "log_loss": float(log_loss(truth, rows[proba_columns(CLASSES)].to_numpy(), labels=list(CLASSES))),
        }
    return out


def ours(predictions: Any, labels: Any) -> dict[str, dict[str, float]]:
    from mlops_provider.core.feedback import live_metrics, prepare_labels
    from mlops_provider.core.feedback_join import join_labels

    prepared = prepare_labels(labels, id_column="id", label_column="weather", source="labels.csv")
    joined, _ = join_labels(
        predictions, prepared, id_column="id", task_type="classification", where="bench predictions + labels"
    )
    live = live_metrics(joined, task_type="classification", metrics=METRICS)
    return {report["version"]: report["metrics"] for report in live.values()}


def _same(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> bool:
    return a.keys() == b.keys() and all(
        a[v].keys() == b[v].keys() and all(math.isclose(a[v][m], b[v][m], abs_tol=1e-9) for m in a[v])
        for v in a
    )


def run(smoke: bool = False, ids: int | None = None) -> list[dict[str, Any]]:
    """Time both side by side (interleaved); one row per implementation."""
    import warnings

    warnings.filterwarnings("ignore")
    ids = ids or (SMOKE_IDS if smoke else IDS)
    runs = 1 if smoke else 3
    warm_predictions, warm_labels = generate(500, seed=1)
    baseline(warm_predictions, warm_labels)  # imports and first-call costs out of the timings
    ours(warm_predictions, warm_labels)
    predictions, labels = generate(ids)
    times: dict[str, list[float]] = {"merge + sklearn": [], "ours": []}
    results: dict[str, Any] = {}
    for _ in range(runs):
        for name, workload in (("merge + sklearn", baseline), ("ours", ours)):
            started = time.perf_counter()
            results[name] = workload(predictions, labels)
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times["merge + sklearn"])
    same = _same(results["merge + sklearn"], results["ours"])
    rows = []
    for name, measured in times.items():
        ratio = statistics.median(measured) / base
        rows.append(
            {
                "benchmark": "feedback",
                "ids": ids,
                "prediction_rows": len(predictions),
                "impl": name,
                **summary(measured),
                "x_baseline": round(ratio, 2),
                "target": f"<= {TARGET}x" if name == "ours" else "",
                "met": (ratio <= TARGET) if name == "ours" else "",
                "same_metrics": same,
            }
        )
    print_rows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.feedback", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--smoke", action="store_true", help=f"{SMOKE_IDS} ids, one run")
    parser.add_argument("--ids", type=int, help=f"number of ids (default {IDS})")
    args = parser.parse_args(argv)
    run(smoke=args.smoke, ids=args.ids)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
