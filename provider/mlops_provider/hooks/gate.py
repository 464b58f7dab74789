"""What the promotion gate scores: challenger and champion on the challenger's holdout.

The challenger's metrics (and slice metrics) come from EvaluateModelOperator's record on its training
run only when that record provably describes what the gate would score (see
:func:`mlops_provider.core.records.holdout_record_mismatch`); otherwise the challenger is loaded and
scored. The champion is always loaded and scored on the same holdout. Only MLflow's "no such alias"
answer means "no champion".

The challenger must be READY. Its artifact is checked even when the record's numbers are reused: the
recorded sha256, no pickle, skops types on the allowlist (``hook.verify_model``, which deserialises
nothing); a loaded model (challenger or champion) passes the same checks first (``hook.load_model``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_provider.core import lineage
from mlops_provider.core.gate import CHALLENGER_ALIAS, PROMOTION_MODES
from mlops_provider.exceptions import InvalidInputError, airflow_errors

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.core.gate import Decision, GateResult
    from mlops_provider.core.metric_plan import MetricPlan
    from mlops_provider.core.metrics import MetricReport
    from mlops_provider.core.robustness import RobustnessSpec
    from mlops_provider.hooks.registry import MLflowRegistryHook


@dataclass
class GateRequest:
    """What to score: the challenger version, the alias it would take, and the gate configuration."""

    model_name: str
    version: str
    alias: str
    task_type: str | None = None
    slice_column: str | None = None
    gated_metrics: set[str] = field(default_factory=set)
    skip_vs_champion: bool = False
    reuse_evaluation: bool = True
    custom_metrics: Any = None  # evaluation.custom_metrics, cost_matrix, robustness: see core
    cost_matrix: Any = None
    robustness: Any = None
    metric_roots: tuple[str, ...] = ()  # where custom metric functions may come from


def gate_request(
    model_name: str,
    version: str | int,
    *,
    alias: str,
    task_type: str | None,
    thresholds: Any,
    vs_champion: Any,
    slices: Any,
    skip_vs_champion: bool,
    reuse_evaluation: bool,
    **extras: Any,
) -> GateRequest:
    """What the gate scores for this configuration (a malformed section fails ``decide_gate`` later)."""
    number = str(version).strip()
    if not number.isdigit():
        raise InvalidInputError(f"version must be a model version number, got {version!r}")
    gated = {
        str(metric)
        for section in (thresholds, vs_champion)
        if isinstance(section, Mapping)
        for metric in section
    }
    slice_column = slices.get("column") if isinstance(slices, Mapping) else None
    return GateRequest(
        model_name=model_name,
        version=number,
        alias=alias,
        task_type=task_type,
        slice_column=slice_column if slices else None,
        gated_metrics=gated,
        skip_vs_champion=skip_vs_champion,
        reuse_evaluation=reuse_evaluation,
        **extras,
    )


@dataclass
class GateScores:
    task_type: str
    challenger: dict[str, float | None]
    challenger_source: str  # "evaluation" | "computed"
    champion: dict[str, float | None] | None
    champion_version: str | None
    slices: dict[str, Any] | None
    plan: MetricPlan
    metric_errors: dict[str, str] = field(default_factory=dict)
    metric_notes: dict[str, str] = field(default_factory=dict)  # recorded with the decision
    robustness: dict[str, Any] | None = None  # the perturbed holdout's settings and metrics
    robustness_gates: list[GateResult] = field(default_factory=list)


@dataclass
class _Challenger:
    run_id: str
    source: str | None
    features: list[str]
    target: str
    task_type: str


class GateScorer:
    """Scores a :class:`GateRequest` through ``hook`` (every MLflow call) and core.metrics."""

    def __init__(self, hook: MLflowRegistryHook) -> None:
        self.hook = hook
        self.log = hook.log

    def score(self, request: GateRequest) -> GateScores:
        from mlops_provider.core.gate import jsonable_metrics
        from mlops_provider.core.records import holdout_xy
        from mlops_provider.core.robustness import score_robustness

        challenger = self._challenger(request)
        plan, robustness = self._plan(request, challenger.task_type)
        holdout = self.hook.load_holdout(challenger.run_id)
        where = f"holdout of {request.model_name} version {request.version} (run {challenger.run_id})"
        with airflow_errors():
            X, y = holdout_xy(holdout, challenger.features, challenger.target, where)
        if request.slice_column and request.slice_column not in holdout.columns:
            raise InvalidInputError(
                f"{where}: slices.column {request.slice_column!r} is not a column of the holdout"
            )
        record, why = self._evaluation_record(request, challenger, holdout)
        if plan.extra_names or robustness:
            record, why = None, "custom metrics and the robustness gate are computed by the gate itself"
        errors: dict[str, str] = {}
        notes: dict[str, str] = {}
        robust: tuple[dict[str, Any] | None, list[GateResult]] = (None, [])
        if record is not None:
            self.hook.verify_model(f"models:/{request.model_name}/{request.version}")
            self.log.info(
                "Challenger metrics from EvaluateModelOperator's record on run %s", challenger.run_id
            )
            metrics = jsonable_metrics(record["metrics"])
            slices = record["slices"] if request.slice_column else None
            source = "evaluation"
        else:
            self.log.info("Scoring the challenger %s v%s here: %s", request.model_name, request.version, why)
            model, report, slices = self._score_challenger(request, challenger, X, y, holdout, plan)
            metrics, errors, source = jsonable_metrics(report.values), report.errors, "computed"
            notes = report.notes
            if robustness:
                with airflow_errors():
                    robust = score_robustness(model, X, y, metrics, robustness, plan)
        champion_version = self.hook.alias_version(request.model_name, request.alias)
        champion = None
        if champion_version not in (None, request.version) and not request.skip_vs_champion:
            champion = self._score_champion(
                request, str(champion_version), challenger, holdout, y, where, plan
            )
        self.log.info(
            "Challenger %s v%s metrics %s (%s); champion v%s metrics %s",
            request.model_name,
            request.version,
            metrics,
            source,
            champion_version,
            champion,
        )
        scores = GateScores(
            challenger.task_type, metrics, source, champion, champion_version, slices, plan, errors
        )
        scores.robustness, scores.robustness_gates = robust
        scores.metric_notes = notes
        return scores

    def _plan(self, request: GateRequest, task_type: str) -> tuple[MetricPlan, RobustnessSpec | None]:
        from mlops_provider.core.metric_plan import MetricPlan
        from mlops_provider.core.robustness import RobustnessSpec

        with airflow_errors(f"gate configuration for {request.model_name!r}"):
            plan = MetricPlan.build(
                task_type, request.custom_metrics, request.cost_matrix, request.metric_roots
            )
            return plan, RobustnessSpec.from_config(request.robustness, plan.names)

    def _challenger(self, request: GateRequest) -> _Challenger:
        mv = self.hook.model_version(request.model_name, request.version)
        if str(mv.status) != "READY":
            raise InvalidInputError(
                f"{request.model_name} version {request.version} is {mv.status}, not READY: it cannot be "
                "promoted until MLflow has finished creating it"
            )
        tags = mv.tags
        try:
            features = json.loads(tags[lineage.FEATURES])
            target = tags[lineage.TARGET]
        except (KeyError, ValueError):
            raise InvalidInputError(
                f"{request.model_name} version {request.version} lacks the lineage tags {lineage.FEATURES!r}/"
                f"{lineage.TARGET!r} (register it with RegisterModelOperator)"
            ) from None
        recorded = tags.get(lineage.TASK_TYPE)
        task_type = request.task_type or recorded or "classification"
        if recorded and recorded != task_type:
            raise InvalidInputError(
                f"task_type {task_type!r} differs from {recorded!r} recorded on {request.model_name} "
                f"version {request.version}"
            )
        run_id = tags.get(lineage.TRAINING_RUN_ID) or mv.run_id
        return _Challenger(run_id, mv.source, list(features), target, task_type)

    def _evaluation_record(
        self, request: GateRequest, challenger: _Challenger, holdout: pd.DataFrame
    ) -> tuple[Mapping[str, Any] | None, str]:
        """EvaluateModelOperator's record when its challenger numbers can be reused, else None and why."""
        from mlops_provider import __version__
        from mlops_provider.core.records import holdout_record_mismatch

        if not request.reuse_evaluation:
            return None, "reuse_evaluation=False"
        record, why = self.hook.read_evaluation_record(challenger.run_id)
        if record is None:
            return None, why
        why = holdout_record_mismatch(
            record,
            run_id=challenger.run_id,
            model_source=challenger.source,
            holdout=holdout,
            task_type=challenger.task_type,
            features=challenger.features,
            target=challenger.target,
            gated=request.gated_metrics,
            slice_column=request.slice_column,
            code_version=__version__,
        )
        if why:
            return None, f"the evaluation record on run {challenger.run_id} does not match: {why}"
        return record, ""

    def _score_challenger(
        self,
        request: GateRequest,
        challenger: _Challenger,
        X: Any,
        y: Any,
        holdout: pd.DataFrame,
        plan: MetricPlan,
    ) -> tuple[Any, MetricReport, dict[str, Any] | None]:
        from mlops_provider.core.metrics import compute_metrics, slice_metrics

        model = self.hook.load_model(f"models:/{request.model_name}/{request.version}")
        task_type = challenger.task_type
        with airflow_errors():
            report = compute_metrics(model, X, y, task_type, plan)
            slices = (
                slice_metrics(model, X, y, holdout[request.slice_column], task_type, plan)
                if request.slice_column
                else None
            )
        return model, report, slices

    def _score_champion(
        self,
        request: GateRequest,
        version: str,
        challenger: _Challenger,
        holdout: pd.DataFrame,
        y: Any,
        where: str,
        plan: MetricPlan,
    ) -> dict[str, float | None]:
        from mlops_provider.core.gate import jsonable_metrics
        from mlops_provider.core.metrics import compute_metrics
        from mlops_provider.core.records import holdout_xy

        mv = self.hook.model_version(request.model_name, version)
        features = json.loads(mv.tags.get(lineage.FEATURES, json.dumps(challenger.features)))
        target = mv.tags.get(lineage.TARGET, challenger.target)
        if target != challenger.target:
            raise InvalidInputError(
                f"champion {request.model_name} version {version} predicts {target!r}, the challenger "
                f"{challenger.target!r}"
            )
        with airflow_errors():
            X_champion, _ = holdout_xy(holdout, features, target, f"{where}, for champion version {version}")
        model = self.hook.load_model(f"models:/{request.model_name}/{version}")
        with airflow_errors():
            report = compute_metrics(model, X_champion, y, challenger.task_type, plan)
            return jsonable_metrics(report.values)


def decide_gate(
    request: GateRequest,
    scores: GateScores,
    thresholds: Any,
    vs_champion: Any,
    slices: Any,
    first_run: str,
    approval: str,
) -> Decision:
    """Every configured gate evaluated and the decision; a bad configuration fails naming the key."""
    from mlops_provider.core.gate import GateResult, decide, evaluate_gates, validate_config

    try:
        with airflow_errors(f"gate configuration for {request.model_name!r}"):
            validate_config(scores.task_type, thresholds, vs_champion, slices, scores.plan.extra_names)
            gates = evaluate_gates(
                scores.challenger,
                champion=None if request.skip_vs_champion else scores.champion,
                thresholds=thresholds,
                vs_champion=vs_champion,
                slices=scores.slices,
                max_gap=(slices or {}).get("max_gap"),
                directions=scores.plan.directions,
                metric_errors=scores.metric_errors,
            )
            notes = [GateResult("note", m, None, None, True, n) for m, n in scores.metric_notes.items()]
            return decide(
                gates + scores.robustness_gates + notes,
                has_champion=scores.champion_version is not None,
                first_run=first_run,
                approval=approval,
            )
    except ValueError as err:  # a core helper's plain ValueError: still bad configuration
        raise InvalidInputError(f"gate configuration for {request.model_name!r}: {err}") from None


def promotion_alias(
    hook: MLflowRegistryHook, summary: dict[str, Any], alias: str, mode: Any
) -> tuple[str, str | None]:
    """
    The alias a passing challenger takes, and the version it must still point at: ``alias`` itself
    (``mode="direct"``, or no champion yet), or ``@challenger`` in ``shadow`` mode, where the
    performance monitor promotes it once labelled live rows show it is better (the summary says so).
    """
    if mode not in PROMOTION_MODES:
        raise InvalidInputError(f"mode must be one of {', '.join(PROMOTION_MODES)}, got {mode!r}")
    if mode == "direct" or summary["old_version"] is None:
        return alias, summary["old_version"]
    summary["reason"] += f"; in shadow as @{CHALLENGER_ALIAS}: live labels decide against @{alias}"
    return CHALLENGER_ALIAS, hook.alias_version(summary["model_name"], CHALLENGER_ALIAS)
