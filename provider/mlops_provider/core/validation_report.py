"""What a validation outputs: the small XCom summary, the failure message, the full JSON document and the
self-contained HTML page (inline CSS, no scripts, no network).

Every value that lands in the page (suite, URIs, column names, expectation arguments, observed and
unexpected values, errors, counts) goes through :func:`_esc` (HTML-escaped, quotes included), and the
page carries its own Content-Security-Policy (:data:`PAGE_CSP`: no script runs even when the file is
opened outside the plugin, which adds a sandboxing policy of its own).
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_provider.core.validation import FailedExpectation, ValidationOutcome

MAX_VALUE_CHARS = 200

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}
.meta{color:#57606a;margin:0 0 16px}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.ok{background:#1a7f37}.bad{background:#cf222e}
.cards{display:flex;gap:12px;margin:16px 0;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 16px;min-width:120px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de}
th,td{text-align:left;padding:6px 8px;border-top:1px solid #d0d7de;vertical-align:top}
th{background:#f0f3f6}
tr.fail td:first-child{border-left:4px solid #cf222e}tr.pass td:first-child{border-left:4px solid #1a7f37}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-word}
.err{color:#cf222e}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;background:#fff;border:1px solid #d0d7de;padding:10px 16px;border-radius:6px}
dt{color:#57606a}dd{margin:0}
"""


PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'"


def _esc(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, default=str)
    return html.escape(value)


def render_html(outcome: ValidationOutcome, data_uri: str, source: str, title: str | None = None) -> bytes:
    """A self-contained HTML page (inline CSS, no scripts, no network) describing the validation."""
    ok = outcome.success
    rows_html = []
    ordered = sorted(outcome.details, key=lambda d: d["success"])  # failures first
    for d in ordered:
        f: FailedExpectation = d["failure"]
        if d["success"]:
            finding = "passed"
        elif f.error:
            finding = f'<span class="err">{_esc(f.error)}</span>'
        else:
            parts = []
            if f.unexpected_count is not None:
                parts.append(f"{_esc(f.unexpected_count)} unexpected value(s)")
            if f.unexpected_values:
                parts.append(f"e.g. <code>{_esc(f.unexpected_values)}</code>")
            if f.observed_value is not None:
                parts.append(f"observed <code>{_esc(f.observed_value)}</code>")
            finding = ", ".join(parts) or "failed"
        if f.note:
            finding += f"<br><small>{_esc(f.note)}</small>"
        rows_html.append(
            f'<tr class="{"pass" if d["success"] else "fail"}"><td>{"pass" if d["success"] else "FAIL"}</td>'
            f"<td><code>{_esc(f.type)}</code></td><td>{_esc(f.column)}</td>"
            f"<td><code>{_esc(d['kwargs'])}</code></td><td>{finding}</td></tr>"
        )
    error = f'<p class="err"><b>{_esc(outcome.error)}</b></p>' if outcome.error else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{PAGE_CSP}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_esc(title or f"Validation: {outcome.suite_name}")}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>Data validation <span class="badge {"ok" if ok else "bad"}">{"PASSED" if ok else "FAILED"}</span></h1>
<p class="meta">Great Expectations {_esc(outcome.gx_version)} &middot; validated {_esc(outcome.started_at)} UTC
 in {_esc(round(float(outcome.duration_s), 2))} s</p>
<dl><dt>Suite</dt><dd><code>{_esc(outcome.suite_name)}</code> ({_esc(source)})</dd>
<dt>Data</dt><dd><code>{_esc(data_uri)}</code></dd>
<dt>Columns</dt><dd><code>{_esc(", ".join(outcome.columns))}</code></dd></dl>
{error}
<div class="cards"><div class="card">Rows<b>{_esc(outcome.rows)}</b></div>
<div class="card">Expectations<b>{_esc(outcome.evaluated)}</b></div>
<div class="card">Failed<b>{len(outcome.failed)}</b></div>
<div class="card">Passed<b>{_esc(outcome.evaluated - len(outcome.failed))}</b></div></div>
<table><thead><tr><th></th><th>Expectation</th><th>Column</th><th>Arguments</th><th>Finding</th></tr></thead>
<tbody>
{"".join(rows_html)}
</tbody></table>
</main></body></html>
"""
    return page.encode()


# -- outputs -----------------------------------------------------------------------------------------
def summary(
    outcome: ValidationOutcome,
    *,
    data_uri: str,
    report_uri: str | None,
    result_uri: str | None,
    status: str,
    max_failed: int = 50,
) -> dict[str, Any]:
    """The small XCom summary; the list of failed expectations is bounded by ``max_failed``."""
    return {
        "success": outcome.success,
        "status": status,
        "data_uri": data_uri,
        "suite": outcome.suite_name,
        "rows": outcome.rows,
        "evaluated": outcome.evaluated,
        "failed": len(outcome.failed),
        "failed_expectations": [f.as_dict() for f in outcome.failed[:max_failed]],
        "error": outcome.error,
        "report_uri": report_uri,
        "result_uri": result_uri,
    }


def failure_message(outcome: ValidationOutcome, data_uri: str, max_items: int = 20) -> str:
    """One message listing why the validation failed (for the task log and the exception)."""
    lines = [f"Validation of {data_uri} with suite {outcome.suite_name!r} failed"]
    if outcome.error:
        lines.append(f"  - {outcome.error}")
    for f in outcome.failed[:max_items]:
        text = f"  - {f.type}" + (f" on column {f.column!r}" if f.column else "")
        if f.error:
            text += f": {f.error}"
        elif f.unexpected_count is not None:
            text += f": {f.unexpected_count} unexpected value(s), e.g. {f.unexpected_values}"
        elif f.observed_value is not None:
            text += f": observed {json.dumps(f.observed_value, default=str)[:MAX_VALUE_CHARS]}"
        lines.append(text + (f" [{f.note}]" if f.note else ""))
    if len(outcome.failed) > max_items:
        lines.append(f"  ... and {len(outcome.failed) - max_items} more")
    lines.append(f"({len(outcome.failed)} of {outcome.evaluated} expectation(s) failed, {outcome.rows} rows)")
    return "\n".join(lines)


def result_document(outcome: ValidationOutcome, data_uri: str, source: str, **extra: Any) -> bytes:
    """The full result as JSON bytes: provenance (plus ``extra`` keys) and GX's validation result."""
    doc = {
        "data_uri": data_uri,
        "suite": outcome.suite_name,
        "suite_source": source,
        "rows": outcome.rows,
        "columns": outcome.columns,
        "success": outcome.success,
        "error": outcome.error,
        "validated_at": outcome.started_at,
        "great_expectations_version": outcome.gx_version,
        "validation_result": outcome.result,
        **extra,
    }
    return json.dumps(doc, indent=1, allow_nan=False).encode()
