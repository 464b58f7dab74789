"""The model config schema (``dags/configs/<model>.yaml``): pydantic models, light to import.

The sections live in :mod:`.schema_sections`; this module assembles them into :class:`ModelConfig`, holds
the rules across sections and the key reference (the README table), and re-exports every section name.
"""

from __future__ import annotations

import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field, field_validator, model_validator

from mlops_provider.core.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from mlops_provider.templates.schema_notify import NotifySection
from mlops_provider.templates.schema_sections import (
    CRON_PRESETS,
    NAME_PATTERN,
    Bound,
    CategoricalMethod,
    DataSection,
    Delta,
    DriftSection,
    EvaluationSection,
    FeedbackSection,
    MaxDrop,
    MetricName,
    ModelSection,
    NumericMethod,
    PromotionSection,
    ScoringSection,
    Section,
    SliceSection,
    TrainingSection,
    ValidationSection,
    check_schedule,
)

__all__ = [
    "CLASSIFICATION_METRICS",
    "CRON_PRESETS",
    "NAME_PATTERN",
    "REGRESSION_METRICS",
    "RESERVED_TAGS",
    "Bound",
    "CategoricalMethod",
    "DataSection",
    "Delta",
    "DriftSection",
    "EvaluationSection",
    "FeedbackSection",
    "MaxDrop",
    "MetricName",
    "ModelConfig",
    "ModelSection",
    "NumericMethod",
    "PromotionSection",
    "ScoringSection",
    "SliceSection",
    "TrainingSection",
    "ValidationSection",
    "check_schedule",
    "has_glob",
    "is_templated",
    "reference_rows",
]

RESERVED_TAGS = frozenset({"mlops", "retrain", "drift", "scoring", "rollback", "performance"})


class ModelConfig(Section):
    """
    One model: its DAGs (``<name>_retrain``, ``<name>_drift_monitor``, ``<name>_batch_score``,
    ``<name>_rollback``, and ``<name>_performance_monitor`` when ``feedback`` is set).

    A rule across sections raises ``"<key>: <problem>"``; the loader reports it under that key.
    """

    model: ModelSection
    data: DataSection
    validation: ValidationSection | None = Field(None, description="Omit to skip data validation.")
    training: TrainingSection
    evaluation: EvaluationSection
    promotion: PromotionSection = Field(default_factory=PromotionSection)
    drift: DriftSection = Field(default_factory=DriftSection)
    scoring: ScoringSection = Field(default_factory=ScoringSection)
    feedback: FeedbackSection | None = Field(
        None, description="Omit for no performance monitor (ground truth that arrives late: the closed loop)."
    )
    schedule: str | None = Field(
        "0 2 * * *",
        description="Nightly retraining (cron); the retrain DAG also runs on drift and on a performance event.",
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Extra DAG tags (not `mlops`, `model:...` or the DAG kinds: the factory sets those).",
    )
    owner: str = Field("mlops", description="DAG owner shown in the UI.")
    retries: int = Field(1, ge=0, le=10, description="Task retries for transient faults.")
    retry_delay_seconds: int = Field(30, ge=0, le=3600, description="First retry delay (doubles per retry).")
    mlflow_conn_id: str = Field("mlflow_default", description="Airflow connection of type mlflow.")
    notify: NotifySection | None = Field(
        None, description="Omit for no notifications: events told through Airflow notifiers (e-mail, Slack)."
    )

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

    def _metric_names(self) -> tuple[str, ...]:
        """The metrics this model's gates may read: its task's, ``expected_cost`` and custom ones."""
        from mlops_provider.core.metric_plan import MetricPlan
        from mlops_provider.core.robustness import RobustnessSpec

        evaluation = self.evaluation
        custom = {name: spec.model_dump() for name, spec in evaluation.custom_metrics.items()}
        plan = MetricPlan.build(self.model.task, custom, evaluation.cost_matrix)
        if evaluation.robustness is not None:
            RobustnessSpec.from_config(evaluation.robustness.model_dump(), plan.names)
        return plan.names

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> ModelConfig:
        allowed = self._metric_names()
        used: list[tuple[str, str]] = [("evaluation.primary_metric", self.evaluation.primary_metric)]
        used += [(f"evaluation.thresholds.{m}", m) for m in self.evaluation.thresholds]
        used += [(f"evaluation.vs_champion.{m}", m) for m in self.evaluation.vs_champion]
        if self.evaluation.slices:
            used += [(f"evaluation.slices.max_gap.{m}", m) for m in self.evaluation.slices.max_gap]
        if self.feedback:
            used += [(f"feedback.degrade.{m}", m) for m in self.feedback.degrade]
        if self.evaluation.robustness:
            used += [(f"evaluation.robustness.max_drop.{m}", m) for m in self.evaluation.robustness.max_drop]
        for key, metric in used:
            if metric not in allowed:
                raise ValueError(
                    f"{key}: metric {metric!r} does not apply to {self.model.task}; use one of {', '.join(allowed)}"
                )
        if self.data.features and self.data.target in self.data.features:
            raise ValueError(f"data.features: the target {self.data.target!r} cannot also be a feature")
        return self

    @model_validator(mode="after")
    def _closed_loop_fits(self) -> ModelConfig:
        """The feedback, scoring and promotion keys agree with each other and with ``data``."""
        id_column, feedback = self.scoring.id_column, self.feedback
        if self.promotion.mode == "shadow" and feedback is None:
            raise ValueError("promotion.mode: shadow needs feedback: a shadow challenger is judged on labels")
        if feedback is not None and id_column is None:
            raise ValueError("scoring.id_column: required when feedback is set (late labels join on it)")
        if id_column is not None:
            from mlops_provider.core.feedback import RESERVED_COLUMNS

            if id_column == self.data.target:
                raise ValueError(f"scoring.id_column: {id_column!r} is the target (data.target)")
            if not self.data.features:  # else every column but the target is trained on, the id too
                raise ValueError(
                    "data.features: required when scoring.id_column is set (an id is no feature)"
                )
            if id_column in self.data.features:
                raise ValueError(
                    f"scoring.id_column: {id_column!r} is listed in data.features; an id is no feature"
                )
            if id_column in RESERVED_COLUMNS:
                raise ValueError(
                    f"scoring.id_column: {id_column!r} is a column the prediction files use themselves "
                    f"({', '.join(sorted(RESERVED_COLUMNS))})"
                )
        label_column = feedback.label_column if feedback else None
        if label_column is not None:
            if self.data.features and label_column in self.data.features:
                raise ValueError(f"feedback.label_column: {label_column!r} is a feature (data.features)")
            if label_column == id_column:
                raise ValueError(f"feedback.label_column: {label_column!r} is also scoring.id_column")
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
            if nested is not None:
                if field.description:
                    rows.append((key, "section", _default(field), field.description))
                walk(nested, key + ".")
                continue
            rows.append((key, _type_name(annotation), _default(field), field.description or ""))

    walk(ModelConfig, "")
    return rows


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The section a key holds (itself or optional); a mapping of sections is a value, not a section."""
    if get_origin(annotation) is dict:
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _type_name(annotation: Any) -> str:
    """``str | None``, ``dict[metric, Bound]``, ``one of ['fail', 'warn']``: constraints left out."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation == MetricName:
        return "metric"
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return f"one of {list(args)!r}"
    if origin in (Union, UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) else "(defaults)"
    return "null" if field.default is None else repr(field.default).strip("'")
