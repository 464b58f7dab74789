"""The robustness gate: the challenger scored on a noisy, partly blanked copy of its holdout. No Airflow.

``evaluation.robustness: {noise: 0.1, missing_rate: 0.05, max_drop: {f1_macro: 0.05}, seed: 42}``:
every numeric feature gets Gaussian noise with ``noise`` times the column's standard deviation on the
holdout, then ``missing_rate`` of all feature values are blanked (fixed seed). A metric whose value
drops (in its worse direction) by more than its bound fails the gate; so does a metric that is not a
finite number on the perturbed copy, and a model that cannot score it at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.gate import GateResult
from mlops_provider.core.metrics import is_finite_number

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.core.metric_plan import MetricPlan

KEY = "evaluation.robustness"
MAX_NOISE = 10.0
MAX_MISSING_RATE = 0.9


def _rate(raw: Mapping[str, Any], key: str, upper: float) -> float:
    value = raw.get(key, 0.0)
    if not is_finite_number(value) or not 0 <= value <= upper:
        raise InvalidInputError(f"{KEY}.{key} must be a number from 0 to {upper:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RobustnessSpec:
    noise: float
    missing_rate: float
    max_drop: Mapping[str, float] = field(default_factory=dict)
    seed: int = 42

    @classmethod
    def from_config(cls, raw: Any, metric_names: tuple[str, ...]) -> RobustnessSpec | None:
        """The spec for a config value (None: no robustness gate); an error names the key at fault."""
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise InvalidInputError(f"{KEY} must be {{noise, missing_rate, max_drop: {{metric: drop}}}}")
        unknown = set(raw) - {"noise", "missing_rate", "max_drop", "seed"}
        if unknown:
            raise InvalidInputError(f"{KEY}: unknown key(s) {sorted(map(str, unknown))}")
        noise, missing = _rate(raw, "noise", MAX_NOISE), _rate(raw, "missing_rate", MAX_MISSING_RATE)
        if noise == 0 and missing == 0:
            raise InvalidInputError(f"{KEY}: set noise or missing_rate above 0 (else nothing is perturbed)")
        seed = raw.get("seed", 42)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
            raise InvalidInputError(f"{KEY}.seed must be an integer from 0 to 2**32-1, got {seed!r}")
        drops = raw.get("max_drop")
        if not isinstance(drops, Mapping) or not drops:
            raise InvalidInputError(f"{KEY}.max_drop must map metrics to the largest allowed drop")
        for metric, drop in drops.items():
            if metric not in metric_names:
                raise InvalidInputError(
                    f"{KEY}.max_drop.{metric}: unknown metric; expected one of {', '.join(metric_names)}"
                )
            if not is_finite_number(drop) or drop < 0:
                raise InvalidInputError(f"{KEY}.max_drop.{metric} must be a number >= 0, got {drop!r}")
        return cls(noise, missing, {str(m): float(d) for m, d in drops.items()}, seed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "noise": self.noise,
            "missing_rate": self.missing_rate,
            "max_drop": dict(self.max_drop),
            "seed": self.seed,
        }


def perturb(X: pd.DataFrame, spec: RobustnessSpec) -> pd.DataFrame:
    """A copy of ``X`` with noise on its numeric columns and ``missing_rate`` of its values blanked."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(spec.seed)
    noisy = X.copy()
    for column in X.columns:
        values = X[column]
        if spec.noise and pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = values.astype(float)
            spread = float(numbers.std(ddof=0)) if numbers.notna().any() else 0.0
            if np.isfinite(spread) and spread > 0:
                noisy[column] = numbers + rng.normal(0.0, spec.noise * spread, len(numbers))
    if spec.missing_rate:
        blank = rng.random(noisy.shape) < spec.missing_rate
        for i, column in enumerate(noisy.columns):
            if blank[:, i].any():
                if pd.api.types.is_integer_dtype(noisy[column]) or pd.api.types.is_bool_dtype(noisy[column]):
                    noisy[column] = noisy[column].astype(float if noisy[column].dtype != bool else object)
                noisy[column] = noisy[column].mask(blank[:, i])
    return noisy


def robustness_results(
    clean: Mapping[str, Any],
    perturbed: Mapping[str, Any] | None,
    spec: RobustnessSpec,
    directions: Mapping[str, bool],
    error: str = "",
) -> list[GateResult]:
    """One ``robustness`` result per bounded metric: the drop from ``clean`` to ``perturbed``."""
    results: list[GateResult] = []
    setting = f"noise {spec.noise:g}, missing_rate {spec.missing_rate:g}, seed {spec.seed}"
    for metric, bound in spec.max_drop.items():
        old, new = clean.get(metric), (perturbed or {}).get(metric)
        if error or not is_finite_number(old) or not is_finite_number(new):
            why = error or f"{metric} is not a finite number (clean {old!r}, perturbed {new!r})"
            results.append(GateResult("robustness", metric, None, bound, False, f"{setting}: {why}"))
            continue
        better = directions.get(metric, True)
        drop = float(old) - float(new) if better else float(new) - float(old)
        passed = drop <= bound
        detail = f"{metric} {float(old):.6g} -> {float(new):.6g} ({setting}), drop {drop:.6g} <= {bound:g}: {passed}"
        results.append(GateResult("robustness", metric, drop, bound, passed, detail))
    return results


def score_robustness(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    clean: Mapping[str, Any],
    spec: RobustnessSpec,
    plan: MetricPlan,
) -> tuple[dict[str, Any], list[GateResult]]:
    """The challenger's metrics on the perturbed holdout (with the settings) and the gate results."""
    from mlops_provider.core.metrics import compute_metrics

    record: dict[str, Any] = {**spec.as_dict(), "rows": len(X)}
    try:
        report = compute_metrics(model, perturb(X, spec), y, plan.task_type, plan)
    except Exception as err:  # a model that cannot score noisy or missing inputs is not robust
        error = f"the model cannot score the perturbed holdout: {type(err).__name__}: {str(err)[:300]}"
        record["error"] = error
        return record, robustness_results(clean, None, spec, plan.directions, error)
    record["metrics"] = dict(report.values)
    return record, robustness_results(clean, report.values, spec, plan.directions)
