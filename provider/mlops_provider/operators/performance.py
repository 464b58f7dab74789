"""Live performance: late labels joined to the predictions of a window, and what the monitor does about it.

The batches come from the scoring records in MLflow (``<model>-monitoring``, ``mlops.check=scoring``)
whose scoring date (the scoring run's logical date) lies in the ``window_days`` up to this run's
logical date, so re-running a past monitor run gives the same numbers for the same labels. Labels may
arrive partly and late: the join (:mod:`mlops_provider.core.feedback_join`) counts and names every
problem (duplicate ids, ids never scored, a label of the wrong type); only data that cannot be joined
at all fails the task. The judgement is :func:`mlops_provider.core.performance.judge`.

Asset events: the task declares ``performance_asset(model_name)`` as its outlet and keeps it only when
the champion is degraded (and no alias moved), as the drift check does with its Asset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.assets import performance_asset
from mlops_provider.core import lineage
from mlops_provider.exceptions import airflow_errors
from mlops_provider.hooks.feedback import FeedbackReader
from mlops_provider.hooks.mlflow import MLflowHookMixin
from mlops_provider.hooks.openlineage import PerformanceLineageMixin
from mlops_provider.hooks.performance import PerformanceHook
from mlops_provider.hooks.registry import ChampionChangedError, check_model_name
from mlops_provider.lean_setattr import LeanSetattrMixin
from mlops_provider.links.mlflow import MLflowModelVersionLink

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from mlops_provider.core.judgement import Judgement
    from mlops_provider.hooks.performance import ScoredBatch

DECIDED_BY = "live-performance"


def champion_alias(live: Mapping[str, Any], alias: str, champion: str) -> str | None:
    """The alias whose live rows are the champion version's: the served alias, or (right after a
    rollback or promotion) the shadow alias the version was scored under; None without any."""
    for name in (alias, *sorted(live)):
        if name in live and live[name]["version"] == champion:
            return name
    return None


class PerformanceMonitorOperator(LeanSetattrMixin, MLflowHookMixin, PerformanceLineageMixin, BaseOperator):
    """
    Join late labels to the predictions of the window, compute live metrics per alias, and act.

    * ``insufficient_labels`` (fewer than ``min_labels`` labelled champion rows): never an alarm;
    * ``degraded``: a live metric dropped more than ``degrade`` allows below the champion's own holdout
      value; the task emits the model's performance Asset event (the retrain DAG runs on it);
    * ``rollback="auto"``: the previous champion, scored in shadow on the same labelled rows, satisfies
      the ``vs_champion`` rules against the champion and is strictly better on ``primary_metric``: the
      champion rolls back (recorded like a rollback, by ``live-performance``);
    * ``mode="shadow"``: ``@challenger`` with ``shadow_min_labels`` labelled rows shared with the champion
      is promoted when it satisfies the ``vs_champion`` rules on them, else refused (its alias dropped).

    Each check is recorded in MLflow (``mlops.check=performance``: ``live.<metric>``, ``labels``, every
    alias's numbers, the label problems) for the Models page, with its reason in the XCom summary.

    :param model_name: registered model name (keep it literal: it names the Asset). (templated)
    :param labels_uri: where labels land (path, glob or URI). (templated)
    :param id_column: the id column of prediction and label files. (templated)
    :param label_column: the label column of the label files. (templated)
    :param task_type: ``classification`` | ``regression``. (templated)
    :param primary_metric: the headline metric. (templated)
    :param metrics: metrics to compute (default: the task's). (templated)
    :param custom_metrics: EvaluateModelOperator's; on live rows the function gets ``X=None``. (templated)
    :param cost_matrix: ``{actual: {predicted: cost}}``: the metric ``expected_cost``. (templated)
    :param degrade: ``{metric: {max_drop: x}}``. (templated)
    :param vs_champion: ``{metric: {min_delta: d}}``, the gate's rules, applied to live rows. (templated)
    :param window_days: days of scoring dates counted up to the run's logical date. (templated)
    :param min_labels: labelled champion rows needed before any alarm or move. (templated)
    :param rollback: ``auto`` | ``off``. (templated)
    :param mode: ``direct`` | ``shadow`` (promotion.mode). (templated)
    :param shadow_min_labels: labelled rows a shadow challenger needs. (templated)
    :param alias: the served alias. (templated)
    :param predictions_prefix: the folder or bucket path prediction files live in (the scoring output's
        folder); a scored-batch record naming a file elsewhere is left out. ``None``: no check (the DAG
        factory always sets it). (templated)
    :param base_dir: folder relative local paths resolve against. (templated)
    :param data_conn_id: Airflow connection for remote data URIs. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :return: ``{"status", "action", "reason", "champion_version", "labels", "live", "aliases",
        "label_issues", "window", "gates", "degrade", "monitoring_run_id"}``
    """

    template_fields: Sequence[str] = (
        "model_name",
        "labels_uri",
        "id_column",
        "label_column",
        "task_type_name",
        "primary_metric",
        "metrics",
        "custom_metrics",
        "cost_matrix",
        "degrade",
        "vs_champion",
        "window_days",
        "min_labels",
        "rollback",
        "mode",
        "shadow_min_labels",
        "alias",
        "predictions_prefix",
        "base_dir",
        "data_conn_id",
        "mlflow_conn_id",
    )
    operator_extra_links = (MLflowModelVersionLink(),)
    ui_color = "#e0d0ff"
    hook_class = PerformanceHook

    def __init__(
        self,
        *,
        model_name: str,
        labels_uri: str,
        id_column: str,
        label_column: str,
        task_type: str,
        primary_metric: str,
        metrics: Sequence[str] | None = None,
        custom_metrics: Mapping[str, Any] | None = None,
        cost_matrix: Mapping[str, Any] | None = None,
        degrade: Mapping[str, Mapping[str, float]] | None = None,
        vs_champion: Mapping[str, Mapping[str, float]] | None = None,
        window_days: int = 28,
        min_labels: int = 200,
        rollback: str = "off",
        mode: str = "direct",
        shadow_min_labels: int = 500,
        alias: str = "champion",
        predictions_prefix: str | None = None,
        base_dir: str | None = None,
        data_conn_id: str | None = None,
        mlflow_conn_id: str = PerformanceHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        outlets = kwargs.pop("outlets", None) or []
        kwargs["outlets"] = [
            *(outlets if isinstance(outlets, list | tuple) else [outlets]),
            performance_asset(model_name),
        ]
        super().__init__(**kwargs)
        self.model_name, self.labels_uri, self.id_column = model_name, labels_uri, id_column
        self.label_column, self.task_type_name, self.primary_metric = label_column, task_type, primary_metric
        self.metrics, self.degrade, self.vs_champion = metrics, degrade, vs_champion
        self.custom_metrics, self.cost_matrix = custom_metrics, cost_matrix
        self.window_days, self.min_labels, self.rollback = window_days, min_labels, rollback
        self.mode, self.shadow_min_labels, self.alias = mode, shadow_min_labels, alias
        self.predictions_prefix = predictions_prefix
        self.base_dir, self.data_conn_id, self.mlflow_conn_id = base_dir, data_conn_id, mlflow_conn_id
        self._parsed_model_name = model_name

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core.feedback import live_metrics, window
        from mlops_provider.core.performance import live_version_tags

        asset = performance_asset(self._parsed_model_name)
        self.outlets = [o for o in self.outlets if o != asset]  # put back only when degraded
        settings = self._settings(context)
        name = check_model_name(self.model_name)
        monitor_date = lineage.logical_date(context) or datetime.now(UTC)
        start, end = window(monitor_date, settings["window_days"])
        champion = self.hook.alias_version(name, self.alias)
        if champion is None:
            raise AirflowSkipException(f"{name}@{self.alias} does not exist: no live performance to watch")
        batches = self.hook.scored_batches(name, start, end)
        joined, issues, reader = self._joined(batches, (start, end))
        with airflow_errors():
            live = (
                {}
                if joined is None
                else live_metrics(
                    joined, task_type=self.task_type_name, metrics=settings["metrics"], plan=settings["plan"]
                )
            )
        served = champion_alias(live, self.alias, champion)  # whose live rows are the champion's
        judgement = self._judge(joined, live, champion, served, settings)
        summary = self._summary(judgement, live, issues, champion, served, (start, end), len(batches))
        summary["left_out"] = reader.summary()  # files a record or the labels folder does not vouch for
        self._act(context, judgement, summary)
        summary["monitoring_run_id"] = self._record(
            context, judgement, summary, live[served] if served else None, live, issues
        )
        tags = live_version_tags(summary, datetime.now(UTC))  # the reason on the version it judged
        self.hook.set_version_tags(name, champion, tags)
        summary["event"] = judgement.event and summary["action"] != "none"  # not when the move was cancelled
        if summary["event"]:
            self.outlets = [*self.outlets, asset]
            context["outlet_events"][asset].extra = {
                k: summary[k] for k in ("status", "reason", "champion_version", "labels", "live")
            }
            self.log.info("Champion degraded: emitting an event on %s", asset.uri)
        self.log.info("%s: %s (%s)", judgement.status, judgement.action, judgement.reason)
        return self.keep_for_lineage(summary)

    def _settings(self, context: Context) -> dict[str, Any]:
        """The arguments checked (a retry cannot fix them)."""
        from mlops_provider.core.judgement import check_settings
        from mlops_provider.hooks.metric_plan import metric_plan

        if self.model_name != self._parsed_model_name:
            raise AirflowFailException(
                f"model_name rendered to {self.model_name!r} but the performance Asset was fixed at parse "
                f"time for {self._parsed_model_name!r}: use a literal model_name"
            )
        plan = metric_plan(self.task_type_name, self.custom_metrics, self.cost_matrix, context)
        with airflow_errors():
            return check_settings(
                plan=plan,
                task_type=self.task_type_name,
                primary_metric=self.primary_metric,
                metrics=self.metrics,
                degrade=self.degrade,
                vs_champion=self.vs_champion,
                window_days=self.window_days,
                min_labels=self.min_labels,
                rollback=self.rollback,
                mode=self.mode,
                shadow_min_labels=self.shadow_min_labels,
            )

    def _joined(
        self, batches: list[ScoredBatch], span: tuple[datetime, datetime]
    ) -> tuple[pd.DataFrame | None, Any, FeedbackReader]:
        """Predictions of the window joined with every label file that has arrived."""
        import pandas as pd

        from mlops_provider.core.feedback import LabelIssues, prepare_labels
        from mlops_provider.core.feedback_join import join_labels
        from mlops_provider.core.judgement import CHALLENGER, PREVIOUS

        reader = FeedbackReader(self.data_conn_id, self.base_dir, self.predictions_prefix)
        aliases = [self.alias, PREVIOUS, CHALLENGER]
        with airflow_errors():
            found = reader.predictions(batches, aliases, self.id_column, span)
            files = reader.label_files(self.labels_uri)
            labels = [
                prepare_labels(
                    reader.label_frame(f), id_column=self.id_column, label_column=self.label_column, source=f
                )
                for f in files
            ]
            if not found or not labels:
                self.log.info(
                    "%d prediction file(s), %d label file(s): nothing to join", len(found), len(files)
                )
                return None, LabelIssues(), reader
            joined, issues = join_labels(
                pd.concat(found, ignore_index=True),
                pd.concat(labels, ignore_index=True),
                id_column=self.id_column,
                task_type=self.task_type_name,
                where=reader.resolve(self.labels_uri),
                served_alias=self.alias,
            )
        return joined, issues, reader

    def _judge(
        self,
        joined: pd.DataFrame | None,
        live: dict[str, Any],
        champion: str,
        served: str | None,
        settings: dict[str, Any],
    ) -> Judgement:
        from mlops_provider.core.feedback import paired_metrics
        from mlops_provider.core.judgement import CHALLENGER, PREVIOUS, judge

        entry = live[served] if served else None
        paired = {}
        for other in (PREVIOUS, CHALLENGER):
            if other not in live or served in (None, other) or joined is None:
                continue
            if self.hook.alias_version(self.model_name, other) != live[other]["version"]:
                continue  # the alias moved since those rows were scored: they no longer speak for it
            if other == CHALLENGER and not self.hook.passed_gate(self.model_name, live[other]["version"]):
                self.log.warning(
                    "@%s version %s never passed the gate: not judged", other, live[other]["version"]
                )
                continue
            with airflow_errors():
                found = paired_metrics(
                    joined,
                    served,
                    other,
                    task_type=self.task_type_name,
                    metrics=settings["metrics"],
                    id_column=self.id_column,
                    plan=settings["plan"],
                )
            found[self.alias], found["versions"][self.alias] = (
                found.pop(served),
                found["versions"].pop(served),
            )
            paired[other] = found
        holdout = self.hook.holdout_metrics(self.model_name, champion)
        return judge(
            alias=self.alias,
            champion=entry,
            holdout=holdout,
            paired_previous=paired.get(PREVIOUS),
            paired_challenger=paired.get(CHALLENGER),
            settings=settings,
        )

    def _summary(
        self,
        judgement: Judgement,
        live: dict[str, Any],
        issues: Any,
        champion: str,
        served: str | None,
        span: tuple[datetime, datetime],
        batches: int,
    ) -> dict[str, Any]:
        entry = live[served] if served else {}
        return {
            "model_name": self.model_name,
            "status": judgement.status,
            "action": judgement.action,
            "reason": judgement.reason,
            "champion_version": champion,
            "labels": int(entry.get("labels") or 0),
            "live": entry.get("metrics") or {},
            "aliases": {k: {x: v[x] for x in ("version", "labels", "metrics")} for k, v in live.items()},
            "label_issues": issues.as_dict(),
            "label_notes": issues.reasons(),
            "window": {"start": span[0].isoformat(), "end": span[1].isoformat(), "batches": batches},
            "gates": [g.as_dict() for g in judgement.gates],
            "degrade": [g.as_dict() for g in judgement.degrade],
            "target_version": judgement.target_version,
        }

    def _act(self, context: Context, judgement: Judgement, summary: dict[str, Any]) -> None:
        """The one alias move the judgement asks for; a champion moved meanwhile cancels it."""
        from mlops_provider.core.judgement import live_decision

        if judgement.action not in ("rollback", "promote", "refuse_challenger"):
            return
        who = lineage.who(lineage.task_identity(context))
        decision = live_decision(summary, judgement, DECIDED_BY, who)
        try:
            if judgement.action == "rollback":
                self.hook.rollback_on_labels(
                    self.model_name,
                    self.alias,
                    judgement.target_version,
                    judgement.reason,
                    DECIDED_BY,
                    request_key=who,
                    expected=summary["champion_version"],
                )
            elif judgement.action == "promote":
                self.hook.promote_challenger(decision, self.alias, lock_owner=who)
            else:
                self.hook.refuse_challenger(decision)
        except ChampionChangedError as changed:
            summary["action"], summary["reason"] = "none", f"{judgement.reason}; not done: {changed}"
            judgement.action = "none"
            return
        url = self.hook.model_version_url(self.model_name, str(judgement.target_version))
        MLflowModelVersionLink.persist(context, url)

    def _record(
        self,
        context: Context,
        judgement: Judgement,
        summary: dict[str, Any],
        champion: dict[str, Any] | None,
        live: dict[str, Any],
        issues: Any,
    ) -> str:
        from mlops_provider.core.performance import performance_record

        record = performance_record(
            model=self.model_name,
            status=judgement.status,
            action=summary["action"],
            reason=summary["reason"],
            champion=champion,
            aliases=live,
            labels=issues.as_dict(),
            identity=lineage.task_identity(context),
            logical_date=lineage.logical_date(context),
            checked_at=datetime.now(UTC),
            primary_metric=self.primary_metric,
        )
        return self.hook.monitoring.record_check(record)
