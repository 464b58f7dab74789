"""Evidently 0.7: the one home of every call to Evidently. It renders the drift report humans read.

The drift *decision* never comes from here (see :mod:`mlops_provider.core.drift`): Evidently gets the
columns that have a score, with the same kinds and methods as the decision, on a deterministic sample
when the data is large, and the HTML opens with a banner stating the decision (and the samples, if any:
the report's, and the decision's when the data was above the check's ``max_rows``).
Every value that reaches the banner (model name, URIs, column names, reasons) is HTML-escaped.

Evidently embeds column names and category values unescaped in JSON inside ``<script>`` blocks of its
HTML, so a value holding ``</script>`` would end the block and turn the rest into markup. Before Evidently
sees them, ``</`` and ``<!--`` in column names, text values (object, string and category columns) and
report metadata become ``<\\/`` and ``<\\!--`` (:func:`defuse`):
the report shows the backslash, the browser never leaves the script. (The plugin also serves reports
under a sandboxing Content-Security-Policy.)
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_provider.core.drift import DEFAULT_REPORT_SAMPLE_ROWS, report_frames

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.core.drift import DriftResult

REPORT_HTML = "drift_report.html"
REPORT_JSON = "drift_report.json"
REPORT_SEED = 0
BANNER_ID = "mlops-drift-decision"
MAX_BANNER_COLUMNS = 20


@dataclass(frozen=True)
class RenderedReport:
    """An Evidently drift report: the HTML (with the decision banner), the snapshot JSON, the sample note."""

    html: bytes
    snapshot_json: bytes
    sample_note: str | None = None


class EvidentlyHook(BaseHook):
    """
    Renders Evidently reports (no connection: Evidently runs in the worker).

    Usage::

        rendered = EvidentlyHook().drift_report(
            reference, current, result, model_name="seattle_weather",
            reference_uri="s3://data/train.csv", current_uri="s3://data/batch.csv",
        )
        if rendered is not None:
            data_hook.write_bytes(rendered.html, f"{prefix}/drift_report.html")
    """

    hook_name = "Evidently"

    def drift_report(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        result: DriftResult,
        *,
        model_name: str,
        reference_uri: str,
        current_uri: str,
        sample_rows: int = DEFAULT_REPORT_SAMPLE_ROWS,
        seed: int = REPORT_SEED,
    ) -> RenderedReport | None:
        """
        Evidently's ``DataDriftPreset`` report of ``current`` vs ``reference`` with the methods, kinds and
        per-column thresholds of ``result``; ``None`` when no column has a score. Evidently's own errors
        propagate (the caller decides whether a report failure matters).
        """
        ref, cur, numeric, categorical, sampled = report_frames(
            reference, current, result, sample_rows=sample_rows, seed=seed
        )
        if not numeric and not categorical:
            self.log.warning("No column has a score: no Evidently report")
            return None
        note = sample_note(result, len(ref), len(cur), seed) if sampled or result.sample else None
        metadata = {
            "model_name": defuse(model_name),
            "decision": result.status,
            "reference_uri": defuse(reference_uri),
            "current_uri": defuse(current_uri),
            "sampled": sampled or result.sample is not None,
        }
        thresholds = {c.column: c.threshold for c in result.columns}
        renames = {name: defuse(name) for name in numeric + categorical}
        ref, cur = _defuse_frame(ref, renames), _defuse_frame(cur, renames)
        html, snapshot_json = self._run_preset(
            ref,
            cur,
            [renames[n] for n in numeric],
            [renames[n] for n in categorical],
            {renames[n]: thresholds[n] for n in numeric + categorical},
            result,
            metadata,
        )
        banner = drift_banner(
            model_name, result, reference_uri=reference_uri, current_uri=current_uri, note=note
        )
        return RenderedReport(with_banner(html, banner), snapshot_json, note)

    @staticmethod
    def _run_preset(
        ref: pd.DataFrame,
        cur: pd.DataFrame,
        numeric: list[str],
        categorical: list[str],
        thresholds: dict[str, float | None],
        result: DriftResult,
        metadata: dict[str, Any],
    ) -> tuple[bytes, bytes]:
        """Run the preset; the HTML and the snapshot JSON as bytes."""
        import logging

        logging.getLogger("evidently").setLevel(logging.WARNING)
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        preset = DataDriftPreset(
            columns=numeric + categorical,
            drift_share=result.threshold_share,
            num_method=result.numeric_method,
            cat_method=result.categorical_method,
            per_column_threshold=thresholds,
        )
        report = Report([preset], metadata=metadata, tags=["mlops_provider", "drift"])
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
        return html, snapshot_json


def sample_note(result: DriftResult, report_reference: int, report_current: int, seed: int) -> str:
    """What the report's rows and the decision's rows were, against the data's true row counts."""
    charts = (
        f"Charts and scores in this report use a deterministic sample (seed {seed}) of {report_reference} "
        f"of {result.n_reference} reference rows and {report_current} of {result.n_current} current rows."
    )
    if result.sample is not None:
        return f"{charts} {result.sample.note()}"
    return f"{charts} The drift decision was computed on all rows."


def defuse(text: str) -> str:
    """``text`` that cannot end or comment out a ``<script>`` block it is embedded in."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _defuse_value(value: Any) -> Any:
    return defuse(value) if isinstance(value, str) and ("</" in value or "<!--" in value) else value


def _defuse_frame(frame: pd.DataFrame, renames: dict[str, str]) -> pd.DataFrame:
    """``frame`` with columns renamed and ``</``/``<!--`` defused in text values (a new frame): object,
    string and category columns alike."""
    out = frame.rename(columns=renames)
    for name in out.columns:
        column = out[name]
        if (
            column.dtype == object
            or str(column.dtype) == "category"
            or str(column.dtype).startswith("string")
        ):
            out[name] = column.astype(object).map(_defuse_value)
    return out


def drift_banner(
    model_name: str, result: DriftResult, *, reference_uri: str, current_uri: str, note: str | None = None
) -> str:
    """The HTML block stating the decision at the top of the report; every value is escaped."""
    share = None if result.drift_share is None else round(result.drift_share, 6)
    lines = [
        f"<b>Drift decision for {escape(model_name)}: {escape(result.status)}</b>",
        f"drifted share {share if share is not None else 'n/a'} (threshold {result.threshold_share}); "
        f"drifted columns: {escape(', '.join(result.drifted_columns) or 'none')}",
        f"methods: numeric {escape(result.numeric_method)}, categorical {escape(result.categorical_method)}; "
        f"{result.n_reference} reference rows ({escape(reference_uri)}), "
        f"{result.n_current} current rows ({escape(current_uri)})",
    ]
    skipped = [c for c in result.columns if c.status in ("not_evaluable", "insufficient_data")]
    if skipped:
        lines.append(
            "not in the decision: "
            + escape("; ".join(f"{c.column} ({c.status}: {c.reason})" for c in skipped[:MAX_BANNER_COLUMNS]))
        )
    if result.reason:
        lines.append(escape(result.reason))
    if note:
        lines.append(f"<b>{escape(note)}</b>")
    body = "<br>".join(lines)
    return (
        f'<div id="{BANNER_ID}" style="font-family:sans-serif;padding:12px;margin:8px;'
        f'border:2px solid #c77;background:#fff8f0">{body}</div>'
    )


def with_banner(html: bytes, banner: str) -> bytes:
    """``html`` with ``banner`` inserted right after the opening ``<body>`` tag (or at the start)."""
    text = html.decode("utf-8")
    marker = text.find("<body")
    if marker >= 0:
        end = text.find(">", marker) + 1
        text = text[:end] + banner + text[end:]
    else:
        text = banner + text
    return text.encode("utf-8")
