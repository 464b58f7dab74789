"""Model cards, drawn: one registered version's intended use and owners, training data lineage and
fingerprint, holdout metrics and slices, robustness, feature importance, every gate decision with its
numbers, approvals, alias history and known limits, as Markdown and as one self-contained HTML page.

No Airflow and no MLflow here: :class:`ModelCard` holds what the model card hook gathered from the
registry (:mod:`mlops_provider.hooks.model_card`), :func:`sections` turns it into titled blocks, and
:func:`render_markdown` / :func:`render_html` draw the same blocks. Every value is hostile text (config
strings, registry tags, slice labels and feature names from the data): it is cleaned and clipped
(:func:`~mlops_provider.core.model_card_record.clean`), then HTML-escaped, quotes included, in the page
and backslash-escaped in Markdown. The page loads nothing (inline CSS only); its CSP meta tag forbids
every script, and links are http(s) only.

Gate results are drawn generically from the recorded decision: any gate (``threshold_min``,
``vs_champion``, ``slice_gap``, ``robustness``...) with its value, threshold, verdict, detail and any
other field it carries; any other key the decision recorded is listed under it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_provider.core import lineage
from mlops_provider.core.metrics import is_finite_number
from mlops_provider.core.model_card_record import (
    MAX_CELL,
    MAX_DECISIONS,
    MAX_ROWS,
    MAX_TEXT,
    clean,
    md_escape,
    num,
    parse_json,
    safe_url,
    status,
)

CARD_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
_LINEAGE = (
    ("Training data", lineage.TRAINING_DATA_URI),
    ("Training data fingerprint", lineage.TRAINING_DATA_FINGERPRINT),
    ("Training rows", lineage.TRAINING_DATA_ROWS),
    ("Target", lineage.TARGET),
    ("Features", lineage.FEATURES),
    ("ML task", lineage.TASK_TYPE),
    ("Data validation", lineage.VALIDATION_RESULT),
    ("Config hash", lineage.CONFIG_HASH),
    ("Provider version", lineage.CODE_VERSION),
    ("DAG", lineage.DAG_ID),
    ("DAG run", lineage.RUN_ID),
    ("Task", lineage.TASK_ID),
    ("MLflow training run", lineage.TRAINING_RUN_ID),
    ("Trigger", lineage.TRIGGER_CAUSE),
    ("Triggered by", lineage.TRIGGER_USER),
    ("Forced retrain", lineage.TRIGGER_FORCED),
)
GATE_HEADS = ("Gate", "Metric", "Value", "Threshold", "Result", "Detail", "Other fields")
_GATE_KEYS = ("gate", "metric", "value", "threshold", "passed", "detail")
_SHOWN_KEYS = {"decision", "reason", "decided_by", "decided_at", "at", "gates", "metrics", "approval"}
PASS, FAIL = "✓ pass", "✗ fail"

Block = tuple[
    Any, ...
]  # ("p"|"h3", text) | ("list", [text]) | ("kv"|"links", [(label, text)]) | ("table", ...)


@dataclass
class ModelCard:
    """What the hook gathered about one version."""

    model_name: str
    version: str
    written_at: str
    created_at: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)  # description, owners, limitations
    tags: Mapping[str, str] = field(default_factory=dict)  # the version's tags
    metrics: Mapping[str, Any] = field(default_factory=dict)  # holdout metrics by name
    slices: Mapping[str, Any] | None = None  # evaluation/slice_metrics.json
    importance: Mapping[str, Any] | None = None  # evaluation/permutation_importance.json
    decisions: Sequence[Mapping[str, Any]] = ()  # oldest first
    history: Sequence[Mapping[str, Any]] = ()  # alias moves to or from this version, oldest first
    aliases: Sequence[str] = ()  # the aliases it holds now
    links: Mapping[str, Any] = field(default_factory=dict)  # label -> URL (http(s) ones are shown)


def _text(value: Any, limit: int = MAX_CELL) -> str:
    return "—" if value is None or value == "" else clean(value, limit)


def _dump(value: Any, limit: int = MAX_CELL) -> str:
    return clean(value if isinstance(value, str) else json.dumps(value, default=str), limit)


# -- sections --------------------------------------------------------------------------------------
def _intended_use(card: ModelCard) -> list[Block]:
    owners = card.config.get("owners") or []
    return [
        ("p", card.config.get("description") or "Not stated (model.description in the model's config)."),
        ("kv", [("Owners", ", ".join(owners) if owners else "not stated (model.owners)")]),
    ]


def _lineage(card: ModelCard) -> list[Block]:
    rows = []
    for label, key in _LINEAGE:
        value = card.tags.get(key)
        names = parse_json(value) if key == lineage.FEATURES else None
        if isinstance(names, list) and names:
            more = f" … and {len(names) - 50} more" if len(names) > 50 else ""
            value = ", ".join(clean(n, 200) for n in names[:50]) + more
        rows.append((label, _text(value, 3000)))
    return [("kv", rows)]


def _metrics(card: ModelCard) -> list[Block]:
    if not card.metrics:
        return [("p", "No holdout metrics recorded (EvaluateModelOperator did not run).")]
    rows = [[clean(k, 100), num(v)] for k, v in sorted(card.metrics.items())[:MAX_ROWS]]
    return [("table", ("Metric", "Holdout value"), rows)]


def _slices(card: ModelCard) -> list[Block]:
    raw = card.slices or {}
    found = raw.get("slices")
    items = (
        [(k, v) for k, v in list(found.items())[:MAX_ROWS] if isinstance(v, Mapping)]
        if isinstance(found, Mapping)
        else []
    )
    if not items:
        return [("p", "No slices evaluated (evaluation.slices in the config).")]
    names = sorted({str(m) for _, v in items if isinstance(v.get("metrics"), Mapping) for m in v["metrics"]})
    names = names[:12]
    rows = []
    for label, report in items:
        metrics: Any = report.get("metrics")
        metrics = metrics if isinstance(metrics, Mapping) else {}
        rows.append([clean(label, 200), num(report.get("rows")), *(num(metrics.get(m)) for m in names)])
    column = f"Sliced by column {_text(raw.get('column'), 200)}."
    return [("p", column), ("table", ("Slice", "Rows", *(clean(m, 100) for m in names)), rows)]


def _importance(card: ModelCard) -> list[Block]:
    raw = card.importance or {}
    features = [f for f in raw.get("features") or [] if isinstance(f, Mapping)][:MAX_ROWS]
    if not features:
        return [("p", "No feature importance recorded.")]
    rows = [
        [_text(f.get("feature"), 200), num(f.get("importance_mean")), num(f.get("importance_std"))]
        for f in features
    ]
    note = f"Permutation importance on at most {num(raw.get('scoring_rows_max'))} holdout rows."
    return [("p", note), ("table", ("Feature", "Mean importance", "Std"), rows)]


def gate_rows(gates: Any) -> list[list[str]]:
    """One row per recorded gate result, whatever the gate, with any extra fields it carries."""
    rows = []
    for g in gates[:MAX_ROWS] if isinstance(gates, list) else []:
        if not isinstance(g, Mapping):
            continue
        other = "; ".join(f"{clean(k, 50)}={_dump(v, 200)}" for k, v in g.items() if k not in _GATE_KEYS)
        rows.append(
            [
                _text(g.get("gate"), 100),
                _text(g.get("metric"), 100),
                num(g.get("value")),
                num(g.get("threshold")),
                PASS if g.get("passed") is True else FAIL,
                _text(g.get("detail")),
                other or "—",
            ]
        )
    return rows


def _comparison(metrics: Any) -> list[Block]:
    if not isinstance(metrics, Mapping) or not isinstance(metrics.get("challenger"), Mapping):
        return []
    new = metrics["challenger"]
    old = metrics.get("champion") if isinstance(metrics.get("champion"), Mapping) else None
    rows = []
    for name in sorted(map(str, new))[:MAX_ROWS]:
        a, b = new.get(name), (old or {}).get(name)
        diff = float(a) - float(b) if is_finite_number(a) and is_finite_number(b) else None
        rows.append([clean(name, 100), num(a), num(b) if old else "no champion", num(diff)])
    return [("table", ("Metric", "This version", "Champion (same holdout)", "Difference"), rows)]


def _decisions(card: ModelCard) -> list[Block]:
    if not card.decisions:
        return [("p", "No gate decision recorded yet.")]
    blocks: list[Block] = []
    for d in reversed(card.decisions[-MAX_DECISIONS:]):
        by = f" by {clean(d['decided_by'], 300)}" if d.get("decided_by") else ""
        blocks.append(
            ("h3", f"{_text(d.get('decision'), 50)} at {_text(d.get('decided_at') or d.get('at'), 50)}{by}")
        )
        blocks.append(("p", _text(d.get("reason"), MAX_TEXT)))
        rows = gate_rows(d.get("gates"))
        blocks.append(("table", GATE_HEADS, rows) if rows else ("p", "No gates configured."))
        blocks += _comparison(d.get("metrics"))
        other = [
            (clean(k, 100), _dump(v)) for k, v in d.items() if k not in _SHOWN_KEYS and v not in (None, "")
        ]
        if other:
            blocks.append(("kv", other))
    return blocks


def _robustness(card: ModelCard) -> list[Block]:
    """The robustness gate of the latest decision that has one (and any ``robustness`` record)."""
    for d in reversed(card.decisions[-MAX_DECISIONS:]):
        found = d.get("gates") if isinstance(d.get("gates"), list) else []
        gates = [
            g for g in found[:MAX_ROWS] if isinstance(g, Mapping) and "robust" in clean(g.get("gate"), 100)
        ]
        extra = d.get("robustness")
        if gates or extra:
            blocks: list[Block] = [("table", GATE_HEADS, gate_rows(gates))] if gates else []
            if isinstance(extra, Mapping):
                blocks.append(("kv", [(clean(k, 100), _dump(v)) for k, v in extra.items()]))
            elif extra:
                blocks.append(("p", _dump(extra, MAX_TEXT)))
            return blocks
    return [("p", "No robustness check recorded in the gate decisions.")]


def _approvals(card: ModelCard) -> list[Block]:
    rows = []
    for d in card.decisions[-MAX_DECISIONS:]:
        a = d.get("approval")
        if isinstance(a, Mapping):
            rows.append(
                [
                    _text(a.get("by"), 200),
                    _text(a.get("at"), 50),
                    _text(a.get("answer"), 50),
                    _text(a.get("comment"), 1000),
                ]
            )
        elif str(d.get("decided_by") or "").startswith("human:"):
            rows.append(
                [
                    clean(str(d["decided_by"])[6:], 200),
                    _text(d.get("decided_at"), 50),
                    _text(d.get("decision"), 50),
                    "—",
                ]
            )
    if not rows:
        return [("p", "No human approval recorded.")]
    return [("table", ("Who", "When", "Answer", "Comment"), rows)]


def _history(card: ModelCard) -> list[Block]:
    held = ", ".join(f"@{clean(a, 250)}" for a in card.aliases) or "none"
    blocks: list[Block] = [("kv", [("Aliases now", held)])]
    keys = ("when", "alias", "action", "from", "to", "who", "why")
    rows = [[_text(m.get(k)) for k in keys] for m in card.history[-MAX_ROWS:]]
    if rows:
        blocks.append(("table", ("When", "Alias", "Action", "From", "To", "By", "Why"), rows))
    rollback = [(k, card.tags.get(f"mlops.rollback.{k}")) for k in ("from_version", "reason", "by", "at")]
    if rollback[-1][1]:
        blocks.append(("kv", [(f"Restored by a rollback: {k}", _text(v, 1000)) for k, v in rollback]))
    return blocks


def sections(card: ModelCard) -> list[tuple[str, list[Block]]]:
    """The card's sections in order, each a title and its blocks (both renderers draw these)."""
    limits = list(card.config.get("limitations") or [])
    links = [(clean(k, 100), v) for k, v in card.links.items() if safe_url(v)]
    when = [("Registered", _text(card.created_at, 50)), ("Card written", _text(card.written_at, 50))]
    return [
        (
            "Status",
            [
                ("p", status(card.version, card.decisions[-MAX_DECISIONS:], card.history[-MAX_ROWS:])),
                ("kv", when),
            ],
        ),
        ("Intended use and owners", _intended_use(card)),
        ("Training data and lineage", _lineage(card)),
        ("Holdout metrics", _metrics(card)),
        ("Slices", _slices(card)),
        ("Robustness", _robustness(card)),
        ("Feature importance", _importance(card)),
        ("Gate decisions", _decisions(card)),
        ("Approvals", _approvals(card)),
        ("Alias history", _history(card)),
        (
            "Known limits",
            [("list", limits) if limits else ("p", "None stated (model.limitations in the config).")],
        ),
        *([("Links", [("links", links)])] if links else []),
    ]


def title(card: ModelCard) -> str:
    return f"Model card: {clean(card.model_name, 300)} version {clean(card.version, 50)}"


# -- Markdown --------------------------------------------------------------------------------------
def _md_cell(value: Any) -> str:
    return md_escape(value, MAX_CELL).replace("\n", " ")


def _md_block(block: Block) -> str:
    kind = block[0]
    if kind == "h3":
        return f"### {_md_cell(block[1])}"
    if kind == "p":
        return "  \n".join(md_escape(line) for line in clean(block[1], MAX_TEXT).splitlines() or [""])
    if kind == "list":
        return "\n".join(f"- {md_escape(item).replace(chr(10), ' ')}" for item in block[1])
    if kind == "kv":
        return "\n".join(f"- **{_md_cell(k)}:** {_md_cell(v)}" for k, v in block[1])
    if kind == "links":  # safe_url: no space, bracket or quote
        return "\n".join(f"- [{_md_cell(k)}](<{v}>)" for k, v in block[1])
    heads, rows = block[1], block[2]
    lines = ["| " + " | ".join(map(_md_cell, heads)) + " |", "|" + "---|" * len(heads)]
    return "\n".join(lines + ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows])


def render_markdown(card: ModelCard) -> str:
    """The card as Markdown; every value escaped, so a renderer shows it as text."""
    parts = [f"# {md_escape(title(card), 400)}"]
    for heading, blocks in sections(card):
        parts += [f"## {heading}", *(_md_block(b) for b in blocks)]
    return "\n\n".join(parts) + "\n"


# -- HTML ------------------------------------------------------------------------------------------
def _esc(value: Any, limit: int = MAX_TEXT) -> str:
    return html.escape(clean(value, limit), quote=True)


def _html_table(heads: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    css = {PASS: ' class="pass"', FAIL: ' class="fail"'}
    head = "".join(f"<th>{_esc(h, MAX_CELL)}</th>" for h in heads)
    body = "".join(
        "<tr>" + "".join(f"<td{css.get(c, '')}>{_esc(c, MAX_CELL)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_block(block: Block) -> str:
    kind = block[0]
    if kind == "h3":
        return f"<h3>{_esc(block[1], MAX_CELL)}</h3>"
    if kind == "p":
        return f"<p>{_esc(block[1])}</p>"
    if kind == "list":
        return "<ul>" + "".join(f"<li>{_esc(item)}</li>" for item in block[1]) + "</ul>"
    if kind == "kv":
        return "<dl>" + "".join(f"<dt>{_esc(k, 200)}</dt><dd>{_esc(v)}</dd>" for k, v in block[1]) + "</dl>"
    if kind == "links":
        items = (
            f'<li><a href="{_esc(v)}" rel="noopener noreferrer">{_esc(k, 100)}</a></li>' for k, v in block[1]
        )
        return "<ul>" + "".join(items) + "</ul>"
    return _html_table(block[1], block[2])


STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1f2328}"
    "h1{font-size:1.5rem}h2{font-size:1.15rem;border-bottom:1px solid #d0d7de;margin-top:1.8rem}"
    "h3{font-size:1rem}p,dd,td{white-space:pre-wrap;overflow-wrap:anywhere}dt{font-weight:600}"
    "dd{margin:0 0 .4rem 1rem}.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:13px}"
    "th,td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top}"
    "th{background:#f6f8fa}.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:600}"
)


def render_html(card: ModelCard) -> str:
    """The card as one self-contained HTML page: inline CSS, no script, every value HTML-escaped."""
    heading = _esc(title(card), 400)
    parts = [
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CARD_CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{heading}</title><style>{STYLE}</style></head><body><h1>{heading}</h1>",
    ]
    for name, blocks in sections(card):
        parts.append(f"<section><h2>{_esc(name, 200)}</h2>{''.join(map(_html_block, blocks))}</section>")
    return "\n".join([*parts, "</body></html>\n"])
