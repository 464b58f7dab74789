"""The config schema takes its vocabulary and defaults from core/, and stays light to import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from mlops_provider.core import drift, metrics
from mlops_provider.templates import schema, schema_sections
from mlops_provider.templates.loader import load_config

ROOT = Path(__file__).resolve().parents[3]


def test_metric_vocabulary_is_core_vocabulary() -> None:
    assert schema_sections.BUILT_IN_METRICS == metrics.CLASSIFICATION_METRICS + metrics.REGRESSION_METRICS
    assert schema.CLASSIFICATION_METRICS is metrics.CLASSIFICATION_METRICS
    assert schema.REGRESSION_METRICS is metrics.REGRESSION_METRICS
    assert not hasattr(schema, "LOWER_IS_BETTER")  # the direction is core's (metrics.LOWER_IS_BETTER)


def test_json_schema_metric_names_are_identifiers() -> None:
    """Custom metrics make the vocabulary open: the JSON schema holds the name pattern; the config
    validator checks each name against the model's built-in, cost and custom metrics."""
    spec = schema.EvaluationSection.model_json_schema()
    assert spec["properties"]["primary_metric"]["pattern"] == "^[a-z][a-z0-9_]{0,62}$"


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


# -- Step 10: closing the loop (scoring.id_column, feedback, promotion.mode) -------------------------
CONFIGS = ROOT / "dags" / "configs"
ISSUE_YAML = """
scoring:
  id_column: id
feedback:
  labels: weather/labels/*.csv
  label_column: weather
  schedule: "@daily"
  window_days: 28
  min_labels: 200
  degrade:
    f1_macro: {max_drop: 0.05}
  rollback: auto
promotion:
  mode: shadow
  shadow_min_labels: 500
"""


def base_config(task: str = "classification") -> dict:
    metric = "f1_macro" if task == "classification" else "rmse"
    return {
        "model": {"name": "wine", "task": task},
        "data": {"train": "data/*.csv", "target": "weather", "features": ["temp", "wind"]},
        "training": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "evaluation": {"primary_metric": metric},
    }


def closed_loop(**sections: dict) -> dict:
    """The base config with the issue's closed-loop keys, ``sections`` merged over them (None: omitted)."""
    config = base_config()
    for name, section in yaml.safe_load(ISSUE_YAML).items():
        override = sections.pop(name, {})
        if override is not None:
            config[name] = {**section, **override}
    config.update(sections)
    return config


def problems(tmp_path: Path, config: dict) -> list[tuple[str, str]]:
    """``(key, message)`` of each problem the loader reports for ``config`` written as YAML."""
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config(path)
    assert all(p.file == str(path) for p in loaded.problems)
    return [(p.key, p.message) for p in loaded.problems]


@pytest.fixture(autouse=True)
def _no_config_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_CONFIG_CACHE", "")


def test_closed_loop_keys_default_to_off() -> None:
    config = schema.ModelConfig.model_validate(base_config())
    assert config.feedback is None  # no performance monitor
    assert config.scoring.id_column is None
    assert (config.promotion.mode, config.promotion.shadow_min_labels) == ("direct", 500)
    feedback = schema.FeedbackSection(labels="labels/*.csv")
    assert feedback.label_column is None  # data.target
    assert (feedback.schedule, feedback.window_days, feedback.min_labels) == ("@daily", 28, 200)
    assert feedback.degrade == {}
    assert feedback.rollback == "off"  # a person opts in to automatic rollback


def test_the_issue_config_validates(tmp_path: Path) -> None:
    assert problems(tmp_path, closed_loop()) == []
    config = load_config(tmp_path / "model.yaml").config
    assert config is not None
    assert config.feedback is not None
    assert config.scoring.id_column == "id"
    assert config.feedback.labels == "weather/labels/*.csv"
    assert config.feedback.degrade["f1_macro"].max_drop == 0.05
    assert (config.feedback.window_days, config.feedback.min_labels) == (28, 200)
    assert (config.feedback.rollback, config.promotion.mode) == ("auto", "shadow")
    # rollback: auto needs no previous champion, nor degrade rules (it compares the previous champion)
    bare = closed_loop(feedback={"labels": "{{ ds }}/labels.csv", "rollback": "auto", "degrade": {}})
    assert problems(tmp_path, bare) == []


def test_regression_degrade_metrics_pass() -> None:
    config = closed_loop(feedback={"degrade": {"rmse": {"max_drop": 2.5}, "r2": {"max_drop": 0}}})
    config["model"]["task"] = "regression"
    config["evaluation"]["primary_metric"] = "rmse"
    assert set(schema.ModelConfig.model_validate(config).feedback.degrade) == {"rmse", "r2"}


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        (closed_loop(scoring={"id_column": None}), "scoring.id_column", "required when feedback is set"),
        (closed_loop(feedback=None), "promotion.mode", "shadow needs feedback"),
        (
            closed_loop(feedback={"degrade": {"rmse": {"max_drop": 1.0}}}),
            "feedback.degrade.rmse",
            "does not apply to classification",
        ),
        (closed_loop(scoring={"id_column": "weather"}), "scoring.id_column", "is the target"),
        (closed_loop(scoring={"id_column": "wind"}), "scoring.id_column", "listed in data.features"),
        (
            {**closed_loop(), "data": {k: v for k, v in closed_loop()["data"].items() if k != "features"}},
            "data.features",
            "required when scoring.id_column is set",
        ),
        (closed_loop(scoring={"id_column": "prediction"}), "scoring.id_column", "prediction files use"),
        (closed_loop(feedback={"label_column": "temp"}), "feedback.label_column", "is a feature"),
        (closed_loop(feedback={"label_column": "id"}), "feedback.label_column", "also scoring.id_column"),
        # an existing rule across sections now names its key too
        (
            {**base_config(), "data": {"train": "d/*.csv", "target": "y", "features": ["y"]}},
            "data.features",
            "target",
        ),
    ],
)
def test_rules_across_sections_name_their_key(tmp_path: Path, config: dict, key: str, fragment: str) -> None:
    [(found_key, message)] = problems(tmp_path, config)
    assert found_key == key
    assert fragment in message


def test_id_column_without_feedback_is_kept_and_checked() -> None:
    config = schema.ModelConfig.model_validate({**base_config(), "scoring": {"id_column": "id"}})
    assert config.scoring.id_column == "id"
    assert config.feedback is None
    with pytest.raises(ValidationError, match="scoring.id_column: 'weather' is the target"):
        schema.ModelConfig.model_validate({**base_config(), "scoring": {"id_column": "weather"}})


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        (closed_loop(feedback={"window_days": 0}), "feedback.window_days", "greater than or equal to 1"),
        (closed_loop(feedback={"window_days": 10**9}), "feedback.window_days", "less than or equal to 3660"),
        (closed_loop(feedback={"window_days": "28; rm -rf"}), "feedback.window_days", "valid integer"),
        (closed_loop(feedback={"window_days": "28"}), "feedback.window_days", "valid integer"),
        (closed_loop(feedback={"window_days": True}), "feedback.window_days", "valid integer"),
        (closed_loop(feedback={"window_days": 2.5}), "feedback.window_days", "valid integer"),
        (closed_loop(feedback={"min_labels": 0}), "feedback.min_labels", "greater than or equal to 1"),
        (closed_loop(promotion={"shadow_min_labels": 0}), "promotion.shadow_min_labels", "greater than"),
        (
            closed_loop(feedback={"degrade": {"f1_macro": {"max_drop": -0.1}}}),
            "feedback.degrade.f1_macro.max_drop",
            "greater than or equal to 0",
        ),
        (
            closed_loop(feedback={"degrade": {"f1_macro": {"max_drop": float("nan")}}}),
            "feedback.degrade.f1_macro.max_drop",
            "finite number",
        ),
        (
            closed_loop(feedback={"degrade": {"f1_macro": {}}}),
            "feedback.degrade.f1_macro.max_drop",
            "missing",
        ),
        (
            closed_loop(feedback={"degrade": {"f2": {"max_drop": 0.1}}}),
            "feedback.degrade.f2",
            "f1_macro",
        ),
        (closed_loop(feedback={"rollback": "yes"}), "feedback.rollback", "got 'yes'"),
        (closed_loop(feedback={"rollback": True}), "feedback.rollback", "got True"),
        (closed_loop(promotion={"mode": "Shadow"}), "promotion.mode", "got 'Shadow'"),
        (closed_loop(feedback={"labels": ""}), "feedback.labels", "at least 1 character"),
        (closed_loop(feedback={"labels": "   "}), "feedback.labels", "empty or blank"),
        (closed_loop(scoring={"id_column": ""}), "scoring.id_column", "at least 1 character"),
        (closed_loop(feedback={"label_column": " "}), "feedback.label_column", "empty or blank"),
        (closed_loop(feedback={"schedule": "every day"}), "feedback.schedule", "not a valid cron"),
        (closed_loop(feedback={"labelz": "x.csv"}), "feedback.labelz", "unknown key"),
        ({**base_config(), "feedback": {"rollback": "auto"}}, "feedback.labels", "required key is missing"),
    ],
)
def test_hostile_values_are_refused_naming_the_key(
    tmp_path: Path, config: dict, key: str, fragment: str
) -> None:
    found = problems(tmp_path, config)
    assert any(k == key and fragment in message for k, message in found), found


def test_feedback_schedule_may_be_off() -> None:
    config = schema.ModelConfig.model_validate(closed_loop(feedback={"schedule": "none"}))
    assert config.feedback is not None
    assert config.feedback.schedule is None


def test_seattle_weather_still_validates_and_its_commented_loop_too(tmp_path: Path) -> None:
    shipped = CONFIGS / "seattle_weather.yaml"
    loaded = load_config(shipped)
    assert loaded.ok, loaded.problems
    assert loaded.config.feedback is not None  # the demo closes the loop
    assert (loaded.config.scoring.id_column, loaded.config.feedback.rollback) == ("date", "auto")
    assert loaded.config.promotion.mode == "direct"
    # the commented-out example is valid once uncommented (prose is "# text", YAML "#key" / "#  key")
    text = shipped.read_text()
    uncommented = re.sub(r"^([ \t]*)#(?! \S)", r"\1", text, flags=re.M)
    assert uncommented != text
    (tmp_path / "seattle_weather").mkdir()
    (tmp_path / "seattle_weather" / "suite.json").write_text('{"expectations": []}')
    path = tmp_path / "seattle_weather.yaml"
    path.write_text(uncommented)
    example = load_config(path)
    assert example.ok, example.problems
    assert example.config.feedback.labels == "seattle_weather/data/labels/*.csv"
    assert example.config.scoring.id_column == "date"
    assert example.config.promotion.mode == "shadow"
    assert example.resolve(example.config.feedback.labels) == str(
        tmp_path / "seattle_weather/data/labels/*.csv"
    )


def test_reference_lists_the_closed_loop_keys() -> None:
    rows = {key: (type_name, default) for key, type_name, default, _ in schema.reference_rows()}
    assert rows["scoring.id_column"] == ("str | None", "null")
    assert rows["feedback"] == ("section", "null")
    assert rows["feedback.labels"] == ("str", "required")
    assert rows["feedback.degrade"] == ("dict[metric, MaxDrop]", "{}")
    assert rows["feedback.rollback"] == ("one of ['auto', 'off']", "off")
    assert rows["promotion.mode"] == ("one of ['direct', 'shadow']", "direct")
    assert rows["promotion.shadow_min_labels"] == ("int", "500")
    assert "feedback.degrade.max_drop" not in rows  # a mapping of sections is one key
