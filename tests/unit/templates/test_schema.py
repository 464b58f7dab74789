"""The config schema takes its vocabulary and defaults from core/, and stays light to import."""

from __future__ import annotations

import json
import subprocess
import sys
import typing

from mlops_provider.core import drift, metrics
from mlops_provider.templates import schema


def test_metric_literal_is_core_vocabulary() -> None:
    assert typing.get_args(schema.MetricName) == metrics.CLASSIFICATION_METRICS + metrics.REGRESSION_METRICS
    assert schema.CLASSIFICATION_METRICS is metrics.CLASSIFICATION_METRICS
    assert schema.REGRESSION_METRICS is metrics.REGRESSION_METRICS
    assert not hasattr(schema, "LOWER_IS_BETTER")  # the direction is core's (metrics.LOWER_IS_BETTER)


def test_json_schema_enum_lists_core_metrics() -> None:
    spec = schema.EvaluationSection.model_json_schema()
    assert spec["properties"]["primary_metric"]["enum"] == list(
        metrics.CLASSIFICATION_METRICS + metrics.REGRESSION_METRICS
    )


def test_drift_defaults_are_core_defaults() -> None:
    section = schema.DriftSection()
    assert section.drift_share == drift.DEFAULT_DRIFT_SHARE
    assert section.min_rows == drift.DEFAULT_MIN_ROWS
    assert section.numeric_method == drift.DEFAULT_NUMERIC_METHOD
    assert section.categorical_method == drift.DEFAULT_CATEGORICAL_METHOD
    for name, accepted in (
        ("numeric_method", drift.NUMERIC_METHODS),
        ("categorical_method", drift.CATEGORICAL_METHODS),
    ):
        allowed = typing.get_args(schema.DriftSection.model_fields[name].annotation)
        assert set(allowed) <= set(accepted), name
        assert getattr(section, name) in allowed, name  # pydantic does not check defaults


def test_metric_outside_the_task_vocabulary_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    config = {
        "model": {"name": "m", "task": "regression"},
        "data": {"train": "t.csv", "target": "y"},
        "training": {"estimator": "sklearn.linear_model.Ridge"},
        "evaluation": {"primary_metric": "f1_macro"},
    }
    with pytest.raises(ValidationError, match="does not apply to regression"):
        schema.ModelConfig.model_validate(config)
    config["evaluation"]["primary_metric"] = "rmse"
    assert schema.ModelConfig.model_validate(config).evaluation.primary_metric == "rmse"


def test_importing_the_schema_pulls_no_heavy_library() -> None:
    code = (
        "import json, sys\n"
        "import mlops_provider.templates.schema\n"
        "heavy = ('numpy', 'pandas', 'scipy', 'sklearn', 'pyarrow')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
