"""The promotion gate: decisions from metrics, and the records of decisions and alias moves.

No Airflow and no MLflow in here: :func:`evaluate_gates` and :func:`decide` are pure functions of metric
values and the gate configuration; :func:`decision_tags` and :func:`append_history` shape what the
registry hook records.

Gate configuration (the config file's ``evaluation`` section)::

    thresholds:  {metric: {min: x, max: y}}          # absolute bounds, either or both
    vs_champion: {metric: {min_delta: d}}            # least improvement over the champion
    slices:      {column: c, max_gap: {metric: g}}   # largest allowed gap between two slices

For ``rmse``, ``mae``, ``log_loss`` and ``expected_cost`` lower is better: the improvement is
``champion - challenger``; for the others it is ``challenger - champion`` (a custom metric says which,
``directions``). A negative ``min_delta`` tolerates a small loss. A metric that is missing, NaN or
infinite fails every gate that reads it; a custom metric whose function failed is a failed gate of its
own (``metric_error``), read or not.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.metrics import higher_is_better, is_finite_number, metric_names, slice_gap

FIRST_RUN_POLICIES = ("promote", "require_approval")
APPROVAL_MODES = ("auto", "manual")
HISTORY_TAG = "mlops.alias_history.{alias}"  # registered-model tag: JSON list, newest last
HISTORY_MAX_ENTRIES = 25
HISTORY_MAX_CHARS = 4900  # fits the 5000-character tag values of older MLflow servers
DECISION_PREFIX = "mlops.gate."
PREVIOUS_ALIAS = "previous_champion"
CHALLENGER_ALIAS = "challenger"  # a challenger in shadow (promotion.mode: shadow)
PROMOTION_MODES = ("direct", "shadow")
ROLLBACK_REQUEST_PREFIX = "mlops.rollback_request."  # + <alias>.<sha256 of the request key>


class GateConfigError(InvalidInputError):
    """The gate configuration is invalid (unknown metric, bad bound)."""


@dataclass
class GateResult:
    gate: str  # metric_error | threshold_min | threshold_max | vs_champion | slice_gap | robustness
    metric: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decision:
    decision: str  # "promote" | "refuse" | "await_approval"
    reason: str
    gates: list[GateResult] = field(default_factory=list)

    @property
    def all_passed(self) -> bool:
        return all(g.passed for g in self.gates)


def _number(value: Any, where: str) -> float:
    if not is_finite_number(value):
        raise GateConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _check_metric(metric: Any, task_type: str, where: str, extra: tuple[str, ...] = ()) -> str:
    names = metric_names(task_type) + extra
    if metric not in names:
        raise GateConfigError(
            f"{where}: unknown metric {metric!r} for {task_type}; expected one of {', '.join(names)}"
        )
    return str(metric)


def validate_config(
    task_type: str,
    thresholds: Mapping[str, Any] | None,
    vs_champion: Mapping[str, Any] | None,
    slices: Mapping[str, Any] | None,
    extra_metrics: tuple[str, ...] = (),
) -> None:
    """
    Raise GateConfigError naming the key at fault; returns None when the configuration is usable.
    ``extra_metrics``: the custom metric names (and ``expected_cost``) the gates may read too.
    """
    metric_names(task_type)
    for section, spec, allowed in (
        ("thresholds", thresholds, {"min", "max"}),
        ("vs_champion", vs_champion, {"min_delta"}),
    ):
        if spec is None:
            continue
        if not isinstance(spec, Mapping):
            raise GateConfigError(f"{section} must be a mapping of metric -> bounds, got {spec!r}")
        for metric, bounds in spec.items():
            _check_metric(metric, task_type, section, extra_metrics)
            if not isinstance(bounds, Mapping) or not bounds:
                raise GateConfigError(
                    f"{section}.{metric} must be a mapping with {sorted(allowed)}, got {bounds!r}"
                )
            unknown = set(bounds) - allowed
            if unknown:
                raise GateConfigError(
                    f"{section}.{metric}: unknown key(s) {sorted(unknown)}; allowed {sorted(allowed)}"
                )
            for key, value in bounds.items():
                _number(value, f"{section}.{metric}.{key}")
    if slices is not None:
        if not isinstance(slices, Mapping) or not isinstance(slices.get("column"), str):
            raise GateConfigError(
                f"slices must be {{column: <name>, max_gap: {{metric: gap}}}}, got {slices!r}"
            )
        unknown = set(slices) - {"column", "max_gap"}
        if unknown:
            raise GateConfigError(f"slices: unknown key(s) {sorted(unknown)}; allowed ['column', 'max_gap']")
        gaps = slices.get("max_gap") or {}
        if not isinstance(gaps, Mapping):
            raise GateConfigError(f"slices.max_gap must be a mapping of metric -> gap, got {gaps!r}")
        for metric, gap in gaps.items():
            _check_metric(metric, task_type, "slices.max_gap", extra_metrics)
            if _number(gap, f"slices.max_gap.{metric}") < 0:
                raise GateConfigError(f"slices.max_gap.{metric} must be >= 0, got {gap!r}")


def _missing(metric: str, value: Any, whose: str) -> str:
    if value is None:
        return f"{metric} of the {whose} is missing or not finite"
    return f"{metric} of the {whose} is {value!r}, not a finite number"


def evaluate_gates(
    challenger: Mapping[str, Any],
    *,
    champion: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    vs_champion: Mapping[str, Any] | None = None,
    slices: Mapping[str, Mapping[str, Any]] | None = None,
    max_gap: Mapping[str, Any] | None = None,
    directions: Mapping[str, bool] | None = None,
    metric_errors: Mapping[str, str] | None = None,
) -> list[GateResult]:
    """
    One result per configured check. ``champion=None`` means there is no champion: ``vs_champion``
    checks are not evaluated (the first-run policy decides). ``slices`` are the challenger's per-slice
    reports (from :func:`mlops_provider.core.metrics.slice_metrics`). ``directions``: whether higher is
    better, for custom metrics; ``metric_errors``: custom metrics whose function failed, and why.
    """
    results = [
        GateResult("metric_error", name, None, None, False, f"custom metric {name}: {error}")
        for name, error in (metric_errors or {}).items()
    ]
    results += _threshold_results(challenger, thresholds or {})
    if champion is not None:
        results += _champion_results(challenger, champion, vs_champion or {}, directions or {})
    return results + _slice_results(slices or {}, max_gap or {})


_BOUND_CHECKS: tuple[tuple[str, str, str, Callable[[float, float], bool]], ...] = (
    ("min", "threshold_min", ">=", lambda v, t: v >= t),
    ("max", "threshold_max", "<=", lambda v, t: v <= t),
)


def _threshold_results(challenger: Mapping[str, Any], thresholds: Mapping[str, Any]) -> list[GateResult]:
    results: list[GateResult] = []
    for metric, bounds in thresholds.items():
        value = challenger.get(metric)
        for key, gate, sign, ok in _BOUND_CHECKS:
            if key not in bounds:
                continue
            limit = float(bounds[key])
            if not is_finite_number(value):
                detail = _missing(metric, value, "challenger")
                results.append(GateResult(gate, metric, None, limit, False, detail))
                continue
            passed = ok(float(value), limit)
            detail = f"{metric} {float(value):.6g} {sign} {limit:g}: {passed}"
            results.append(GateResult(gate, metric, float(value), limit, passed, detail))
    return results


def _champion_results(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any],
    vs_champion: Mapping[str, Any],
    directions: Mapping[str, bool],
) -> list[GateResult]:
    results: list[GateResult] = []
    for metric, spec in vs_champion.items():
        min_delta = float(spec["min_delta"])
        new, old = challenger.get(metric), champion.get(metric)
        if not is_finite_number(new) or not is_finite_number(old):
            whose = "challenger" if not is_finite_number(new) else "champion"
            bad = new if whose == "challenger" else old
            results.append(
                GateResult("vs_champion", metric, None, min_delta, False, _missing(metric, bad, whose))
            )
            continue
        better = directions.get(metric, higher_is_better(metric))
        improvement = float(new) - float(old) if better else float(old) - float(new)
        passed = improvement >= min_delta
        direction = "higher" if better else "lower"
        detail = (
            f"{metric}: challenger {float(new):.6g} vs champion {float(old):.6g} ({direction} is better), "
            f"improvement {improvement:.6g} >= {min_delta:g}: {passed}"
        )
        results.append(GateResult("vs_champion", metric, improvement, min_delta, passed, detail))
    return results


def compare_to_champion(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any],
    vs_champion: Mapping[str, Any],
    directions: Mapping[str, bool] | None = None,
) -> list[GateResult]:
    """The ``vs_champion`` gates alone (the same rules as :func:`evaluate_gates`), e.g. on live metrics."""
    return _champion_results(challenger, champion, vs_champion, directions or {})


def _slice_results(slices: Mapping[str, Mapping[str, Any]], max_gap: Mapping[str, Any]) -> list[GateResult]:
    results: list[GateResult] = []
    for metric, gap_limit in max_gap.items():
        limit = float(gap_limit)
        gap, missing = slice_gap(slices, metric)
        if missing or gap is None:
            detail = (
                f"{metric} is not finite in slice(s) {', '.join(missing)}"
                if missing
                else f"fewer than two slices have {metric}"
            )
            results.append(GateResult("slice_gap", metric, gap, limit, False, detail))
            continue
        passed = gap <= limit
        detail = f"{metric} gap {gap:.6g} <= {limit:g}: {passed}"
        results.append(GateResult("slice_gap", metric, gap, limit, passed, detail))
    return results


def decide(
    gates: list[GateResult],
    *,
    has_champion: bool,
    first_run: str = "promote",
    approval: str = "auto",
) -> Decision:
    """Promote only when every gate passes; ask a human when configured (or on a guarded first run)."""
    if first_run not in FIRST_RUN_POLICIES:
        raise GateConfigError(f"first_run must be one of {', '.join(FIRST_RUN_POLICIES)}, got {first_run!r}")
    if approval not in APPROVAL_MODES:
        raise GateConfigError(f"approval must be one of {', '.join(APPROVAL_MODES)}, got {approval!r}")
    failed = [g for g in gates if not g.passed]
    if failed:
        reason = "; ".join(f"{g.gate} {g.metric}: {g.detail}" for g in failed)
        return Decision("refuse", f"gate(s) failed: {reason}", gates)
    checked = f"{len(gates)} gate(s) passed" if gates else "no gates configured"
    if approval == "manual":
        return Decision("await_approval", f"{checked}; manual approval required", gates)
    if not has_champion and first_run == "require_approval":
        return Decision("await_approval", f"{checked}; no champion yet and first_run=require_approval", gates)
    if not has_champion:
        return Decision("promote", f"{checked}; no champion yet (first_run=promote)", gates)
    return Decision("promote", f"{checked} against the champion", gates)


# -- records ------------------------------------------------------------------------------------


def decision_tags(summary: Mapping[str, Any]) -> dict[str, str]:
    """Model-version tags recording a gate decision (``mlops.gate.*``); values are strings."""
    tags = {
        f"{DECISION_PREFIX}decision": str(summary.get("decision")),
        f"{DECISION_PREFIX}reason": str(summary.get("reason", ""))[:4000],
        f"{DECISION_PREFIX}old_version": str(summary.get("old_version")),
        f"{DECISION_PREFIX}new_version": str(summary.get("new_version")),
        f"{DECISION_PREFIX}decided_at": str(summary.get("decided_at", "")),
        f"{DECISION_PREFIX}decided_by": str(summary.get("decided_by", "")),
        f"{DECISION_PREFIX}dag_run": str(summary.get("dag_run", "")),
        f"{DECISION_PREFIX}gates": json.dumps(summary.get("gates", []), default=str)[:4000],
    }
    if summary.get("challenger_metrics_source"):  # "evaluation" (evaluate's record) | "computed"
        tags[f"{DECISION_PREFIX}challenger_metrics_source"] = str(summary["challenger_metrics_source"])
    for key in ("forced_by", "force_reason"):  # a forced retrain: who triggered it and why
        if summary.get(key):
            tags[f"{DECISION_PREFIX}{key}"] = str(summary[key])[:4000]
    for gate in summary.get("gates", []):
        key = f"{DECISION_PREFIX}{gate['gate']}.{gate['metric']}"
        tags[key] = json.dumps(
            {"value": gate.get("value"), "threshold": gate.get("threshold"), "passed": gate.get("passed")}
        )
    return tags


def append_history(existing: str | None, entry: Mapping[str, Any]) -> str:
    """The history JSON with ``entry`` appended, oldest entries dropped to stay within bounds."""
    try:
        history = json.loads(existing) if existing else []
        if not isinstance(history, list):
            history = []
    except ValueError:
        history = []
    history.append(dict(entry))
    history = history[-HISTORY_MAX_ENTRIES:]
    text = json.dumps(history, default=str, separators=(",", ":"))
    while len(text) > HISTORY_MAX_CHARS and len(history) > 1:
        history = history[1:]
        text = json.dumps(history, default=str, separators=(",", ":"))
    return text


def history_entry(
    *, alias: str, from_version: Any, to_version: Any, why: str, who: str, action: str
) -> dict[str, Any]:
    return {
        "alias": alias,
        "action": action,
        "from": None if from_version is None else str(from_version),
        "to": str(to_version),
        "why": str(why if why is not None else "")[:300],
        "who": who,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def finite_or_none(value: Any) -> float | None:
    return float(value) if is_finite_number(value) else None


def jsonable_metrics(values: Mapping[str, Any]) -> dict[str, float | None]:
    return {
        k: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None) for k, v in values.items()
    }


@dataclass(frozen=True)
class AliasMove:
    """One alias move as recorded: which model and alias, from which version to which, why, who, how."""

    model_name: str
    alias: str
    origin: str | None
    target: str
    why: str
    who: str
    action: str

    @property
    def edge(self) -> tuple[str | None, str, str]:
        return (self.origin, self.target, self.action)


def request_tag(alias: str, request_key: str) -> str:
    """The registered-model tag recording rollback request ``request_key`` of ``alias``."""
    return f"{ROLLBACK_REQUEST_PREFIX}{alias}.{hashlib.sha256(request_key.encode()).hexdigest()[:20]}"


def json_of(raw: str | None, kind: type) -> Any:
    """``raw`` parsed when it is a JSON ``kind`` (list or dict), else ``None``."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


def rollback_summary(
    model_name: str, alias: str, old: Any, new: Any, reason: str, decision: str
) -> dict[str, Any]:
    keys = ("decision", "gates", "old_version", "new_version", "reason", "alias", "model_name")
    return dict(zip(keys, (decision, [], old, new, reason, alias, model_name), strict=True))
