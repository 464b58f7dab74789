"""Data drift: compare current data with the data the champion model was trained on (Evidently 0.7).

The decision comes from :func:`mlops_provider.core.drift.compute_drift` on all rows (a numpy/scipy port
of Evidently's methods, method pinned); Evidently renders the HTML report for humans, on a deterministic
sample when the data is large (the report says so).

Asset events: with ``emit_asset=True`` the task declares ``drift_asset(model_name)`` as its outlet (so
the UI and the scheduler know the dependency), and removes it from the running task's outlets unless
drift is confirmed. Airflow 3 registers events for the outlets the task holds when it succeeds, so a
check that finds no drift (or too little data) succeeds without an event, and a failed check emits
nothing. A retraining DAG scheduled on the asset with ``max_active_runs=1`` starts at most one retrain
at a time however many drift events arrive.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider.assets import drift_asset
from mlops_provider.core import lineage
from mlops_provider.core.data import resolve_uri
from mlops_provider.core.paths import reports_root, run_prefix
from mlops_provider.hooks.mlflow import MLflowHook, MLflowHookMixin
from mlops_provider.links.reports import DriftReportLink, report_url

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from mlops_provider.core.drift import DriftResult

CHAMPION_ALIAS = "champion"
REPORT_HTML = "drift_report.html"
REPORT_JSON = "drift_report.json"
SUMMARY_JSON = "drift_summary.json"
MAX_SUMMARY_COLUMNS = 100
REPORT_SEED = 0


@dataclass(frozen=True)
class Champion:
    """What the registry says about the current champion: its version and lineage."""

    version: str
    run_id: str | None
    training_data_uri: str | None
    features: list[str] | None
    target: str | None
    training_data_fingerprint: str | None = None


def find_champion(hook: MLflowHook, model_name: str, alias: str = CHAMPION_ALIAS) -> Champion | None:
    """
    The version behind ``models:/<model_name>@<alias>`` with its lineage tags (the version's tags,
    falling back to its source run's tags); ``None`` when the model or alias does not exist.

    :raises MLflowUnavailableError: MLflow could not be reached (retryable)
    """
    from mlflow.exceptions import MlflowException

    with hook.session() as client:
        try:
            version = client.get_model_version_by_alias(model_name, alias)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                return None
            raise hook.unavailable(err) from err
        except OSError as err:
            raise hook.unavailable(err) from err
        tags = dict(version.tags or {})
        wanted = (
            lineage.TRAINING_DATA_URI,
            lineage.FEATURES,
            lineage.TARGET,
            lineage.TRAINING_DATA_FINGERPRINT,
        )
        if version.run_id and any(key not in tags for key in wanted):
            try:
                run_tags = client.get_run(version.run_id).data.tags
            except MlflowException:
                run_tags = {}  # the run was deleted: the version's own tags are all there is
            except OSError as err:
                raise hook.unavailable(err) from err
            tags = {**{k: run_tags[k] for k in wanted if k in run_tags}, **tags}
    features = None
    raw = tags.get(lineage.FEATURES)
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = [part.strip() for part in raw.split(",") if part.strip()]
        if isinstance(parsed, list) and parsed and all(isinstance(f, str) for f in parsed):
            features = parsed
    return Champion(
        version=str(version.version),
        run_id=version.run_id,
        training_data_uri=tags.get(lineage.TRAINING_DATA_URI) or None,
        features=features,
        target=tags.get(lineage.TARGET) or None,
        training_data_fingerprint=tags.get(lineage.TRAINING_DATA_FINGERPRINT) or None,
    )


class DriftCheckMixin(MLflowHookMixin):
    """The drift check shared by :class:`DriftCheckOperator` and the drift sensor."""

    model_name: str
    current_uri: str
    reference_uri: str | None
    columns: Sequence[str] | None
    drift_share: float
    min_rows: int
    numeric_method: str
    categorical_method: str
    threshold: float | Mapping[str, float] | None
    report_sample_rows: int
    reports_uri: str | None
    base_dir: str | None
    data_conn_id: str | None
    mlflow_conn_id: str
    log: Any

    def check_drift_arguments(self) -> None:
        from mlops_provider.core.drift import check_arguments

        if not isinstance(self.model_name, str) or not self.model_name:
            raise ValueError(f"model_name must be a non-empty string, got {self.model_name!r}")
        if not isinstance(self.current_uri, str) or not self.current_uri:
            raise ValueError(f"current_uri must be a non-empty string, got {self.current_uri!r}")
        if (
            isinstance(self.report_sample_rows, bool)
            or not isinstance(self.report_sample_rows, int)
            or self.report_sample_rows < 1
        ):
            raise ValueError(f"report_sample_rows must be an integer >= 1, got {self.report_sample_rows!r}")
        check_arguments(
            drift_share=self.drift_share,
            min_rows=self.min_rows,
            numeric_method=self.numeric_method,
            categorical_method=self.categorical_method,
            threshold=self.threshold,
        )

    def resolve_reference(self) -> tuple[str, Champion | None]:
        """The reference URI and the champion (``AirflowSkipException`` when there is neither)."""
        champion = None
        if self.reference_uri is None or self.columns is None:
            champion = find_champion(self.hook, self.model_name)
        if self.reference_uri:
            return resolve_uri(self.reference_uri, self.base_dir), champion
        if champion is None:
            raise AirflowSkipException(
                f"nothing to compare with: model {self.model_name!r} has no @{CHAMPION_ALIAS} version in "
                f"MLflow at {self.hook.describe()} and no reference_uri was given"
            )
        if not champion.training_data_uri:
            raise AirflowFailException(
                f"champion version {champion.version} of {self.model_name!r} has no {lineage.TRAINING_DATA_URI!r} "
                "tag (on the version or its run): pass reference_uri"
            )
        return resolve_uri(champion.training_data_uri, self.base_dir), champion

    def _reference_changed(self, reference: pd.DataFrame, champion: Champion | None) -> bool:
        """Whether the champion's training data (read back from its lineage URI) changed since training."""
        if self.reference_uri or champion is None or not champion.training_data_fingerprint:
            return False
        from mlops_provider.core.data import fingerprint

        changed = fingerprint(reference) != champion.training_data_fingerprint
        if changed:
            self.log.warning(  # type: ignore[attr-defined]
                "The champion's training data at %s changed since version %s was trained (fingerprint "
                "differs): drift is measured against that data as it is now",
                champion.training_data_uri,
                champion.version,
            )
        return changed

    def _read(self, uri: str) -> pd.DataFrame:
        from mlops_provider.core.data import read_frame
        from mlops_provider.hooks.storage import filesystem_for

        return read_frame(uri, filesystem_for(uri, self.data_conn_id))

    def run_drift_check(self, context: Context, current_uri: str) -> tuple[dict[str, Any], DriftResult]:
        """Read both frames, decide on all rows, write the report; return the XCom summary."""
        from mlops_provider.core.drift import compute_drift

        self.check_drift_arguments()
        reference_uri, champion = self.resolve_reference()
        current_uri = resolve_uri(current_uri, self.base_dir)
        reference = self._read(reference_uri)
        current = self._read(current_uri)
        reference_changed = self._reference_changed(reference, champion)
        columns = (
            list(self.columns) if self.columns is not None else (champion.features if champion else None)
        )
        target = champion.target if champion else None
        result = compute_drift(
            reference,
            current,
            columns,
            drift_share=self.drift_share,
            min_rows=self.min_rows,
            numeric_method=self.numeric_method,
            categorical_method=self.categorical_method,
            threshold=self.threshold,
            target=target,
            reference_uri=reference_uri,
            current_uri=current_uri,
        )
        summary = result.summary(MAX_SUMMARY_COLUMNS)
        summary.update(
            reference_uri=reference_uri,
            current_uri=current_uri,
            champion_version=champion.version if champion else None,
            reference_changed_since_training=reference_changed,
            report_uri=None,
        )
        self.log.info(
            "Drift check of %s vs %s: %s (drifted share %s, threshold %s; drifted: %s)",
            current_uri,
            reference_uri,
            result.status,
            summary["drift_share"],
            result.threshold_share,
            ", ".join(result.drifted_columns) or "none",
        )
        ti = context["ti"]
        prefix = run_prefix(self.reports_uri or reports_root(), ti.dag_id, ti.run_id, ti.task_id)
        summary.update(self._write_report(reference, current, result, summary, prefix))
        if summary.get("report_uri"):
            DriftReportLink.persist(context, report_url(summary["report_uri"]))
        return summary, result

    # -- the report ----------------------------------------------------------------------------------
    def _write_report(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        result: DriftResult,
        summary: dict[str, Any],
        prefix: str,
    ) -> dict[str, Any]:
        """Write Evidently's HTML + JSON and our full result; a failing report never hides the decision."""
        from mlops_provider.core.data import write_bytes_atomic
        from mlops_provider.hooks.storage import filesystem_for

        fs = filesystem_for(prefix, self.data_conn_id)
        out: dict[str, Any] = {}
        full = {
            **result.to_dict(),
            **{k: summary[k] for k in ("reference_uri", "current_uri", "champion_version")},
        }
        try:
            rendered = self._render_report(reference, current, result, summary)
        except Exception as err:  # Evidently failing on odd data must not hide the decision
            self.log.exception("The Evidently report could not be built; the decision stands")
            out["report_error"] = f"{type(err).__name__}: {str(err)[:300]}"
            rendered = None
        if rendered is not None:
            html, snapshot_json, sample_note = rendered
            out["report_uri"] = write_bytes_atomic(html, f"{prefix}/{REPORT_HTML}", fs)
            out["report_json_uri"] = write_bytes_atomic(snapshot_json, f"{prefix}/{REPORT_JSON}", fs)
            if sample_note:
                out["report_sample"] = sample_note
            full["report_sample"] = sample_note
        full["report_error"] = out.get("report_error")
        out["summary_uri"] = write_bytes_atomic(
            json.dumps(full, indent=2, default=str).encode(), f"{prefix}/{SUMMARY_JSON}", fs
        )
        return out

    def _render_report(
        self, reference: pd.DataFrame, current: pd.DataFrame, result: DriftResult, summary: dict[str, Any]
    ) -> tuple[bytes, bytes, str | None] | None:
        from mlops_provider.core.drift import report_frames

        ref, cur, numeric, categorical, sampled = report_frames(
            reference, current, result, sample_rows=self.report_sample_rows, seed=REPORT_SEED
        )
        if not numeric and not categorical:
            self.log.warning("No column has a score: no Evidently report")
            return None
        import logging

        logging.getLogger("evidently").setLevel(logging.WARNING)
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        by_column = {c.column: c for c in result.columns}
        preset = DataDriftPreset(
            columns=numeric + categorical,
            drift_share=result.threshold_share,
            num_method=self.numeric_method,
            cat_method=self.categorical_method,
            per_column_threshold={n: by_column[n].threshold for n in numeric + categorical},
        )
        note = None
        if sampled:
            note = (
                f"Charts and scores in this report use a deterministic sample (seed {REPORT_SEED}) of "
                f"{len(ref)} of {len(reference)} reference rows and {len(cur)} of {len(current)} current rows. "
                "The drift decision was computed on all rows."
            )
        report = Report(
            [preset],
            metadata={
                "model_name": self.model_name,
                "decision": result.status,
                "reference_uri": summary["reference_uri"],
                "current_uri": summary["current_uri"],
                "sampled": sampled,
            },
            tags=["mlops_provider", "drift"],
        )
        snapshot = report.run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        with tempfile.TemporaryDirectory(prefix="mlops-drift-") as tmp:
            html_path = os.path.join(tmp, REPORT_HTML)
            json_path = os.path.join(tmp, REPORT_JSON)
            snapshot.save_html(html_path)  # a str: Path or file objects write nothing (Evidently 0.7)
            snapshot.save_json(json_path)
            with open(html_path, "rb") as handle:
                html = handle.read()
            with open(json_path, "rb") as handle:
                snapshot_json = handle.read()
        return _with_banner(html, self._banner(result, summary, note)), snapshot_json, note

    def _banner(self, result: DriftResult, summary: dict[str, Any], note: str | None) -> str:
        share = summary["drift_share"]
        lines = [
            f"<b>Drift decision for {escape(self.model_name)}: {escape(result.status)}</b>",
            f"drifted share {share if share is not None else 'n/a'} (threshold {result.threshold_share}); "
            f"drifted columns: {escape(', '.join(result.drifted_columns) or 'none')}",
            f"methods: numeric {escape(result.numeric_method)}, categorical {escape(result.categorical_method)}; "
            f"{result.n_reference} reference rows ({escape(summary['reference_uri'])}), "
            f"{result.n_current} current rows ({escape(summary['current_uri'])})",
        ]
        skipped = [c for c in result.columns if c.status in ("not_evaluable", "insufficient_data")]
        if skipped:
            lines.append(
                "not in the decision: "
                + escape("; ".join(f"{c.column} ({c.status}: {c.reason})" for c in skipped[:20]))
            )
        if result.reason:
            lines.append(escape(result.reason))
        if note:
            lines.append(f"<b>{escape(note)}</b>")
        body = "<br>".join(lines)
        return (
            '<div id="mlops-drift-decision" style="font-family:sans-serif;padding:12px;margin:8px;'
            f'border:2px solid #c77;background:#fff8f0">{body}</div>'
        )


def _with_banner(html: bytes, banner: str) -> bytes:
    text = html.decode("utf-8")
    marker = text.find("<body")
    if marker >= 0:
        end = text.find(">", marker) + 1
        text = text[:end] + banner + text[end:]
    else:
        text = banner + text
    return text.encode("utf-8")


class DriftCheckOperator(DriftCheckMixin, BaseOperator):
    """
    Compare current data with the data the champion model was trained on and decide whether it drifted.

    Per-column scores use Evidently 0.7's methods, pinned (``wasserstein`` for numeric and
    ``jensenshannon`` for categorical columns by default), computed on all rows; the dataset drifts when
    the share of drifted columns among the evaluated ones reaches ``drift_share``. Below ``min_rows`` rows
    the status is ``insufficient_data``, never ``drift``. An Evidently HTML report (and its JSON) is
    written under ``<reports root>/<dag_id>/<run_id>/<task_id>/`` and linked from the task ("Drift
    report"). When drift is confirmed the task emits an event on ``drift_asset(model_name)``.

    Returns (XCom) a small summary::

        {"status": "drift" | "no_drift" | "insufficient_data", "drift_share": 0.75, "threshold_share": 0.3,
         "drifted_columns": [...], "columns": {"temp_max": {"score", "method", "drifted", "status"}, ...},
         "n_reference": 1461, "n_current": 200, "reference_uri": ..., "current_uri": ...,
         "report_uri": ..., "champion_version": "3", ...}

    :param model_name: registered model name in MLflow; names the Asset (templated, but keep it literal
        when ``emit_asset`` is on: the outlet is fixed when the DAG is parsed)
    :param current_uri: the data to check: path, glob or URI (templated)
    :param reference_uri: the reference data; default the champion's training data, found through the
        ``mlops.training_data_uri`` tag of ``models:/<model_name>@champion`` (templated)
    :param columns: the columns to compare; default the champion's ``mlops.features`` tag, else every
        column but the champion's target (templated)
    :param drift_share: share of evaluated columns that must drift for the dataset to drift (0, 1]
    :param min_rows: fewer rows in either frame (or non-null values in a column) is ``insufficient_data``
    :param numeric_method: ``wasserstein`` (normed, drift >= 0.1), ``ks`` (p <= 0.05) or ``jensenshannon``
    :param categorical_method: ``jensenshannon`` (drift >= 0.1) or ``chisquare`` (p < 0.05)
    :param threshold: overrides the methods' thresholds: one number, or ``{"numeric": .., "categorical": ..}``
    :param report_sample_rows: the report is built on at most this many rows of each frame (deterministic
        sample, stated on the report); the decision always uses all rows
    :param reports_uri: root for reports (local path or s3://...); default ``MLOPS_REPORTS_URI`` or
        ``<MLOPS_HOME>/.mlops/reports`` (templated)
    :param base_dir: folder relative paths resolve against (templated)
    :param data_conn_id: Airflow connection for remote data and reports (e.g. ``aws_default``) (templated)
    :param mlflow_conn_id: MLflow connection (templated)
    :param emit_asset: emit an event on ``drift_asset(model_name)`` when drift is confirmed
    """

    template_fields: Sequence[str] = (
        "model_name",
        "current_uri",
        "reference_uri",
        "columns",
        "reports_uri",
        "base_dir",
        "data_conn_id",
        "mlflow_conn_id",
    )
    operator_extra_links = (DriftReportLink(),)
    ui_color = "#f4d6b0"

    def __init__(
        self,
        *,
        model_name: str,
        current_uri: str,
        reference_uri: str | None = None,
        columns: Sequence[str] | None = None,
        drift_share: float = 0.3,
        min_rows: int = 200,
        numeric_method: str = "wasserstein",
        categorical_method: str = "jensenshannon",
        threshold: float | Mapping[str, float] | None = None,
        report_sample_rows: int = 50_000,
        reports_uri: str | None = None,
        base_dir: str | None = None,
        data_conn_id: str | None = None,
        mlflow_conn_id: str = MLflowHook.default_conn_name,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        if emit_asset:
            outlets = kwargs.pop("outlets", None)
            if outlets is None:
                outlets = []
            elif not isinstance(outlets, list | tuple):
                outlets = [outlets]
            kwargs["outlets"] = [*outlets, drift_asset(model_name)]
        super().__init__(**kwargs)
        self.model_name = model_name
        self.current_uri = current_uri
        self.reference_uri = reference_uri
        self.columns = columns
        self.drift_share = drift_share
        self.min_rows = min_rows
        self.numeric_method = numeric_method
        self.categorical_method = categorical_method
        self.threshold = threshold
        self.report_sample_rows = report_sample_rows
        self.reports_uri = reports_uri
        self.base_dir = base_dir
        self.data_conn_id = data_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.emit_asset = emit_asset
        self._parsed_model_name = model_name

    def execute(self, context: Context) -> dict[str, Any]:
        asset = drift_asset(self._parsed_model_name) if self.emit_asset else None
        if asset is not None:
            # No event unless drift is confirmed: drop the outlet from this running copy of the task
            # (a new list: the parsed task object is shared), and put it back only on drift.
            self.outlets = [o for o in self.outlets if o != asset]
            if self.model_name != self._parsed_model_name:
                raise AirflowFailException(
                    f"model_name rendered to {self.model_name!r} but the drift Asset was fixed at parse time "
                    f"for {self._parsed_model_name!r}: use a literal model_name or emit_asset=False"
                )
        try:
            summary, _ = self.run_drift_check(context, self.current_uri)
        except ValueError as err:  # a bad argument: a retry cannot fix it
            raise AirflowFailException(str(err)) from err
        if asset is not None and summary["status"] == "drift":
            self.outlets = [*self.outlets, asset]
            ti = context["ti"]
            context["outlet_events"][asset].extra = {
                "status": summary["status"],
                "drift_share": summary["drift_share"],
                "drifted_columns": summary["drifted_columns"][:20],
                "current_uri": summary["current_uri"],
                "champion_version": summary["champion_version"],
                "dag_id": ti.dag_id,
                "run_id": ti.run_id,
            }
            self.log.info("Drift confirmed: emitting an event on %s", asset.uri)
        return summary
