"""The evaluation record: what EvaluateModelOperator scored, and whether promote may reuse it.

No Airflow and no MLflow in here. The record (``evaluation/holdout_metrics.json`` on the training run)
names the model, the holdout (fingerprint and row count), task type, features, target and provider
version with the metrics; :func:`holdout_record_mismatch` says why a record does not describe what the
gate would score ("" when its challenger numbers can be used as they are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.core import lineage
from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.metrics import OPTIONAL_METRICS, is_finite_number, metric_names

if TYPE_CHECKING:
    import pandas as pd

HOLDOUT_RECORD_FORMAT = 1


def _brief(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _metrics_problem(
    metrics: Any, non_finite: Any, names: Sequence[str], required: set[str], what: str
) -> str:
    """Why ``metrics``/``non_finite`` are not what compute_metrics returns for ``names``; "" if they are."""
    if not isinstance(metrics, Mapping) or not isinstance(non_finite, list):
        return f"{what}: metrics/non_finite are not a mapping and a list"
    unknown = set(metrics) - set(names)
    if unknown:
        return f"{what}: unknown metric(s) {sorted(unknown)}"
    absent = required - set(metrics)
    if absent:
        return f"{what}: lacks metric(s) {sorted(absent)}"
    if any(v is not None and not is_finite_number(v) for v in metrics.values()):
        return f"{what}: a metric value is neither a finite number nor null"
    if set(non_finite) != {k for k, v in metrics.items() if v is None}:
        return f"{what}: non_finite {_brief(non_finite)} does not list exactly the null metrics"
    return ""


def holdout_record_mismatch(
    record: Any,
    *,
    run_id: str,
    model_source: str | None,
    holdout: Any,
    task_type: str,
    features: Sequence[str],
    target: str,
    gated: set[str],
    slice_column: str | None,
    code_version: str,
) -> str:
    """
    Why EvaluateModelOperator's ``record`` (``evaluation/holdout_metrics.json``) does not describe what
    promote would score; "" when its challenger numbers can be used as they are. ``model_source`` is the
    model version's source (``models:/<logged model id>`` or ``runs:/<run_id>/model``).
    """
    from mlops_provider.core.data import fingerprint

    if not isinstance(record, Mapping):
        return "the record is not a JSON object"
    model_uri = f"runs:/{run_id}/model"
    for key, expected in (
        ("format", HOLDOUT_RECORD_FORMAT),
        ("model_uri", model_uri),
        ("holdout_artifact", lineage.HOLDOUT_ARTIFACT),
        ("code_version", code_version),
        ("task_type", task_type),
        ("features", list(features)),
        ("target", target),
        ("rows", len(holdout)),
    ):
        if record.get(key) != expected:
            return f"its {key} {_brief(record.get(key))} is not {_brief(expected)}"
    model_id = record.get("model_id")
    sources = {model_uri, *([f"models:/{model_id}"] if isinstance(model_id, str) and model_id else [])}
    if model_source not in sources:
        return f"the version's model {model_source!r} is not the evaluated {' or '.join(sorted(sources))}"
    if record.get("holdout_fingerprint") != fingerprint(holdout):
        return "it was computed on a holdout with other content (fingerprint differs)"
    try:
        names = metric_names(task_type)
    except ValueError as err:
        return str(err)
    always = set(names) - OPTIONAL_METRICS
    problem = _metrics_problem(
        record.get("metrics"), record.get("non_finite"), names, always | set(gated), "its metrics"
    )
    if problem:
        return problem
    if slice_column is None:
        return ""
    return _slices_problem(record, slice_column, names, always, len(holdout))


def _slices_problem(
    record: Mapping[str, Any], slice_column: str, names: Sequence[str], always: set[str], holdout_rows: int
) -> str:
    """Why the record's slice metrics do not cover the holdout by ``slice_column``; "" if they do."""
    if record.get("slice_column") != slice_column:
        return f"its slice_column {_brief(record.get('slice_column'))} is not {slice_column!r}"
    slices = record.get("slices")
    if not isinstance(slices, Mapping) or not slices:
        return "it holds no slice metrics"
    rows = 0
    for label, report in slices.items():
        if not isinstance(report, Mapping) or not isinstance(report.get("rows"), int):
            return f"slice {label!r} is not a metric report"
        problem = _metrics_problem(
            report.get("metrics"), report.get("non_finite"), names, always, f"slice {label!r}"
        )
        if problem:
            return problem
        rows += report["rows"]
    if rows != holdout_rows:
        return f"its slices cover {rows} rows, the holdout has {holdout_rows}"
    return ""


def holdout_xy(
    holdout: pd.DataFrame, features: Sequence[str], target: str, where: str
) -> tuple[pd.DataFrame, pd.Series]:
    missing = [c for c in [*features, target] if c not in holdout.columns]
    if missing:
        raise InvalidInputError(f"{where}: holdout lacks column(s) {', '.join(map(repr, missing))}")
    return holdout[list(features)], holdout[target]


def holdout_record(
    *,
    run_id: str,
    model_id: str | None,
    holdout: pd.DataFrame,
    code_version: str,
    task_type: str,
    features: Sequence[str],
    target: str,
    report: Mapping[str, Any],
    slice_column: str | None,
    slices: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The record EvaluateModelOperator writes last; ``report`` is a MetricReport's ``as_dict()``."""
    from mlops_provider.core.data import fingerprint

    return {
        "format": HOLDOUT_RECORD_FORMAT,
        "model_uri": f"runs:/{run_id}/model",
        "model_id": model_id,
        "holdout_artifact": lineage.HOLDOUT_ARTIFACT,
        "holdout_fingerprint": fingerprint(holdout),
        "code_version": code_version,
        "task_type": task_type,
        "features": list(features),
        "target": target,
        "rows": report["rows"],
        "metrics": report["metrics"],
        "non_finite": report["non_finite"],
        "slice_column": slice_column or None,
        "slices": dict(slices) if slice_column and slices is not None else None,
    }
