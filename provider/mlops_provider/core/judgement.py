"""The performance monitor's judgement: status, the one action it takes, and why. No Airflow, no MLflow.

:func:`judge` reads the champion's live numbers, its holdout numbers and the paired comparisons with
``@previous_champion`` and ``@challenger`` (:func:`mlops_provider.core.feedback.paired_metrics`);
:func:`check_settings` checks the monitor's arguments; :func:`live_decision` shapes a shadow
challenger's promotion or refusal like a gate decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.feedback import clip, clip_text
from mlops_provider.core.gate import (
    CHALLENGER_ALIAS,
    PREVIOUS_ALIAS,
    PROMOTION_MODES,
    GateResult,
    compare_to_champion,
    json_of,
)
from mlops_provider.core.metrics import TASK_TYPES, higher_is_better, is_finite_number, metric_names
from mlops_provider.core.monitoring import finite, iso_utc

if TYPE_CHECKING:
    from mlops_provider.core.metric_plan import MetricPlan

PREVIOUS = PREVIOUS_ALIAS
CHALLENGER = CHALLENGER_ALIAS


# -- the monitor's judgement --------------------------------------------------------------------


@dataclass
class Judgement:
    """What a performance check concludes: status, the one action it takes, and why."""

    status: str  # ok | degraded | insufficient_labels
    action: str = "none"
    reason: str = ""
    degrade: list[GateResult] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)  # the live vs_champion rules of the action
    target_version: str | None = None  # the version an alias move goes to
    paired_rows: int = 0
    event: bool = False  # emit the performance Asset event (the champion degraded and stays)


def _rules(vs_champion: Mapping[str, Any], primary: str, tolerate: bool = True) -> dict[str, Any]:
    """The vs_champion rules; without any, the primary metric must not be worse. Without ``tolerate``
    a negative ``min_delta`` counts as 0: undoing a promotion needs evidence, not tolerance."""
    rules = dict(vs_champion) if vs_champion else {primary: {"min_delta": 0.0}}
    if tolerate:
        return rules
    return {m: {"min_delta": max(0.0, float(spec["min_delta"]))} for m, spec in rules.items()}


def _strictly_better(
    new: Mapping[str, Any], old: Mapping[str, Any], metric: str, directions: Mapping[str, bool]
) -> bool:
    a, b = finite(new.get(metric)), finite(old.get(metric))
    if a is None or b is None:
        return False
    return a > b if directions.get(metric, higher_is_better(metric)) else a < b


def _compare(
    paired: Mapping[str, Any],
    other: str,
    alias: str,
    vs_champion: Mapping[str, Any],
    primary: str,
    tolerate: bool = True,
    directions: Mapping[str, bool] | None = None,
) -> list[GateResult]:
    rules = _rules(vs_champion, primary, tolerate)
    return compare_to_champion(paired.get(other) or {}, paired.get(alias) or {}, rules, directions)


def degradation(
    live: Mapping[str, float | None],
    holdout: Mapping[str, float | None],
    degrade: Mapping[str, Mapping[str, float]],
    directions: Mapping[str, bool] | None = None,
) -> list[GateResult]:
    """
    One ``degrade`` gate per metric of ``degrade`` (``{metric: {max_drop: x}}``): the drop from the
    holdout value to the live value in the worse direction must be ``<= max_drop``. A metric missing or
    not finite on either side passes, saying so: no alarm without evidence.
    """
    results: list[GateResult] = []
    for metric, spec in degrade.items():
        max_drop = spec.get("max_drop") if isinstance(spec, Mapping) else None
        if not is_finite_number(max_drop):
            raise InvalidInputError(
                f"feedback.degrade.{clip_text(str(metric))}.max_drop must be a number, got {clip(spec)}"
            )
        max_drop = float(max_drop)
        now, before = live.get(metric), holdout.get(metric)
        if not is_finite_number(now) or not is_finite_number(before):
            whose, value = ("live", now) if not is_finite_number(now) else ("holdout", before)
            detail = f"{metric} could not be computed on the {whose} data ({clip(value)}): not checked"
            results.append(GateResult("degrade", metric, None, max_drop, True, detail))
            continue
        better = (directions or {}).get(metric, higher_is_better(metric))
        drop = float(before) - float(now) if better else float(now) - float(before)
        passed = drop <= max_drop or math.isclose(drop, max_drop)  # 0.85 - 0.80 is 0.0500...04
        detail = (
            f"{metric}: live {float(now):.6g} vs holdout {float(before):.6g} "
            f"({'higher' if better else 'lower'} is better), drop {drop:.6g} <= {max_drop:g}: {passed}"
        )
        results.append(GateResult("degrade", metric, drop, max_drop, passed, detail))
    return results


def judge(
    *,
    alias: str,
    champion: Mapping[str, Any] | None,
    holdout: Mapping[str, Any],
    paired_previous: Mapping[str, Any] | None,
    paired_challenger: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
) -> Judgement:
    """
    ``champion``: the champion's live entry (``{"version", "labels", "metrics"}``); ``paired_*``:
    :func:`~mlops_provider.core.feedback.paired_metrics` of the champion with ``previous_champion`` /
    ``challenger`` (``None`` when not scored); ``settings``: ``min_labels``, ``shadow_min_labels``,
    ``degrade``, ``vs_champion``, ``primary_metric``, ``rollback`` (auto|off), ``mode`` (direct|shadow).

    A rollback (previous champion better on the same labelled rows, by the vs_champion rules with no
    tolerance for a loss, and strictly on the primary metric) comes first, then a shadow challenger's promotion or refusal; a
    degraded champion that stays (no rollback, no promotion) gets a performance event. Fewer labels
    than the minimum never move an alias and never raise an event.
    """
    labels = int((champion or {}).get("labels") or 0)
    if champion is None or labels < int(settings["min_labels"]):
        found = Judgement(
            "insufficient_labels",
            reason=f"{labels} labelled row(s) for @{alias}, fewer than min_labels {settings['min_labels']}",
        )
        return _challenger_step(found, alias, paired_challenger, settings) if champion else found
    directions = settings.get("directions") or {}
    degrade = degradation(champion.get("metrics") or {}, holdout, settings["degrade"], directions)
    dropped = [g for g in degrade if not g.passed]
    status = "degraded" if dropped else "ok"
    found = Judgement(status, degrade=degrade, reason=_status_reason(alias, champion, labels, dropped))
    if (
        settings["rollback"] == "auto"
        and paired_previous
        and paired_previous.get("rows", 0) >= int(settings["min_labels"])
    ):
        rules, primary = settings["vs_champion"], settings["primary_metric"]
        gates = _compare(paired_previous, PREVIOUS, alias, rules, primary, False, directions)
        better = _strictly_better(
            paired_previous.get(PREVIOUS) or {}, paired_previous.get(alias) or {}, primary, directions
        )
        if gates and all(g.passed for g in gates) and better:
            found.action, found.gates, found.paired_rows = "rollback", gates, int(paired_previous["rows"])
            found.target_version = str((paired_previous.get("versions") or {}).get(PREVIOUS))
            found.reason += f"; @{PREVIOUS} (version {found.target_version}) beats it on the same {found.paired_rows} labelled rows: rolled back"
            return found
    found = _challenger_step(found, alias, paired_challenger, settings)
    if dropped and found.action != "promote":  # a refused challenger leaves the degraded champion
        found.event = True
        found.action = "performance_event" if found.action == "none" else found.action
        found.reason += "; performance event emitted (the retrain DAG runs on it)"
    return found


def _status_reason(alias: str, champion: Mapping[str, Any], labels: int, dropped: list[GateResult]) -> str:
    version = champion.get("version")
    if not dropped:
        return f"@{alias} (version {version}) holds up on {labels} labelled row(s)"
    details = "; ".join(g.detail for g in dropped)
    return f"@{alias} (version {version}) degraded on {labels} labelled row(s): {details}"


def _challenger_step(
    found: Judgement, alias: str, paired: Mapping[str, Any] | None, settings: Mapping[str, Any]
) -> Judgement:
    """In shadow mode, promote or refuse ``@challenger`` once it has enough labelled rows shared with
    the champion; until then it stays in shadow."""
    if settings["mode"] != "shadow" or not paired:
        return found
    rows, needed = int(paired.get("rows") or 0), int(settings["shadow_min_labels"])
    version = str((paired.get("versions") or {}).get(CHALLENGER))
    if rows < needed:
        found.reason += (
            f"; @{CHALLENGER} (version {version}) stays in shadow: {rows} of {needed} labelled rows"
        )
        return found
    rules, primary = settings["vs_champion"], settings["primary_metric"]
    gates = _compare(paired, CHALLENGER, alias, rules, primary, True, settings.get("directions"))
    found.gates, found.paired_rows, found.target_version = gates, rows, version
    if all(g.passed for g in gates):
        found.action = "promote"
        found.reason += f"; @{CHALLENGER} (version {version}) passes the vs_champion rules on {rows} labelled live rows: promoted"
    else:
        failed = "; ".join(g.detail for g in gates if not g.passed)
        found.action = "refuse_challenger"
        found.reason += (
            f"; @{CHALLENGER} (version {version}) fails on {rows} labelled live rows ({failed}): refused"
        )
    return found


# -- arguments and records -------------------------------------------------------------------------

ROLLBACK_MODES = ("auto", "off")


def _count(value: Any, name: str, low: int, high: int) -> int:
    text = value.strip() if isinstance(value, str) else value
    try:
        number = int(text) if isinstance(text, str) and text.lstrip("-").isdigit() else text
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise InvalidInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return number


def _rule_map(value: Any, name: str, key: str, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{metric: {key: number}}`` with metrics among ``names``; ``None`` is empty."""
    value = json_of(value, dict) if isinstance(value, str) else value or {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{name} must be a mapping {{metric: {{{key}: number}}}}, got {value!r}")
    out = {}
    for metric, spec in value.items():
        if metric not in names:
            raise InvalidInputError(f"{name}.{metric}: not one of this model's metrics ({', '.join(names)})")
        number = spec.get(key) if isinstance(spec, Mapping) else None
        if not is_finite_number(number) or (key == "max_drop" and number < 0):
            raise InvalidInputError(
                f"{name}.{metric}.{key} must be a finite number{' >= 0' if key == 'max_drop' else ''}, got {number!r}"
            )
        out[str(metric)] = {key: float(number)}
    return out


def check_settings(
    *,
    task_type: Any,
    primary_metric: Any,
    metrics: Any,
    degrade: Any,
    vs_champion: Any,
    window_days: Any,
    min_labels: Any,
    rollback: Any,
    mode: Any,
    shadow_min_labels: Any,
    plan: MetricPlan | None = None,
) -> dict[str, Any]:
    """The performance monitor's arguments checked, each error naming the argument. ``plan``: the
    model's own metrics (custom, expected_cost) besides its task's."""
    if task_type not in TASK_TYPES:
        raise InvalidInputError(f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
    names = plan.names if plan is not None else metric_names(task_type)
    if primary_metric not in names:
        raise InvalidInputError(f"primary_metric {primary_metric!r} is not a {task_type} metric")
    if rollback not in ROLLBACK_MODES:
        raise InvalidInputError(f"rollback must be one of {', '.join(ROLLBACK_MODES)}, got {rollback!r}")
    if mode not in PROMOTION_MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(PROMOTION_MODES)}, got {mode!r}")
    if isinstance(metrics, str):  # a rendered template: a JSON list
        metrics = json_of(metrics, list) or metrics
    if metrics is not None and not isinstance(metrics, list | tuple):
        raise InvalidInputError(f"metrics must be a list of metric names, got {metrics!r}")
    wanted = [str(m) for m in metrics] if metrics else list(names)
    unknown = [m for m in wanted if m not in names]
    if unknown:
        raise InvalidInputError(f"metrics: {unknown} are not {task_type} metrics")
    degrade_rules = _rule_map(degrade, "degrade", "max_drop", names)
    rules = _rule_map(vs_champion, "vs_champion", "min_delta", names)
    return {
        "metrics": list(dict.fromkeys([*wanted, primary_metric, *degrade_rules, *rules])),
        "primary_metric": primary_metric,
        "degrade": degrade_rules,
        "vs_champion": rules,
        "window_days": _count(window_days, "window_days", 1, 3660),
        "min_labels": _count(min_labels, "min_labels", 1, 10**9),
        "shadow_min_labels": _count(shadow_min_labels, "shadow_min_labels", 1, 10**9),
        "rollback": rollback,
        "mode": mode,
        "directions": plan.directions if plan is not None else {},
        "plan": plan,
    }


def live_decision(
    summary: Mapping[str, Any], judgement: Judgement, decided_by: str, who: str
) -> dict[str, Any]:
    """A shadow challenger's promotion or refusal as a gate summary (recorded like any gate decision),
    with the live numbers it rests on."""
    aliases = summary.get("aliases") or {}
    return {
        "model_name": summary["model_name"],
        "decision": "promoted" if judgement.action == "promote" else "refused",
        "old_version": summary["champion_version"],
        "new_version": judgement.target_version,
        "reason": judgement.reason,
        "gates": [g.as_dict() for g in judgement.gates],
        "metrics": {
            "challenger": (aliases.get(CHALLENGER) or {}).get("metrics"),
            "champion": summary.get("live"),
            "paired_rows": judgement.paired_rows,
        },
        "decided_by": decided_by,
        "decided_at": iso_utc(datetime.now(UTC)),
        "dag_run": who,
    }
