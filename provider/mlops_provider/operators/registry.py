"""Model registry operators: register a run's model, gate and promote it, roll the champion back.

Registry calls go through :class:`~mlops_provider.hooks.model_card.ModelCardHook` (the registry hook
that also writes each version's model card); what the gate scores comes from
:class:`~mlops_provider.hooks.gate.GateScorer`, the decision from core.gate.

* ``approval="manual"`` uses Airflow 3.3's human-in-the-loop: after the gates pass the task waits
  (state ``awaiting_input``) for "Approve"/"Reject" in the UI's Required Actions, and moves the alias in
  ``execute_complete``, recording who decided. ``approved_by`` (e.g. from an upstream ApprovalOperator)
  counts as an approval given already.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.core import lineage
from mlops_provider.exceptions import airflow_errors
from mlops_provider.hooks.approval import ApprovalHook, approval_text
from mlops_provider.hooks.gate_requests import SUMMARY_KEYS, forced_record, trigger_requests
from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.model_card import ModelCardHook, approval_of
from mlops_provider.hooks.openlineage import PromotionLineageMixin, RegistrationLineageMixin
from mlops_provider.hooks.registry import MLflowRegistryHook, check_model_name
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.mlflow import MLflowModelVersionLink
from mlops_provider.links.model_card import ModelCardLink, card_url

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.core.gate import Decision
    from mlops_provider.hooks.gate import GateRequest, GateScores

ON_REFUSE = ("fail", "skip")


def _who(context: Context) -> str:
    return lineage.who(lineage.task_identity(context))


def _small(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {k: summary.get(k) for k in SUMMARY_KEYS}


class RegisterModelOperator(LeanSetattrMixin, MLflowHookMixin, RegistrationLineageMixin, BaseOperator):
    """
    Register ``runs:/<run_id>/model`` as a new version of ``model_name``, exactly once per run.

    The version gets the run's lineage tags (``mlops.*``) plus ``tags``, and its model card. A retry, or
    a concurrent try of the same task instance, returns the version already registered for the run.

    :param model_name: registered model name. (templated)
    :param run_id: MLflow run id from TrainModelOperator. (templated)
    :param tags: extra version tags. (templated)
    :param model_card: ``{description, owners, limitations}`` (the config's ``model.*``) for the card;
        not templated: shown as written.
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"model_name", "version", "run_id", "created"}``
    """

    template_fields: Sequence[str] = ("model_name", "run_id", "tags", "mlflow_conn_id")
    operator_extra_links = (MLflowModelVersionLink(), ModelCardLink())
    ui_color = "#e8d4ff"
    hook_class = ModelCardHook

    def __init__(
        self,
        *,
        model_name: str,
        run_id: str,
        tags: Mapping[str, str] | None = None,
        model_card: Mapping[str, Any] | None = None,
        mlflow_conn_id: str = MLflowRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.run_id = run_id
        self.tags = tags
        self.model_card = model_card
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        name = check_model_name(self.model_name)
        if not isinstance(self.run_id, str) or not self.run_id.strip():
            raise AirflowFailException(f"run_id must be a non-empty string, got {self.run_id!r}")
        version, created = self.hook.register_with_card(name, self.run_id, self.tags or {}, self.model_card)
        MLflowModelVersionLink.persist(context, self.hook.model_version_url(name, version))
        ModelCardLink.persist(context, card_url(name, version))
        return {"model_name": name, "version": version, "run_id": self.run_id, "created": created}


class PromoteModelOperator(LeanSetattrMixin, MLflowHookMixin, PromotionLineageMixin, BaseOperator):
    """
    The quality gate: move ``alias`` (default ``champion``) to ``version`` only when every gate passes.

    Gates, all scored on the challenger's holdout:

    * ``thresholds`` ``{metric: {min: x, max: y}}``: absolute bounds on the challenger;
    * ``vs_champion`` ``{metric: {min_delta: d}}``: least improvement over the current champion, scored on
      the same holdout (``rmse``/``mae``/``log_loss``: lower is better; a negative delta tolerates a loss);
    * ``slices`` ``{column: c, max_gap: {metric: g}}``: largest allowed gap between slices of ``c``.

    With no champion, ``first_run`` decides: ``promote`` (when the absolute gates pass) or
    ``require_approval`` (a human decides, see ``approval``). NaN/inf metrics fail their gates.
    The decision is recorded as ``mlops.gate.*`` tags on the version (a forced one with who and why),
    and on the version's model card (a card waiting for approval says so).

    The challenger's numbers come from EvaluateModelOperator's record when it matches what the gate
    would score (:mod:`mlops_provider.hooks.gate`), else it is scored here; the champion always is.
    ``challenger_metrics_source`` (``evaluation`` | ``computed``) says which, also as a version tag.

    :param model_name: registered model name. (templated)
    :param version: the challenger version (from RegisterModelOperator). (templated)
    :param task_type: ``classification``/``regression``; default the version's lineage tag. Stored as
        ``ml_task_type`` (``BaseOperator.task_type`` is the class name). (templated)
    :param thresholds: absolute gates. (templated)
    :param vs_champion: champion comparison gates. (templated)
    :param slices: slice-gap gate. (templated)
    :param custom_metrics: / ``cost_matrix``: the model's own metrics, as EvaluateModelOperator's. (templated)
    :param robustness: ``{noise, missing_rate, max_drop: {metric: drop}}``: a noisy holdout. (templated)
    :param first_run: ``promote`` | ``require_approval``. (templated)
    :param alias: the alias to move. (templated)
    :param approval: ``auto`` | ``manual`` (human-in-the-loop); never below ``approval_floor``. (templated)
    :param approval_floor: the least strict mode allowed (``promotion.approval``). (templated)
    :param skip_vs_champion: skip the champion comparison; needs ``allow_forced`` and ``force_reason``.
    :param allow_forced: whether ``skip_vs_champion`` is allowed (``promotion.allow_forced``). (templated)
    :param force_reason: why the champion comparison is skipped; recorded with who triggered. (templated)
    :param on_refuse: ``fail`` (AirflowFailException) | ``skip`` (AirflowSkipException). (templated)
    :param mode: ``direct`` | ``shadow``: a passing challenger takes ``@challenger`` while a champion
        exists; the performance monitor promotes it on live labels. (templated)
    :param approved_by: an approval already given (e.g. by an upstream ApprovalOperator). (templated)
    :param response_timeout: how long a manual approval may wait; no answer means "Reject".
    :param reuse_evaluation: take the challenger's metrics from EvaluateModelOperator's record when it
        matches (saves loading and scoring the challenger); ``False`` always recomputes them.
    :param allow_pickle: load pickle/cloudpickle models (they can run code; a trusted registry only).
    :param extra_trusted_types: skops types trusted besides scikit-learn, numpy and scipy. (templated)
    :param allow_unverified_models: load a version without a recorded sha256 (logged by older code).
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"decision": "promoted"|"refused"|"skipped", "gates": [...], "old_version", "new_version",
        "reason", "metrics": {"challenger": {...}, "champion": {...}|None}, "challenger_metrics_source"}``
    """

    template_fields: Sequence[str] = (
        "model_name",
        "version",
        "ml_task_type",
        "thresholds",
        "vs_champion",
        "slices",
        "custom_metrics",
        "cost_matrix",
        "robustness",
        "first_run",
        "alias",
        "approval",
        "approval_floor",
        "skip_vs_champion",
        "allow_forced",
        "force_reason",
        "on_refuse",
        "mode",
        "approved_by",
        "extra_trusted_types",
        "mlflow_conn_id",
    )
    operator_extra_links = (MLflowModelVersionLink(), ModelCardLink())
    ui_color = "#ffe0b0"
    hook_class = ModelCardHook

    def __init__(
        self,
        *,
        model_name: str,
        version: str | int,
        task_type: str | None = None,
        thresholds: Mapping[str, Mapping[str, float]] | None = None,
        vs_champion: Mapping[str, Mapping[str, float]] | None = None,
        slices: Mapping[str, Any] | None = None,
        custom_metrics: Mapping[str, Any] | None = None,
        cost_matrix: Mapping[str, Any] | None = None,
        robustness: Mapping[str, Any] | None = None,
        first_run: str = "promote",
        alias: str = "champion",
        approval: str = "auto",
        approval_floor: str = "auto",
        skip_vs_champion: bool | str = False,
        allow_forced: bool | str = True,
        force_reason: str | None = None,
        on_refuse: str = "fail",
        mode: str = "direct",
        approved_by: str | None = None,
        response_timeout: Any = None,
        reuse_evaluation: bool | str = True,
        allow_pickle: bool = False,
        extra_trusted_types: Sequence[str] | None = None,
        allow_unverified_models: bool = False,
        mlflow_conn_id: str = MLflowRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.ml_task_type = task_type
        self.thresholds = thresholds
        self.vs_champion = vs_champion
        self.slices = slices
        self.custom_metrics = custom_metrics
        self.cost_matrix = cost_matrix
        self.robustness = robustness
        self.first_run = first_run
        self.alias = alias
        self.approval = approval
        self.approval_floor = approval_floor
        self.skip_vs_champion = skip_vs_champion
        self.allow_forced = allow_forced
        self.force_reason = force_reason
        self.on_refuse = on_refuse
        self.mode = mode
        self.approved_by = approved_by
        self.response_timeout = response_timeout
        self.reuse_evaluation = reuse_evaluation
        self.allow_pickle = allow_pickle
        self.extra_trusted_types = extra_trusted_types
        self.allow_unverified_models = allow_unverified_models
        self.mlflow_conn_id = mlflow_conn_id

    # -- phase 1: score and decide --------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.hooks.gate import GateScorer, decide_gate

        request = self._request(context)
        ModelCardLink.persist(context, card_url(request.model_name, request.version))
        scores = GateScorer(self.hook).score(request)
        approval = "auto" if (self.approved_by or "").strip() else self.approval  # given upstream already
        decision = decide_gate(
            request, scores, self.thresholds, self.vs_champion, self.slices, self.first_run, approval
        )
        summary = self._summary(context, request, scores, decision)
        if scores.champion_version == request.version:
            summary.update(
                decision="skipped",
                reason=f"version {request.version} already is {request.model_name}@{self.alias}",
            )
            self.hook.record_with_card(summary, "gate")
            return summary
        if decision.decision == "refuse":
            return self._refuse(context, summary, decided_by="gate")
        if decision.decision == "await_approval":
            return self._request_approval(context, summary)
        return self._promote(
            context, summary, decided_by=(self.approved_by or "").strip() or "gate (automatic)"
        )

    def _request(self, context: Context) -> GateRequest:
        """Check the arguments (a retry cannot fix them) and say what the gate scores."""
        from mlops_provider.hooks.gate import gate_request
        from mlops_provider.hooks.metric_plan import metric_roots
        from mlops_provider.hooks.model_safety import ModelLoadPolicy

        name = check_model_name(self.model_name)
        if self.on_refuse not in ON_REFUSE:
            raise AirflowFailException(
                f"on_refuse must be one of {', '.join(ON_REFUSE)}, got {self.on_refuse!r}"
            )
        with airflow_errors():
            self.reuse_evaluation = lineage.as_bool(self.reuse_evaluation, "reuse_evaluation")
        self.hook.load_policy = ModelLoadPolicy.from_args(
            allow_pickle=self.allow_pickle,
            extra_trusted_types=self.extra_trusted_types,
            allow_unverified=self.allow_unverified_models,
        )
        self.approval, self.skip_vs_champion = trigger_requests(
            self.approval, self.approval_floor, self.skip_vs_champion, self.allow_forced, self.force_reason
        )
        return gate_request(
            name,
            self.version,
            alias=self.alias,
            task_type=self.ml_task_type,
            thresholds=self.thresholds,
            vs_champion=self.vs_champion,
            slices=self.slices,
            skip_vs_champion=self.skip_vs_champion,
            reuse_evaluation=self.reuse_evaluation,
            custom_metrics=self.custom_metrics,
            cost_matrix=self.cost_matrix,
            robustness=self.robustness,
            metric_roots=metric_roots(context),
        )

    def _summary(
        self, context: Context, request: GateRequest, scores: GateScores, decision: Decision
    ) -> dict[str, Any]:
        forced = f"; champion comparison skipped: {self.force_reason}" if self.skip_vs_champion else ""
        return {
            "decision": "pending",
            "gates": [g.as_dict() for g in decision.gates],
            "old_version": scores.champion_version,
            "new_version": request.version,
            "reason": decision.reason + forced,
            "metrics": {"challenger": scores.challenger, "champion": scores.champion},
            "challenger_metrics_source": scores.challenger_source,
            "alias": self.alias,
            "model_name": request.model_name,
            "dag_run": _who(context),
            **forced_record(self.skip_vs_champion, self.force_reason, lineage.triggering_user(context)),
        }

    # -- outcomes ----------------------------------------------------------------------------------
    def _refuse(self, context: Context, summary: dict[str, Any], decided_by: str) -> dict[str, Any]:
        summary["decision"] = "refused"
        self.hook.record_with_card(summary, decided_by)
        context["ti"].xcom_push(key="return_value", value=_small(summary))
        message = f"{summary['model_name']} version {summary['new_version']} refused: {summary['reason']}"
        if self.on_refuse == "skip":
            raise AirflowSkipException(message)
        raise AirflowFailException(message)

    def _promote(self, context: Context, summary: dict[str, Any], decided_by: str) -> dict[str, Any]:
        if not self.hook.promote_with_card(summary, self.alias, self.mode, decided_by):
            return self._refuse(context, summary, decided_by)  # the champion changed since it was scored
        url = self.hook.model_version_url(summary["model_name"], summary["new_version"])
        MLflowModelVersionLink.persist(context, url)
        return _small(summary)

    # -- phase 2: human in the loop ---------------------------------------------------------------
    def _request_approval(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        subject, body = approval_text(summary, self.alias)
        self.hook.record_with_card(summary, None)  # the card says the promotion waits for a person
        ApprovalHook().request(
            context["ti"].id, subject, body, {"summary": _small(summary)}, self.response_timeout
        )
        return summary  # not reached: the task waits for the answer

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any] | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resume after the human decision: promote on "Approve", refuse otherwise."""
        with airflow_errors():
            approved, resumed, decided_by = ApprovalHook.resume(event, summary)
        resumed["approval"] = approval_of(event)  # who, when, the answer and a comment: on the card
        if approved:
            return self._promote(context, resumed, decided_by=decided_by)
        return self._refuse(context, resumed, decided_by=decided_by)


class RollbackModelOperator(LeanSetattrMixin, MLflowHookMixin, BaseOperator):
    """
    Move ``alias`` back to the version holding ``previous_champion`` (or to ``to_version``).

    Recorded like a promotion: the alias history gains an entry (action ``rollback``, by ``human:<user>``
    when a person triggered the run), the version moved away from keeps ``previous_champion``, and the
    target version gets ``mlops.rollback.*`` tags; both versions' model cards are rewritten and the
    registered model's description points at the restored one's. It happens once per task instance.

    :param model_name: registered model name. (templated)
    :param to_version: version to restore; default the ``previous_champion`` alias. (templated)
    :param alias: the alias to move. (templated)
    :param reason: why; recorded. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"decision": "rolled_back"|"skipped", "gates": [], "old_version", "new_version", "reason"}``
    """

    template_fields: Sequence[str] = ("model_name", "to_version", "alias", "reason", "mlflow_conn_id")
    operator_extra_links = (MLflowModelVersionLink(), ModelCardLink())
    ui_color = "#ffd0d0"
    hook_class = ModelCardHook

    def __init__(
        self,
        *,
        model_name: str,
        to_version: str | int | None = None,
        alias: str = "champion",
        reason: str = "rollback",
        mlflow_conn_id: str = MLflowRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name, self.to_version, self.alias = model_name, to_version, alias
        self.reason, self.mlflow_conn_id = reason, mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        name = check_model_name(self.model_name)
        key, person = _who(context), lineage.triggering_user(context)
        who = f"human:{person}" if person else key
        summary = self.hook.rollback_with_card(name, self.alias, self.to_version, self.reason, who, key)
        if summary["decision"] == "rolled_back":
            MLflowModelVersionLink.persist(context, self.hook.model_version_url(name, summary["new_version"]))
            ModelCardLink.persist(context, card_url(name, summary["new_version"]))
        return summary
