"""What a notification says: one :class:`Notice` per event, read from a task's XCom return value.

Each ``*_notices`` reader takes the summary an operator returned (PromoteModelOperator,
DriftCheckOperator, PerformanceMonitorOperator, RollbackModelOperator) and says whether its event happened
and how to tell it: model, version, decision, reason, details, and links to the task instance and the DAG
run in the Airflow UI (``[api] base_url``). The text is untrusted (a gate's reason can quote a trigger's
``force_reason``, drift names the data's columns): :meth:`Notice.html` and :meth:`Notice.slack_text`
escape it, a subject is one bounded line, and lengths are bounded. :mod:`.notify` sends it.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow.sdk import Context

EVENTS = ("refused", "drift", "performance", "approval_pending", "rollback", "failed")
TITLES = {
    "refused": "challenger refused",
    "drift": "drift detected",
    "performance": "champion degraded",
    "approval_pending": "approval waiting",
    "rollback": "champion rolled back",
    "failed": "task failed",
}
MAX_REASON = 2000
MAX_SUBJECT = 200
MAX_DETAILS = 10
DEFAULT_BASE_URL = "http://localhost:8080"
_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def one_line(value: Any, limit: int) -> str:
    """``value`` as one line of at most ``limit`` characters: no control characters, no line breaks."""
    text = " ".join(_BREAKS.sub(" ", str(value)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any, limit: int = MAX_REASON) -> str:
    """Free text kept to ``limit`` characters, its line breaks kept, other control characters dropped."""
    lines = [one_line(line, limit) for line in str(value).splitlines()]
    text = "\n".join(line for line in lines if line)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _slack(value: str) -> str:
    """Slack's mrkdwn escapes: ``&``, ``<`` and ``>`` (no links, mentions or channel pings from data)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def ui_base_url() -> str:
    """The Airflow UI's root, ``[api] base_url`` (as the task log links use it)."""
    from airflow.sdk.configuration import conf

    return str(conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL).rstrip("/")


@dataclass(frozen=True)
class Notice:
    """One event of one model, as people read it."""

    event: str
    model: str
    version: str | None
    decision: str
    reason: str
    run_url: str
    task_url: str
    action_url: str | None = None  # the Required Actions page of a waiting approval
    details: tuple[str, ...] = ()

    @property
    def shown_version(self) -> str:
        return one_line(self.version, 40) if self.version not in (None, "") else "n/a"

    def subject(self) -> str:
        return one_line(
            f"[mlops] {self.model} version {self.shown_version}: {TITLES[self.event]}", MAX_SUBJECT
        )

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("Model", self.model),
            ("Version", self.shown_version),
            ("Decision", self.decision),
            ("Reason", self.reason or "-"),
        ]

    def links(self) -> list[tuple[str, str]]:
        found = [("Approve or reject in Airflow", self.action_url)] if self.action_url else []
        return [*found, ("Open the task in Airflow", self.task_url), ("The DAG run", self.run_url)]

    def html(self) -> str:
        def cell(text: str) -> str:
            return html.escape(text).replace("\n", "<br>")

        rows = "".join(
            f'<tr><th align="left" valign="top">{k}</th><td>{cell(v)}</td></tr>' for k, v in self.rows()
        )
        details = "".join(f"<li>{cell(d)}</li>" for d in self.details)
        links = " | ".join(
            f'<a href="{html.escape(url, quote=True)}">{html.escape(label)}</a>'
            for label, url in self.links()
        )
        return (
            f"<p><b>{html.escape(self.subject())}</b></p><table>{rows}</table>"
            f"{f'<ul>{details}</ul>' if details else ''}<p>{links}</p>"
        )

    def slack_text(self) -> str:
        lines = [f"*{_slack(self.subject())}*"]
        lines += [f"*{k}:* {_slack(v)}" for k, v in self.rows()[2:]]
        lines += [f"• {_slack(d)}" for d in self.details]
        lines.append(" | ".join(f"<{url}|{label}>" for label, url in self.links()))
        return "\n".join(lines)


# -- what happened ---------------------------------------------------------------------------------
def task_links(context: Context) -> dict[str, Any]:
    """The task instance's links in the Airflow UI: its DAG run, itself, its Required Actions page."""
    ti = context["ti"]
    base = ui_base_url()
    run_url = f"{base}/dags/{quote(str(ti.dag_id), safe='')}/runs/{quote(str(ti.run_id), safe='')}"
    task_url = f"{run_url}/tasks/{quote(str(ti.task_id), safe='')}"
    map_index = getattr(ti, "map_index", -1)
    mapped = f"/mapped/{map_index}" if isinstance(map_index, int) and map_index >= 0 else ""
    return {"run_url": run_url, "task_url": task_url + mapped, "actions_url": f"{task_url}/required_actions"}


def gate_lines(summary: Mapping[str, Any], failed_only: bool) -> tuple[str, ...]:
    gates = [g for g in summary.get("gates") or [] if isinstance(g, Mapping)]
    lines = [
        f"{g.get('gate')} {g.get('metric')}: {_number(g.get('value'))} (threshold "
        f"{_number(g.get('threshold'))}){'' if g.get('passed') else ' failed'}"
        for g in gates
        if not (failed_only and g.get("passed"))
    ]
    return tuple(one_line(line, 300) for line in lines[:MAX_DETAILS])


def notice(event: str, model: str, summary: Mapping[str, Any], context: Context, **values: Any) -> Notice:
    """A :class:`Notice` of ``event``; ``values`` give version, decision, reason, details, action_url."""
    version, place = values.get("version"), task_links(context)
    return Notice(
        event=event,
        model=one_line(summary.get("model_name") or model, 250),
        version=None if version is None else str(version),
        decision=one_line(values.get("decision", event), 200),
        reason=_text(values.get("reason") if "reason" in values else summary.get("reason") or ""),
        details=tuple(one_line(d, 300) for d in values.get("details", ())[:MAX_DETAILS]),
        action_url=values.get("action_url"),
        run_url=place["run_url"],
        task_url=place["task_url"],
    )


def gate_notices(model: str, summary: Mapping[str, Any], context: Context) -> list[Notice]:
    """The promote task's outcome: a refused challenger."""
    if summary.get("decision") != "refused":
        return []
    details = gate_lines(summary, failed_only=True)
    return [notice("refused", model, summary, context, version=summary.get("new_version"), details=details)]


def drift_notices(model: str, summary: Mapping[str, Any], context: Context) -> list[Notice]:
    if summary.get("status") != "drift":
        return []
    columns = [str(c) for c in summary.get("drifted_columns") or []]
    more = f" (+{len(columns) - MAX_DETAILS} more)" if len(columns) > MAX_DETAILS else ""
    reason = (
        f"share of drifted columns {_number(summary.get('drift_share'))} reached "
        f"{_number(summary.get('threshold_share'))}; drifted: {', '.join(columns[:MAX_DETAILS])}{more}"
    )
    data = f"current data {summary.get('current_uri')} ({summary.get('n_current')} rows)"
    return [
        notice(
            "drift",
            model,
            summary,
            context,
            version=summary.get("champion_version"),
            decision="drift confirmed: the retrain DAG runs on it",
            reason=reason,
            details=(data,),
        )
    ]


def performance_notices(model: str, summary: Mapping[str, Any], context: Context) -> list[Notice]:
    """The monitor's outcome, most specific first: its rollback or refusal, then the degradation."""
    found: list[Notice] = []
    action, champion, target = (summary.get(k) for k in ("action", "champion_version", "target_version"))
    live = summary.get("live")
    live_items = list(live.items()) if isinstance(live, Mapping) else []
    details = tuple(f"live {k}: {_number(v)}" for k, v in live_items[:MAX_DETAILS])
    if action == "rollback":
        decision = f"rolled back from version {champion} to version {target} on live labels"
        found.append(
            notice("rollback", model, summary, context, version=target, decision=decision, details=details)
        )
    elif action == "refuse_challenger":
        decision = "shadow challenger refused on live labels"
        found.append(notice("refused", model, summary, context, version=target, decision=decision))
    if summary.get("status") == "degraded":
        decision = f"degraded on {summary.get('labels')} labelled rows"
        found.append(
            notice(
                "performance", model, summary, context, version=champion, decision=decision, details=details
            )
        )
    return found


def rollback_notices(model: str, summary: Mapping[str, Any], context: Context) -> list[Notice]:
    if summary.get("decision") != "rolled_back":
        return []
    decision = (
        f"rolled back from version {summary.get('old_version')} to version {summary.get('new_version')}"
    )
    return [
        notice("rollback", model, summary, context, version=summary.get("new_version"), decision=decision)
    ]


def approval_notice(model: str, summary: Mapping[str, Any], context: Context) -> Notice:
    """A manual approval that starts waiting: every gate it passed, and the Required Actions page."""
    decision = f"passed the gates; waiting for a person to approve it as {summary.get('alias') or 'champion'}"
    return notice(
        "approval_pending",
        model,
        summary,
        context,
        version=summary.get("new_version"),
        decision=decision,
        details=gate_lines(summary, failed_only=False),
        action_url=task_links(context)["actions_url"],
    )


RESULT_NOTICES = {
    "promote": gate_notices,
    "drift": drift_notices,
    "performance": performance_notices,
    "rollback": rollback_notices,
}


def failure_notice(model: str, summary: Mapping[str, Any], context: Context) -> Notice:
    error = context.get("exception")
    reason = f"{type(error).__name__}: {error}" if error is not None else "the task failed"
    ti = context["ti"]
    version = next(
        (summary[k] for k in ("new_version", "version", "champion_version") if summary.get(k)), None
    )
    decision = f"{ti.task_id} failed (try {getattr(ti, 'try_number', '?')}, no retry left)"
    return notice("failed", model, summary, context, version=version, decision=decision, reason=reason)
