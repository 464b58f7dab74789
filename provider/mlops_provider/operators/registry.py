"""Model registry operators: register a run's model, gate and promote it, roll the champion back.

Design notes:

* **Register** is idempotent: the version carries the tag ``mlops.training_run_id``; a retry finds it
  instead of creating another, and when two concurrent tries both created one, the lowest version is
  kept and the others deleted.
* **Promote** compares challenger and champion on the challenger's holdout. The challenger's numbers
  come from EvaluateModelOperator's record (``evaluation/holdout_metrics.json`` on the training run)
  only when it provably describes what promote would score: the version's model, the same holdout
  (fingerprint and row count), task type, features, target and provider version, with every gated
  metric (and the configured slices); otherwise, and with ``reuse_evaluation=False``, promote loads
  the challenger and scores it. The champion is always loaded and scored. Other logged metrics are
  never trusted. Only MLflow's "no such alias" answer means "no champion"; any other error fails the
  task. Alias moves happen under :class:`mlops_provider.core.gate.RegistryLock` (an atomic create of a
  lock registered model), re-read the champion first (refusing if it changed since the gates were
  scored), and read the alias back afterwards. Every move appends ``{alias, action, from, to, why,
  who, when}`` to the registered-model tag ``mlops.alias_history.<alias>`` (a bounded JSON list), and
  the old champion gets the alias ``previous_champion``; a rollback is one step.
* ``approval="manual"`` uses Airflow 3.3's human-in-the-loop: after the gates pass the task waits
  (state ``awaiting_input``) for "Approve"/"Reject" in the UI's Required Actions, and moves the alias in
  ``execute_complete``, recording who decided. ``approved_by`` (e.g. from an upstream ApprovalOperator)
  counts as an approval given already.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.core import lineage
from mlops_provider.hooks.mlflow import MLflowHook, MLflowHookMixin
from mlops_provider.links.mlflow import MLflowModelVersionLink
from mlops_provider.operators.training import task_identity

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient

APPROVE = "Approve"
REJECT = "Reject"
ON_REFUSE = ("fail", "skip")


def _check_name(model_name: Any) -> str:
    if not isinstance(model_name, str) or not model_name.strip():
        raise AirflowFailException(f"model_name must be a non-empty string, got {model_name!r}")
    if "'" in model_name or '"' in model_name or "`" in model_name:
        raise AirflowFailException(f"model name {model_name!r}: quotes and backticks are not supported")
    return model_name


def _version_filter(model_name: str, run_id: str) -> str:
    return f"name = '{model_name}' and tags.`{lineage.TRAINING_RUN_ID}` = '{run_id}'"


def _who(context: Context) -> str:
    identity = task_identity(context)
    if identity["dag_id"]:
        return f"airflow:{identity['dag_id']}/{identity['dag_run_id']}/{identity['task_id']}"
    return "airflow"


class RegisterModelOperator(MLflowHookMixin, BaseOperator):
    """
    Register ``runs:/<run_id>/model`` as a new version of ``model_name``, exactly once per run.

    The version gets the run's lineage tags (``mlops.*``) plus ``tags``. A retry, or a concurrent try
    of the same task instance, returns the version already registered for the run.

    :param model_name: registered model name. (templated)
    :param run_id: MLflow run id from TrainModelOperator. (templated)
    :param tags: extra version tags. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"model_name", "version", "run_id", "created"}``
    """

    template_fields: Sequence[str] = ("model_name", "run_id", "tags", "mlflow_conn_id")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#e8d4ff"

    def __init__(
        self,
        *,
        model_name: str,
        run_id: str,
        tags: Mapping[str, str] | None = None,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.run_id = run_id
        self.tags = tags
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlflow.exceptions import MlflowException

        name = _check_name(self.model_name)
        if not isinstance(self.run_id, str) or not self.run_id.strip():
            raise AirflowFailException(f"run_id must be a non-empty string, got {self.run_id!r}")
        with self.hook.session() as client:
            try:
                version, created = self._register(client, name)
            except MlflowException as err:
                raise self.hook.unavailable(err) from err
        MLflowModelVersionLink.persist(context, MLflowModelVersionLink.url(self.hook.settings, name, version))
        return {"model_name": name, "version": version, "run_id": self.run_id, "created": created}

    def _register(self, client: MlflowClient, name: str) -> tuple[str, bool]:
        import mlflow
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(self.run_id)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise AirflowFailException(f"MLflow run {self.run_id!r} does not exist") from None
            raise
        if run.data.tags.get("mlops.complete") != "true" and lineage.FEATURES not in run.data.tags:
            raise AirflowFailException(
                f"MLflow run {self.run_id!r} holds no model logged by TrainModelOperator"
            )
        tags = {k: v for k, v in run.data.tags.items() if k.startswith(lineage.PREFIX)}
        tags.update({str(k): str(v) for k, v in (self.tags or {}).items()})
        tags[lineage.TRAINING_RUN_ID] = self.run_id
        try:
            client.create_registered_model(name, tags={"mlops.managed": "true"})
        except MlflowException as err:
            if err.error_code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                pass
            elif err.error_code == "INVALID_PARAMETER_VALUE":
                raise AirflowFailException(f"MLflow refuses the model name {name!r}: {err.message}") from None
            else:
                raise
        existing = self._versions(client, name)
        if existing:
            version = existing[0]
            self.log.info("Run %s is already registered as %s version %s", self.run_id, name, version.version)
            for key, value in tags.items():  # complete tags a crashed try may have left unset
                if version.tags.get(key) != value:
                    client.set_model_version_tag(name, str(version.version), key, value)
            return str(version.version), False
        mine = str(mlflow.register_model(f"runs:/{self.run_id}/model", name, tags=tags).version)
        versions = self._versions(client, name)
        for duplicate in versions[1:]:
            self.log.warning(
                "Deleting %s version %s: a concurrent try registered run %s as version %s first",
                name,
                duplicate.version,
                self.run_id,
                versions[0].version,
            )
            try:
                client.delete_model_version(name, str(duplicate.version))
            except MlflowException as err:
                if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        if not versions:
            raise AirflowFailException(
                f"registered {name!r} from run {self.run_id} but cannot find the version"
            )
        return str(versions[0].version), str(versions[0].version) == mine

    def _versions(self, client: MlflowClient, name: str) -> list[Any]:
        found = client.search_model_versions(_version_filter(name, self.run_id))
        return sorted(found, key=lambda v: int(v.version))


class _AliasMover:
    """Alias moves with lock, re-read, read-back and history; shared by promote and rollback."""

    hook: MLflowHook
    log: Any

    def _move_alias(
        self,
        client: MlflowClient,
        *,
        model_name: str,
        alias: str,
        expected_old: str | None,
        new_version: str,
        why: str,
        who: str,
        action: str,
        lock_owner: str,
    ) -> None:
        """Move ``alias`` to ``new_version`` if it still points at ``expected_old``; else refuse."""
        from mlops_provider.core.gate import (
            HISTORY_TAG,
            PREVIOUS_ALIAS,
            RegistryLock,
            alias_version,
            append_history,
            history_entry,
        )

        with RegistryLock(client, model_name, owner=lock_owner):
            current = alias_version(client, model_name, alias)
            if current != expected_old:
                raise _ChampionChanged(expected_old, current)
            if expected_old is not None and alias != PREVIOUS_ALIAS:
                client.set_registered_model_alias(model_name, PREVIOUS_ALIAS, expected_old)
            client.set_registered_model_alias(model_name, alias, new_version)
            after = alias_version(client, model_name, alias)
            if after != str(new_version):
                raise AirflowFailException(
                    f"{model_name}@{alias}: read back version {after} after moving it to {new_version}"
                )
            key = HISTORY_TAG.format(alias=alias)
            existing = client.get_registered_model(model_name).tags.get(key)
            entry = history_entry(
                alias=alias,
                from_version=expected_old,
                to_version=new_version,
                why=why,
                who=who,
                action=action,
            )
            client.set_registered_model_tag(model_name, key, append_history(existing, entry))
        self.log.info(
            "Moved %s@%s from %s to %s (%s by %s)", model_name, alias, expected_old, new_version, action, who
        )


class _ChampionChanged(Exception):
    def __init__(self, expected: str | None, current: str | None) -> None:
        super().__init__(f"the champion changed meanwhile (expected version {expected}, found {current})")
        self.expected = expected
        self.current = current


def as_bool(value: Any, name: str) -> bool:
    """A bool from a bool or its rendered template text ("True", "false", "1", "")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "", "none"):
        return False
    raise AirflowFailException(f"{name} must be true or false, got {value!r}")


class PromoteModelOperator(MLflowHookMixin, BaseOperator, _AliasMover):
    """
    The quality gate: move ``alias`` (default ``champion``) to ``version`` only when every gate passes.

    Gates, all scored on the challenger's holdout:

    * ``thresholds`` ``{metric: {min: x, max: y}}``: absolute bounds on the challenger;
    * ``vs_champion`` ``{metric: {min_delta: d}}``: least improvement over the current champion, scored on
      the same holdout (``rmse``/``mae``/``log_loss``: lower is better; a negative delta tolerates a loss);
    * ``slices`` ``{column: c, max_gap: {metric: g}}``: largest allowed gap between slices of ``c``.

    With no champion, ``first_run`` decides: ``promote`` (when the absolute gates pass) or
    ``require_approval`` (a human decides, see ``approval``). NaN/inf metrics fail their gates.
    The decision is recorded as ``mlops.gate.*`` tags on the version.

    The challenger's metrics (and slice metrics) are taken from EvaluateModelOperator's record on its
    training run when that record matches the version's model, the holdout, task type, features and
    target (see the module docstring); else the challenger is loaded and scored here. The champion is
    always loaded and scored on the challenger's holdout. ``challenger_metrics_source`` says which:
    ``evaluation`` or ``computed`` (also the version tag ``mlops.gate.challenger_metrics_source``).

    :param model_name: registered model name. (templated)
    :param version: the challenger version (from RegisterModelOperator). (templated)
    :param task_type: ``classification``/``regression``; default the version's lineage tag. Stored as
        ``ml_task_type`` (``BaseOperator.task_type`` is the class name). (templated)
    :param thresholds: absolute gates. (templated)
    :param vs_champion: champion comparison gates. (templated)
    :param slices: slice-gap gate. (templated)
    :param first_run: ``promote`` | ``require_approval``. (templated)
    :param alias: the alias to move. (templated)
    :param approval: ``auto`` | ``manual`` (Airflow human-in-the-loop). (templated)
    :param skip_vs_champion: skip the champion comparison; needs ``force_reason``.
    :param force_reason: why the champion comparison is skipped; recorded. (templated)
    :param on_refuse: ``fail`` (AirflowFailException) | ``skip`` (AirflowSkipException). (templated)
    :param approved_by: an approval already given (e.g. by an upstream ApprovalOperator). (templated)
    :param response_timeout: how long a manual approval may wait; no answer means "Reject".
    :param reuse_evaluation: take the challenger's metrics from EvaluateModelOperator's record when it
        matches (saves loading and scoring the challenger); ``False`` always recomputes them.
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"decision": "promoted"|"refused"|"skipped", "gates": [...], "old_version",
        "new_version", "reason", "metrics": {"challenger": {...}, "champion": {...}|None},
        "challenger_metrics_source": "evaluation"|"computed"}``
    """

    template_fields: Sequence[str] = (
        "model_name",
        "version",
        "ml_task_type",
        "thresholds",
        "vs_champion",
        "slices",
        "first_run",
        "alias",
        "approval",
        "skip_vs_champion",
        "force_reason",
        "on_refuse",
        "approved_by",
        "mlflow_conn_id",
    )
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#ffe0b0"

    def __init__(
        self,
        *,
        model_name: str,
        version: str | int,
        task_type: str | None = None,
        thresholds: Mapping[str, Mapping[str, float]] | None = None,
        vs_champion: Mapping[str, Mapping[str, float]] | None = None,
        slices: Mapping[str, Any] | None = None,
        first_run: str = "promote",
        alias: str = "champion",
        approval: str = "auto",
        skip_vs_champion: bool = False,
        force_reason: str | None = None,
        on_refuse: str = "fail",
        approved_by: str | None = None,
        response_timeout: Any = None,
        reuse_evaluation: bool = True,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.ml_task_type = task_type
        self.thresholds = thresholds
        self.vs_champion = vs_champion
        self.slices = slices
        self.first_run = first_run
        self.alias = alias
        self.approval = approval
        self.skip_vs_champion = skip_vs_champion
        self.force_reason = force_reason
        self.on_refuse = on_refuse
        self.approved_by = approved_by
        self.response_timeout = response_timeout
        self.reuse_evaluation = reuse_evaluation
        self.mlflow_conn_id = mlflow_conn_id

    # -- phase 1: score and decide --------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from mlflow.exceptions import MlflowException

        from mlops_provider.core.gate import GateConfigError, decide, evaluate_gates, validate_config

        name = _check_name(self.model_name)
        version = str(self.version).strip()
        if not version.isdigit():
            raise AirflowFailException(f"version must be a model version number, got {self.version!r}")
        if self.on_refuse not in ON_REFUSE:
            raise AirflowFailException(
                f"on_refuse must be one of {', '.join(ON_REFUSE)}, got {self.on_refuse!r}"
            )
        self.skip_vs_champion = as_bool(self.skip_vs_champion, "skip_vs_champion")
        self.reuse_evaluation = as_bool(self.reuse_evaluation, "reuse_evaluation")
        if self.skip_vs_champion and not (self.force_reason or "").strip():
            raise AirflowFailException(
                "skip_vs_champion=True needs a force_reason (it is recorded with the decision)"
            )
        with self.hook.session() as client:
            try:
                scored = self._score(client, name, version)
                task_type = scored["task_type"]
                try:
                    validate_config(task_type, self.thresholds, self.vs_champion, self.slices)
                    gates = evaluate_gates(
                        scored["challenger"],
                        champion=None if self.skip_vs_champion else scored["champion"],
                        thresholds=self.thresholds,
                        vs_champion=self.vs_champion,
                        slices=scored["slices"],
                        max_gap=(self.slices or {}).get("max_gap"),
                    )
                    decision = decide(
                        gates,
                        has_champion=scored["champion_version"] is not None,
                        first_run=self.first_run,
                        approval="auto" if (self.approved_by or "").strip() else self.approval,
                    )
                except (GateConfigError, ValueError) as err:
                    raise AirflowFailException(f"gate configuration for {name!r}: {err}") from None
                summary = {
                    "decision": "pending",
                    "gates": [g.as_dict() for g in decision.gates],
                    "old_version": scored["champion_version"],
                    "new_version": version,
                    "reason": decision.reason
                    + (
                        f"; champion comparison skipped: {self.force_reason}" if self.skip_vs_champion else ""
                    ),
                    "metrics": {"challenger": scored["challenger"], "champion": scored["champion"]},
                    "challenger_metrics_source": scored["challenger_source"],
                    "alias": self.alias,
                    "model_name": name,
                    "dag_run": _who(context),
                }
                if scored["champion_version"] == version:
                    summary.update(
                        decision="skipped", reason=f"version {version} already is {name}@{self.alias}"
                    )
                    self._record(client, summary, decided_by="gate")
                    return summary
                if decision.decision == "refuse":
                    return self._refuse(context, client, summary, decided_by="gate")
                if decision.decision == "await_approval":
                    return self._request_approval(context, summary)
                who = (self.approved_by or "").strip() or "gate (automatic)"
                return self._promote(context, client, summary, decided_by=who)
            except MlflowException as err:
                raise self.hook.unavailable(err) from err

    def _score(self, client: MlflowClient, name: str, version: str) -> dict[str, Any]:
        from mlflow.exceptions import MlflowException

        from mlops_provider.core.gate import alias_version, jsonable_metrics
        from mlops_provider.core.metrics import compute_metrics, slice_metrics
        from mlops_provider.operators.evaluation import holdout_xy, load_holdout, load_model

        try:
            challenger_mv = client.get_model_version(name, version)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise AirflowFailException(
                    f"{name} version {version} does not exist: {err.message}"
                ) from None
            raise
        tags = challenger_mv.tags
        run_id = tags.get(lineage.TRAINING_RUN_ID) or challenger_mv.run_id
        try:
            features = json.loads(tags[lineage.FEATURES])
            target = tags[lineage.TARGET]
        except (KeyError, ValueError):
            raise AirflowFailException(
                f"{name} version {version} lacks the lineage tags {lineage.FEATURES!r}/{lineage.TARGET!r} "
                "(register it with RegisterModelOperator)"
            ) from None
        task_type = self.ml_task_type or tags.get(lineage.TASK_TYPE) or "classification"
        if tags.get(lineage.TASK_TYPE) and tags[lineage.TASK_TYPE] != task_type:
            raise AirflowFailException(
                f"task_type {task_type!r} differs from {tags[lineage.TASK_TYPE]!r} recorded on {name} version {version}"
            )
        holdout = load_holdout(client, run_id)
        where = f"holdout of {name} version {version} (run {run_id})"
        X, y = holdout_xy(holdout, features, target, where)
        column = None
        if self.slices:
            column = self.slices.get("column") if isinstance(self.slices, Mapping) else None
            if column not in holdout.columns:
                raise AirflowFailException(
                    f"{where}: slices.column {column!r} is not a column of the holdout"
                )
        record, why = self._evaluation_record(
            client, challenger_mv, run_id, holdout, task_type, features, target, column
        )
        if record is not None:
            self.log.info(
                "Challenger metrics from EvaluateModelOperator's record on run %s (not recomputed)", run_id
            )
            challenger_source = "evaluation"
            challenger = jsonable_metrics(record["metrics"])
            slices = record["slices"] if column else None
        else:
            self.log.info("Scoring the challenger %s v%s here: %s", name, version, why)
            challenger_source = "computed"
            challenger_model = load_model(f"models:/{name}/{version}")
            challenger = jsonable_metrics(compute_metrics(challenger_model, X, y, task_type).values)
            slices = slice_metrics(challenger_model, X, y, holdout[column], task_type) if column else None
        # Only "no such alias" means no champion; any other error propagates and fails the task.
        champion_version = alias_version(client, name, self.alias)
        champion = None
        if champion_version is not None and champion_version != version and not self.skip_vs_champion:
            champion_mv = client.get_model_version(name, champion_version)
            champion_features = json.loads(champion_mv.tags.get(lineage.FEATURES, json.dumps(features)))
            champion_target = champion_mv.tags.get(lineage.TARGET, target)
            if champion_target != target:
                raise AirflowFailException(
                    f"champion {name} version {champion_version} predicts {champion_target!r}, the challenger {target!r}"
                )
            X_champion, _ = holdout_xy(
                holdout, champion_features, target, f"{where}, for champion version {champion_version}"
            )
            champion_model = load_model(f"models:/{name}/{champion_version}")
            champion = jsonable_metrics(compute_metrics(champion_model, X_champion, y, task_type).values)
        self.log.info(
            "Challenger %s v%s metrics %s (%s); champion v%s metrics %s",
            name,
            version,
            challenger,
            challenger_source,
            champion_version,
            champion,
        )
        return {
            "task_type": task_type,
            "challenger": challenger,
            "challenger_source": challenger_source,
            "champion": champion,
            "champion_version": champion_version,
            "slices": slices,
        }

    def _evaluation_record(
        self,
        client: MlflowClient,
        challenger_mv: Any,
        run_id: str,
        holdout: Any,
        task_type: str,
        features: list[str],
        target: str,
        slice_column: str | None,
    ) -> tuple[Mapping[str, Any] | None, str]:
        """EvaluateModelOperator's record when its challenger numbers can be reused, else None and why."""
        from mlops_provider.operators.evaluation import holdout_record_mismatch, read_holdout_record

        if not self.reuse_evaluation:
            return None, "reuse_evaluation=False"
        record, why = read_holdout_record(client, run_id)
        if record is None:
            return None, why
        gated = {
            str(metric)
            for section in (self.thresholds, self.vs_champion)
            if isinstance(section, Mapping)  # a malformed section fails validate_config later
            for metric in section
        }
        why = holdout_record_mismatch(
            record,
            run_id=run_id,
            model_source=challenger_mv.source,
            holdout=holdout,
            task_type=task_type,
            features=features,
            target=target,
            gated=gated,
            slice_column=slice_column,
        )
        if why:
            return None, f"the evaluation record on run {run_id} does not match: {why}"
        return record, ""

    # -- outcomes ----------------------------------------------------------------------------------
    def _record(self, client: MlflowClient, summary: dict[str, Any], decided_by: str) -> None:
        from mlops_provider.core.gate import decision_tags

        summary["decided_by"] = decided_by
        summary["decided_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for key, value in decision_tags(summary).items():
            client.set_model_version_tag(summary["model_name"], summary["new_version"], key, value)

    def _refuse(
        self, context: Context, client: MlflowClient, summary: dict[str, Any], decided_by: str
    ) -> dict[str, Any]:
        summary["decision"] = "refused"
        self._record(client, summary, decided_by)
        small = _small(summary)
        context["ti"].xcom_push(key="return_value", value=small)
        message = f"{summary['model_name']} version {summary['new_version']} refused: {summary['reason']}"
        if self.on_refuse == "skip":
            raise AirflowSkipException(message)
        raise AirflowFailException(message)

    def _promote(
        self, context: Context, client: MlflowClient, summary: dict[str, Any], decided_by: str
    ) -> dict[str, Any]:
        name, version = summary["model_name"], summary["new_version"]
        try:
            self._move_alias(
                client,
                model_name=name,
                alias=self.alias,
                expected_old=summary["old_version"],
                new_version=version,
                why=summary["reason"],
                who=decided_by,
                action="promote",
                lock_owner=summary["dag_run"],
            )
        except _ChampionChanged as changed:
            summary["reason"] = (
                f"{changed}; the gates were scored against version {changed.expected}: re-run the gate"
            )
            return self._refuse(context, client, summary, decided_by)
        summary["decision"] = "promoted"
        self._record(client, summary, decided_by)
        MLflowModelVersionLink.persist(context, MLflowModelVersionLink.url(self.hook.settings, name, version))
        return _small(summary)

    # -- phase 2: human in the loop ---------------------------------------------------------------
    def _request_approval(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import TaskAwaitingInput
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        gates = (
            "\n".join(
                f"- {g['gate']} `{g['metric']}`: value {g['value']}, threshold {g['threshold']}, passed {g['passed']}"
                for g in summary["gates"]
            )
            or "- no gates configured"
        )
        body = (
            f"Move **{summary['model_name']}@{self.alias}** from version {summary['old_version']} to "
            f"version {summary['new_version']}?\n\n{summary['reason']}\n\n{gates}\n\n"
            f"Challenger metrics: `{json.dumps(summary['metrics']['challenger'])}`\n\n"
            f"Champion metrics: `{json.dumps(summary['metrics']['champion'])}`"
        )
        upsert_hitl_detail(
            ti_id=context["ti"].id,
            options=[APPROVE, REJECT],
            subject=f"Promote {summary['model_name']} version {summary['new_version']} to {self.alias}?",
            body=body,
            defaults=[REJECT],
            multiple=False,
            params={},
        )
        self.log.info("Gates passed; waiting for a human decision in Required Actions")
        raise TaskAwaitingInput(
            method_name="execute_complete", kwargs={"summary": _small(summary)}, timeout=self.response_timeout
        )

    def execute_complete(
        self,
        context: Context,
        event: Mapping[str, Any] | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resume after the human decision: promote on "Approve", refuse otherwise."""
        if not summary:
            raise AirflowFailException("resumed without the gate summary: cannot complete the promotion")
        if not event or "chosen_options" not in event:
            raise AirflowFailException(f"resumed without a human decision (event {event!r})")
        summary = dict(summary)
        user = event.get("responded_by_user") or {}
        who = (user.get("name") or user.get("id")) if isinstance(user, Mapping) else str(user)
        chosen = list(event.get("chosen_options") or [])
        with self.hook.session() as client:
            from mlflow.exceptions import MlflowException

            try:
                if event.get("timedout") or not who:
                    summary["reason"] = f"{summary['reason']}; no human answered in time (default: {REJECT})"
                    return self._refuse(context, client, summary, decided_by="timeout")
                if chosen != [APPROVE]:
                    summary["reason"] = f"{summary['reason']}; rejected by {who}"
                    return self._refuse(context, client, summary, decided_by=f"human:{who}")
                summary["reason"] = f"{summary['reason']}; approved by {who}"
                return self._promote(context, client, summary, decided_by=f"human:{who}")
            except MlflowException as err:
                raise self.hook.unavailable(err) from err


def _small(summary: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
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
    )
    return {k: summary.get(k) for k in keys}


class RollbackModelOperator(MLflowHookMixin, BaseOperator, _AliasMover):
    """
    Move ``alias`` back to the version holding ``previous_champion`` (or to ``to_version``).

    Recorded like a promotion: the alias history gains an entry (action ``rollback``), the version moved
    away from keeps ``previous_champion``, and the target version gets ``mlops.rollback.*`` tags.

    :param model_name: registered model name. (templated)
    :param to_version: version to restore; default the ``previous_champion`` alias. (templated)
    :param alias: the alias to move. (templated)
    :param reason: why; recorded. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"decision": "rolled_back"|"skipped", "gates": [], "old_version", "new_version", "reason"}``
    """

    template_fields: Sequence[str] = ("model_name", "to_version", "alias", "reason", "mlflow_conn_id")
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#ffd0d0"

    def __init__(
        self,
        *,
        model_name: str,
        to_version: str | int | None = None,
        alias: str = "champion",
        reason: str = "rollback",
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.to_version = to_version
        self.alias = alias
        self.reason = reason
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlflow.exceptions import MlflowException

        from mlops_provider.core.gate import PREVIOUS_ALIAS, alias_version

        name = _check_name(self.model_name)
        who = _who(context)
        with self.hook.session() as client:
            try:
                current = alias_version(client, name, self.alias)
                if self.to_version not in (None, ""):
                    target = str(self.to_version).strip()
                else:
                    target = alias_version(client, name, PREVIOUS_ALIAS)
                    if target is None:
                        raise AirflowFailException(
                            f"{name} has no {PREVIOUS_ALIAS!r} alias to roll back to; pass to_version"
                        )
                try:
                    client.get_model_version(name, target)
                except MlflowException as err:
                    if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                        raise AirflowFailException(f"{name} version {target!r} does not exist") from None
                    raise
                summary = {
                    "decision": "rolled_back",
                    "gates": [],
                    "old_version": current,
                    "new_version": target,
                    "reason": self.reason,
                    "alias": self.alias,
                    "model_name": name,
                }
                if current == target:
                    summary.update(
                        decision="skipped", reason=f"{name}@{self.alias} already is version {target}"
                    )
                    return summary
                try:
                    self._move_alias(
                        client,
                        model_name=name,
                        alias=self.alias,
                        expected_old=current,
                        new_version=target,
                        why=self.reason,
                        who=who,
                        action="rollback",
                        lock_owner=who,
                    )
                except _ChampionChanged as changed:
                    raise AirflowFailException(
                        f"rollback of {name}@{self.alias} not done: {changed}"
                    ) from None
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                for key, value in {
                    "mlops.rollback.from_version": str(current),
                    "mlops.rollback.reason": self.reason[:4000],
                    "mlops.rollback.by": who,
                    "mlops.rollback.at": stamp,
                }.items():
                    client.set_model_version_tag(name, target, key, value)
            except MlflowException as err:
                raise self.hook.unavailable(err) from err
        MLflowModelVersionLink.persist(context, MLflowModelVersionLink.url(self.hook.settings, name, target))
        return summary
