"""The model config schema (``dags/configs/<model>.yaml``): pydantic models, light to import."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The vocabulary and defaults are core's (light modules: no numpy/pandas at import).
from mlops_provider.core.drift import (
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_DRIFT_SHARE,
    DEFAULT_MIN_ROWS,
    DEFAULT_NUMERIC_METHOD,
)
from mlops_provider.core.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

if TYPE_CHECKING:
    MetricName: TypeAlias = str
else:  # a Literal for pydantic (and the JSON schema's enum), built from core's tuples: they never drift
    MetricName = Literal.__getitem__(CLASSIFICATION_METRICS + REGRESSION_METRICS)
NumericMethod: TypeAlias = Literal["auto", "wasserstein", "ks"]
CategoricalMethod: TypeAlias = Literal["auto", "jensenshannon", "chisquare"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"
CRON_PRESETS = frozenset(
    {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}
)


RESERVED_TAGS = frozenset({"mlops", "retrain", "drift", "scoring", "rollback", "performance"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@functools.lru_cache(maxsize=256)
def _valid_cron(expression: str) -> bool:  # many configs share a schedule
    from croniter import croniter

    return bool(croniter.is_valid(expression))


def check_schedule(value: str | None) -> str | None:
    """A cron expression or preset; ``None``/``"none"`` for no time schedule."""
    if value is None or value.strip().lower() in ("none", "null", ""):
        return None
    value = value.strip()
    if value in CRON_PRESETS:
        return value
    if not _valid_cron(value):
        raise ValueError(f"{value!r} is not a valid cron expression (5 fields, e.g. '0 2 * * *') or preset")
    return value


class ModelSection(_Section):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="Registered model name in MLflow; also the DAG id prefix."
    )
    task: Literal["classification", "regression"] = Field(description="classification | regression.")


class DataSection(_Section):
    train: str = Field(description="Training data: path, glob or URI (file://, s3://); Jinja allowed.")
    current: str | None = Field(None, description="The batch drift checks and scoring read; Jinja allowed.")
    reference: str | None = Field(
        None,
        description="Drift reference override (default: the champion's training data, from its lineage).",
    )
    target: str = Field(description="Target column.")
    features: list[str] | None = Field(None, description="Feature columns (default: all but the target).")
    conn_id: str | None = Field(
        None, description="Airflow connection for remote URIs (default aws_default for s3://)."
    )
    allowed_training_prefixes: list[str] = Field(
        default_factory=list,
        description="Folders or bucket paths a trigger's training_data may point inside (none: no override).",
    )

    @field_validator("allowed_training_prefixes")
    @classmethod
    def _plain_prefixes(cls, value: list[str]) -> list[str]:
        from mlops_provider.core.data_scope import check_prefix

        return [check_prefix(v) for v in value]

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("must list at least one column, or be omitted")
            dupes = sorted({v for v in value if value.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate column(s) {dupes}")
        return value


class ValidationSection(_Section):
    suite: str = Field(
        description="Great Expectations 1.x expectation suite (JSON file, relative to the YAML)."
    )
    on_failure: Literal["fail", "warn"] = Field("fail", description="fail (task fails, no retry) | warn.")


class TrainingSection(_Section):
    estimator: Annotated[str, Field(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")] = Field(
        description="Import path of an estimator class in sklearn, xgboost or lightgbm, or of a factory "
        "function in allowed_modules."
    )
    allowed_modules: list[str] = Field(
        default_factory=list,
        description="Your modules (e.g. in the DAGs folder) whose estimator classes or factories may be used.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Estimator parameters.")
    test_size: float = Field(
        0.2, gt=0, lt=1, description="Holdout share (the gate scores both models on it)."
    )
    random_state: int = Field(42, description="Seed: a retry produces the same model.")
    queue: str | None = Field(None, description="Celery queue of the training task (e.g. training).")
    allow_pickle: bool = Field(
        False,
        description="Opt in to pickle: log models skops cannot serialise with cloudpickle, and load pickled "
        "models (they can run code: a trusted registry only).",
    )
    trusted_types: list[str] = Field(
        default_factory=list,
        description="skops types a model may hold besides scikit-learn, numpy and scipy (exact names, "
        "or prefixes ending in '.').",
    )

    @field_validator("allowed_modules")
    @classmethod
    def _own_modules(cls, value: list[str]) -> list[str]:
        from mlops_provider.core.estimators import check_allowed_modules

        try:
            return list(check_allowed_modules(value))
        except ValueError as err:
            raise ValueError(str(err).removeprefix("training.allowed_modules: ")) from None


class Bound(_Section):
    min: float | None = Field(None, description="Lowest acceptable value.")
    max: float | None = Field(None, description="Highest acceptable value.")

    @model_validator(mode="after")
    def _one_bound(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Delta(_Section):
    min_delta: float = Field(
        0.0,
        description="Least improvement over the champion, in the better direction (negative tolerates a loss).",
    )


class SliceSection(_Section):
    column: str = Field(description="Column whose values define slices (fairness / robustness gate).")
    max_gap: dict[MetricName, float] = Field(
        default_factory=dict, description="Largest allowed gap of a metric between the best and worst slice."
    )


class EvaluationSection(_Section):
    primary_metric: MetricName = Field(description="Headline metric.")
    thresholds: dict[MetricName, Bound] = Field(
        default_factory=dict, description="Absolute gates: {metric: {min, max}}."
    )
    vs_champion: dict[MetricName, Delta] = Field(
        default_factory=dict, description="Challenger vs champion on the same holdout: {metric: {min_delta}}."
    )
    first_run: Literal["promote", "require_approval"] = Field(
        "promote", description="With no champion yet: promote when absolute gates pass, or require approval."
    )
    slices: SliceSection | None = Field(
        None, description="Optional slice gate: {column, max_gap: {metric: gap}}."
    )


class PromotionSection(_Section):
    alias: Annotated[str, Field(pattern=r"^[A-Za-z][\w-]*$")] = Field(
        "champion", description="Alias the gate moves."
    )
    approval: Literal["auto", "manual"] = Field(
        "auto",
        description="auto | manual (a human approves in the Airflow UI); a trigger may only make it stricter.",
    )
    allow_forced: bool = Field(
        False, description="Whether a trigger may skip the champion comparison (forced retrain, recorded)."
    )
    on_refuse: Literal["fail", "skip"] = Field("fail", description="A refused gate fails the task, or skips.")


class DriftSection(_Section):
    schedule: str | None = Field("@daily", description="When the drift monitor runs (cron or preset).")
    drift_share: float = Field(
        DEFAULT_DRIFT_SHARE, gt=0, le=1, description="Share of drifted columns that means dataset drift."
    )
    min_rows: int = Field(DEFAULT_MIN_ROWS, ge=1, description="Fewer rows: insufficient_data, never drift.")
    numeric_method: NumericMethod = Field(
        cast(NumericMethod, DEFAULT_NUMERIC_METHOD),
        description="auto (ks up to 1000 rows, else wasserstein), or pinned.",
    )
    categorical_method: CategoricalMethod = Field(
        cast(CategoricalMethod, DEFAULT_CATEGORICAL_METHOD),
        description="auto (chisquare up to 1000 rows, else jensenshannon), or pinned.",
    )
    threshold: float | None = Field(None, gt=0, description="Per-column threshold (default: the method's).")

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)


class ScoringSection(_Section):
    schedule: str | None = Field("@daily", description="When batch scoring runs (cron or preset).")
    output: str = Field(
        ".mlops/predictions/{{ model_name }}/{{ run_id }}.parquet",
        description="Where predictions go (Jinja; relative paths resolve against MLOPS_HOME).",
    )
    chunk_size: int = Field(100_000, ge=1, description="Rows scored per chunk.")
    max_unseen_share: float | None = Field(
        None, ge=0, le=1, description="Largest share of rows with a category unseen in training, per column."
    )
    on_unseen: Literal["warn", "fail"] = Field(
        "warn", description="Above max_unseen_share: warn (the task succeeds) or fail."
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)


class ModelConfig(_Section):
    """One model: three DAGs (``<name>_retrain``, ``<name>_drift_monitor``, ``<name>_batch_score``)."""

    model: ModelSection
    data: DataSection
    validation: ValidationSection | None = Field(None, description="Omit to skip data validation.")
    training: TrainingSection
    evaluation: EvaluationSection
    promotion: PromotionSection = Field(default_factory=PromotionSection)
    drift: DriftSection = Field(default_factory=DriftSection)
    scoring: ScoringSection = Field(default_factory=ScoringSection)
    schedule: str | None = Field(
        "0 2 * * *", description="Nightly retraining (cron); the retrain DAG also runs on drift."
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Extra DAG tags (not `mlops`, `model:...` or the DAG kinds: the factory sets those).",
    )
    owner: str = Field("mlops", description="DAG owner shown in the UI.")
    retries: int = Field(1, ge=0, le=10, description="Task retries for transient faults.")
    retry_delay_seconds: int = Field(30, ge=0, le=3600, description="First retry delay (doubles per retry).")
    mlflow_conn_id: str = Field("mlflow_default", description="Airflow connection of type mlflow.")

    @field_validator("tags")
    @classmethod
    def _free_tags(cls, value: list[str]) -> list[str]:
        reserved = [t for t in value if t in RESERVED_TAGS or t.startswith("model:")]
        if reserved:
            raise ValueError(f"{reserved} are set by the DAG factory; choose other tags")
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> ModelConfig:
        allowed = CLASSIFICATION_METRICS if self.model.task == "classification" else REGRESSION_METRICS
        used: list[tuple[str, str]] = [("evaluation.primary_metric", self.evaluation.primary_metric)]
        used += [(f"evaluation.thresholds.{m}", m) for m in self.evaluation.thresholds]
        used += [(f"evaluation.vs_champion.{m}", m) for m in self.evaluation.vs_champion]
        if self.evaluation.slices:
            used += [(f"evaluation.slices.max_gap.{m}", m) for m in self.evaluation.slices.max_gap]
        for key, metric in used:
            if metric not in allowed:
                raise ValueError(
                    f"{key}: metric {metric!r} does not apply to {self.model.task}; use one of {', '.join(allowed)}"
                )
        if self.data.features and self.data.target in self.data.features:
            raise ValueError(f"data.features: the target {self.data.target!r} cannot also be a feature")
        return self


def is_templated(value: str) -> bool:
    return "{{" in value or "{%" in value


def has_glob(value: str) -> bool:
    return bool(re.search(r"[*?\[]", value))


def reference_rows() -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every key of the schema, in order: the README table."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            annotation = field.annotation
            nested = _nested_model(annotation)
            if nested is not None and name not in ("thresholds", "vs_champion"):
                if field.description:
                    rows.append((key, "section", _default(field), field.description))
                walk(nested, key + ".")
                continue
            rows.append((key, _type_name(annotation, field), _default(field), field.description or ""))

    walk(ModelConfig, "")
    return rows


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _type_name(annotation: Any, field: Any) -> str:
    text = repr(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    text = text.replace("mlops_provider.templates.schema.", "")
    text = re.sub(r"Annotated\[(\w+), .*\]", r"\1", text)
    text = text.replace(repr(MetricName).replace("typing.", ""), "metric")
    if "Literal[" in text and text.count("Literal[") == 1 and "dict" not in text:
        text = text.replace("Literal[", "one of [")
    return text.replace("NoneType", "None")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) else "(defaults)"
    return "null" if field.default is None else repr(field.default).strip("'")
