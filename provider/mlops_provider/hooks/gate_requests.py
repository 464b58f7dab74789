"""What a trigger may ask of the gate (approval, a forced retrain) and what a decision summary holds."""

from __future__ import annotations

from typing import Any

from mlops_provider.core import lineage
from mlops_provider.exceptions import InvalidInputError, airflow_errors

APPROVAL_MODES = ("auto", "manual")
FORCED_KEYS = ("forced_by", "force_reason")
# What a gate decision returns (XCom) and records; the full summary also holds decided_at.
SUMMARY_KEYS = (
    "decision",
    "gates",
    "old_version",
    "new_version",
    "reason",
    "metrics",
    "challenger_metrics_source",
    "alias",
    "model_name",
    "dag_run",
    "decided_by",
    *FORCED_KEYS,
)
STRICTER_ONLY = "a trigger can only make the gate stricter, never looser"


def trigger_requests(
    approval: Any, approval_floor: Any, skip_vs_champion: Any, allow_forced: Any, force_reason: Any
) -> tuple[str, bool]:
    """
    The effective approval mode and forced-retrain flag of a run, from what its trigger asked
    (``approval``, ``skip_vs_champion``: the retrain DAG's Params) under what the config allows
    (``approval_floor`` = ``promotion.approval``, ``allow_forced`` = ``promotion.allow_forced``).
    A trigger may turn ``auto`` into ``manual``, never the reverse; it may skip the champion comparison
    only where the config allows it, and with a reason. A refusal names the Param and the rule.
    """
    for name, value in (("approval", approval), ("approval_floor", approval_floor)):
        if value not in APPROVAL_MODES:
            raise InvalidInputError(f"{name} must be one of {', '.join(APPROVAL_MODES)}, got {value!r}")
    with airflow_errors():
        skip = lineage.as_bool(skip_vs_champion, "skip_vs_champion")
        forced_allowed = lineage.as_bool(allow_forced, "allow_forced")
    if approval_floor == "manual" and approval != "manual":
        raise InvalidInputError(
            f"Param 'approval': {approval!r} is refused: the model's config requires a human approval "
            f"(promotion.approval: manual) and {STRICTER_ONLY} (auto -> manual only)"
        )
    if skip and not forced_allowed:
        raise InvalidInputError(
            "Param 'skip_vs_champion': a forced retrain (skipping the champion comparison) is refused: the "
            f"model's config does not allow it (promotion.allow_forced: false) and {STRICTER_ONLY}"
        )
    if skip and not str(force_reason or "").strip():
        raise InvalidInputError(
            "skip_vs_champion=True needs a force_reason (Param 'force_reason'; it is recorded with the decision)"
        )
    return ("manual" if "manual" in (approval, approval_floor) else "auto"), skip


def forced_record(skip_vs_champion: Any, force_reason: Any, triggered_by: str | None) -> dict[str, str]:
    """Who forced a retrain and why (summary keys :data:`FORCED_KEYS`); empty when nothing was forced."""
    if skip_vs_champion is not True:
        return {}
    return {"forced_by": triggered_by or "unknown", "force_reason": str(force_reason or "").strip()}
