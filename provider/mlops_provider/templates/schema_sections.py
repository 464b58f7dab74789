"""The model config's sections and their vocabulary (:mod:`.schema` assembles them): pydantic only.

Light to import: the metric names and drift defaults come from core's light modules; anything heavier
(croniter, core.data_scope, core.estimators, core.feedback) is imported inside the validator that needs it.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, TypeAlias, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# The vocabulary and defaults are core's (light modules: no numpy/pandas at import).
from mlops_provider.core.data_sample import MAX_ROWS_CEILING
from mlops_provider.core.drift import (
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_DRIFT_SHARE,
    DEFAULT_MAX_ROWS,
    DEFAULT_MIN_ROWS,
    DEFAULT_NUMERIC_METHOD,
)
from mlops_provider.core.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

BUILT_IN_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
# A built-in metric, `expected_cost` (cost_matrix) or a custom metric's name: ModelConfig checks which.
MetricName: TypeAlias = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
NumericMethod: TypeAlias = Literal["auto", "wasserstein", "ks"]
CategoricalMethod: TypeAlias = Literal["auto", "jensenshannon", "chisquare"]
MAPPED_OUTPUT = ".mlops/predictions/{{ model_name }}/{{ run_id }}"
OUTPUT_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$"
CRON_PRESETS = frozenset(
    {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"}
)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


# A column name or location the user must spell out: an empty or blank string is refused, not ignored.
Text: TypeAlias = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_not_blank)]
# Counts are whole numbers: a YAML `yes` (True), 28.0 or "28" is refused rather than coerced.
Count: TypeAlias = Annotated[int, Field(strict=True)]
Rows: TypeAlias = Annotated[int, Field(strict=True, ge=1, le=MAX_ROWS_CEILING)]  # a row limit
PoolName: TypeAlias = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$")
]  # a pool or queue name: no blanks


class Section(BaseModel):
    """A config section: unknown keys are errors, values are frozen."""

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


class ModelSection(Section):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="Registered model name in MLflow; also the DAG id prefix."
    )
    task: Literal["classification", "regression"] = Field(description="classification | regression.")
    description: str | None = Field(
        None, max_length=4000, description="Intended use, shown on the model card and in the registry."
    )
    owners: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=50,
        description="Owners (names or e-mail addresses) on the model card.",
    )
    limitations: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        default_factory=list, max_length=50, description="Known limits stated on the model card."
    )


class DataSection(Section):
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


class ValidationSection(Section):
    suite: str = Field(
        description="Great Expectations 1.x expectation suite (JSON file, relative to the YAML)."
    )
    on_failure: Literal["fail", "warn"] = Field("fail", description="fail (task fails, no retry) | warn.")


class TrainingSection(Section):
    estimator: Annotated[str, Field(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")] = Field(
        description="Import path of an estimator class in sklearn, xgboost or lightgbm (the last two need "
        "the [xgboost] / [lightgbm] extra), or of a factory function in allowed_modules."
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
    queue: PoolName | None = Field(None, description="Celery queue of the training task (e.g. training).")
    pool: PoolName | None = Field(None, description="Airflow pool of the training task (create it first).")
    pool_slots: Count = Field(1, ge=1, le=10_000, description="Pool slots the training task takes.")
    max_rows: Rows | None = Field(None, description="Most rows to train on (null: no limit, all in memory).")
    over_max_rows: Literal["fail", "sample"] = Field(
        "fail",
        description="Above max_rows: fail, or sample (deterministic, seed random_state, in lineage tags).",
    )
    allow_pickle: bool = Field(
        False,
        description="Opt in to pickle: log models skops cannot serialise with cloudpickle, and load pickled "
        "models (they can run code: a trusted registry only).",
    )
    trusted_types: list[str] = Field(
        default_factory=list,
        description="skops types a model may hold besides scikit-learn, numpy, scipy and the XGBoost/"
        "LightGBM wrapper types (exact names, or prefixes ending in '.').",
    )

    @field_validator("allowed_modules")
    @classmethod
    def _own_modules(cls, value: list[str]) -> list[str]:
        from mlops_provider.core.estimators import check_allowed_modules

        try:
            return list(check_allowed_modules(value))
        except ValueError as err:
            raise ValueError(str(err).removeprefix("training.allowed_modules: ")) from None


class Bound(Section):
    min: float | None = Field(None, description="Lowest acceptable value.")
    max: float | None = Field(None, description="Highest acceptable value.")

    @model_validator(mode="after")
    def _one_bound(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Delta(Section):
    min_delta: float = Field(
        0.0,
        description="Least improvement over the champion, in the better direction (negative tolerates a loss).",
    )


class SliceSection(Section):
    column: str = Field(description="Column whose values define slices (fairness / robustness gate).")
    max_gap: dict[MetricName, float] = Field(
        default_factory=dict, description="Largest allowed gap of a metric between the best and worst slice."
    )


class CustomMetricSection(Section):
    function: Annotated[str, Field(pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")] = Field(
        description="`module:function` in the DAGs folder: (y_true, y_pred, y_proba, X) -> float."
    )
    greater_is_better: bool = Field(True, description="Direction for vs_champion, degrade and robustness.")


class RobustnessSection(Section):
    noise: float = Field(0.0, ge=0, le=10, description="Gaussian noise, times each numeric feature's std.")
    missing_rate: float = Field(0.0, ge=0, le=0.9, description="Share of feature values blanked.")
    max_drop: dict[MetricName, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        description="{metric: largest allowed drop} on the perturbed holdout."
    )
    seed: Count = Field(42, ge=0, lt=2**32, description="Seed of the noise and the blanking.")


class EvaluationSection(Section):
    primary_metric: MetricName = Field(description="Headline metric.")
    custom_metrics: dict[MetricName, CustomMetricSection] = Field(
        default_factory=dict,
        max_length=20,
        description="Business metrics: {name: {function, greater_is_better}}; usable in every gate.",
    )
    cost_matrix: dict[str, dict[str, Annotated[float, Field(allow_inf_nan=False)]]] | None = Field(
        None,
        description="{actual_class: {predicted_class: cost}} (classification): metric expected_cost, lower "
        "is better; a missing cell costs 0.",
    )
    robustness: RobustnessSection | None = Field(
        None, description="Robustness gate: the challenger on a noisy, partly blanked holdout copy."
    )
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


class PromotionSection(Section):
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
    mode: Literal["direct", "shadow"] = Field(
        "direct",
        description="direct: the gate moves the alias. shadow (needs feedback): while a champion exists, a "
        "passing challenger takes @challenger and is scored beside it, unserved; the performance monitor "
        "promotes or refuses it on labelled live rows.",
    )
    shadow_min_labels: Count = Field(
        500, ge=1, description="Labelled rows both models scored before a shadow challenger is judged."
    )


class DriftSection(Section):
    schedule: str | None = Field("@daily", description="When the drift monitor runs (cron or preset).")
    drift_share: float = Field(
        DEFAULT_DRIFT_SHARE, gt=0, le=1, description="Share of drifted columns that means dataset drift."
    )
    min_rows: int = Field(DEFAULT_MIN_ROWS, ge=1, description="Fewer rows: insufficient_data, never drift.")
    max_rows: Rows | None = Field(
        DEFAULT_MAX_ROWS, description="Above it, each frame is a deterministic sample of it (null: all rows)."
    )
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


class ScoringSection(Section):
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
    id_column: Text | None = Field(
        None,
        description="Input column kept in every prediction file; late labels join on it (required with "
        "feedback).",
    )
    partitions_per_task: Count | None = Field(
        None,
        ge=1,
        description="Map scoring over the batch's files (a folder, partition folders or a glob): one task "
        "per this many files, on any worker; the output is a folder published by a manifest.",
    )
    queue: PoolName | None = Field(None, description="Celery queue of the scoring task(s) (e.g. scoring).")

    @model_validator(mode="before")
    @classmethod
    def _mapped_output_default(cls, data: Any) -> Any:
        """With partitions_per_task and no output: the default output as a folder (no suffix)."""
        if isinstance(data, dict) and data.get("partitions_per_task") is not None and "output" not in data:
            return {**data, "output": MAPPED_OUTPUT}
        return data

    @model_validator(mode="after")
    def _mapped_output_is_a_folder(self) -> ScoringSection:
        if self.partitions_per_task is not None and self.output.lower().endswith(OUTPUT_SUFFIXES):
            raise ValueError(
                f"output {self.output!r} names a file, but partitions_per_task writes a folder: "
                "drop the file suffix"
            )
        return self

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)


class MaxDrop(Section):
    max_drop: float = Field(
        ge=0,
        allow_inf_nan=False,
        description="Largest drop from the holdout value, in the worse direction and the metric's units.",
    )


class FeedbackSection(Section):
    """Ground truth that arrives late, and the performance monitor that judges the champion on it."""

    labels: Text = Field(
        description="Where label files land: path, glob or URI, relative to the YAML; Jinja allowed. Each "
        "holds scoring.id_column and the label column."
    )
    label_column: Text | None = Field(
        None, description="Label column in the label files (default: data.target)."
    )
    schedule: str | None = Field("@daily", description="When the performance monitor runs (cron or preset).")
    window_days: Count = Field(
        28,
        ge=1,
        le=3660,
        description="Batches whose scoring date (the scoring run's logical date) is in the N days up to the "
        "monitor run's date.",
    )
    min_labels: Count = Field(
        200, ge=1, description="Fewer labelled rows: insufficient_labels, never an alarm."
    )
    degrade: dict[MetricName, MaxDrop] = Field(
        default_factory=dict,
        description="Live metric vs the champion's own holdout value when it was promoted: {metric: "
        "{max_drop}}; a larger drop is degraded.",
    )
    rollback: Literal["auto", "off"] = Field(
        "off",
        description="auto: when @previous_champion, scored in shadow, beats the champion on the same labelled "
        "rows (vs_champion rules with no tolerance for a loss, strictly on the primary metric), the monitor "
        "moves the champion back to it; off (default): never, a person opts in.",
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)
