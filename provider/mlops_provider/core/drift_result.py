"""The result of a drift check: each column's drift and the dataset decision, with the small JSON summary
that goes to XCom. No Airflow. Computed by :func:`mlops_provider.core.drift.compute_drift`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ColumnDrift:
    """The drift of one column."""

    column: str
    kind: str
    method: str | None
    threshold: float | None
    score: float | None
    drifted: bool
    status: str
    n_reference: int
    n_current: int
    reason: str | None = None
    bucketed: bool = False

    def brief(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "score": round(self.score, 6) if self.score is not None and math.isfinite(self.score) else None,
            "method": self.method,
            "drifted": self.drifted,
            "status": self.status,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.bucketed:
            out["bucketed"] = True
        return out


@dataclass(frozen=True)
class DriftSample:
    """The rows a decision was computed on when the data was above ``max_rows``: each frame's sample
    size and true row count, and the seed (:mod:`mlops_provider.core.data_sample`)."""

    reference_rows: int
    reference_total: int
    current_rows: int
    current_total: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": {"rows": self.reference_rows, "of": self.reference_total},
            "current": {"rows": self.current_rows, "of": self.current_total},
            "seed": self.seed,
        }

    def note(self) -> str:
        return (
            f"The drift decision was computed on a deterministic sample (seed {self.seed}) of "
            f"{self.reference_rows} of {self.reference_total} reference rows and {self.current_rows} of "
            f"{self.current_total} current rows."
        )


@dataclass
class DriftResult:
    """The drift of a dataset: the decision and every column's result."""

    status: str
    drift_share: float | None
    threshold_share: float
    n_reference: int
    n_current: int
    min_rows: int
    numeric_method: str
    categorical_method: str
    columns: list[ColumnDrift] = field(default_factory=list)
    reason: str | None = None
    sample: DriftSample | None = None  # set when the decision used a sample (n_* stay the true counts)

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.status == "drift"]

    @property
    def evaluated_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.status in ("drift", "no_drift")]

    def column(self, name: str) -> ColumnDrift:
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(name)

    def summary(self, max_columns: int = 100) -> dict[str, Any]:
        """A small JSON-able summary; at most ``max_columns`` columns, drifted ones first."""
        ordered = sorted(self.columns, key=lambda c: (c.status != "drift", c.column))
        shown = ordered[:max_columns]
        out: dict[str, Any] = {
            "status": self.status,
            "drift_share": None if self.drift_share is None else round(self.drift_share, 6),
            "threshold_share": self.threshold_share,
            "drifted_columns": self.drifted_columns[:max_columns],
            "n_evaluated": len(self.evaluated_columns),
            "columns": {c.column: c.brief() for c in shown},
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "numeric_method": self.numeric_method,
            "categorical_method": self.categorical_method,
        }
        if len(ordered) > max_columns:
            out["columns_truncated"] = len(ordered) - max_columns
        if self.reason:
            out["reason"] = self.reason
        out["sample"] = self.sample.to_dict() if self.sample else None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "drifted_columns": self.drifted_columns,
            "sample": self.sample.to_dict() if self.sample else None,
        }
