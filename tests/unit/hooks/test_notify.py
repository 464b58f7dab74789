"""Notifications (mlops_provider.hooks.notify): what each event says, and that it reaches people through
Airflow's own notifiers: a real SMTP server (aiosmtpd) and a local HTTP server standing in for Slack's
API and an Incoming Webhook. Hostile text (Jinja, HTML, Slack mentions, header injection) stays text."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from api_server import free_port

from mlops_provider.hooks.notify import TaskNotice
from mlops_provider.hooks.notify_messages import EVENTS, notice, one_line

BASE = "https://airflow.example.com/ui/"
RUN_ID = "manual__2024-05-01T02:00:00+00:00"


# -- fixtures: a real SMTP server, a fake Slack API, a task context ---------------------------------
@dataclass
class Inbox:
    messages: list[tuple[str, list[str], email.message.EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


def smtp_connection(port: int, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {
                "disable_ssl": True,
                "disable_tls": True,
                "from_email": "airflow@example.com",
                "timeout": 5,
                "retry_limit": 0,
                **extra,
            },
        }
    )


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """A real SMTP server on 127.0.0.1 (connection ``smtp_test``); ``smtp_down`` points at a closed port."""
    from aiosmtpd.controller import Controller

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", smtp_connection(controller.port))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DOWN", smtp_connection(free_port()))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """A local HTTP server answering Slack's chat.postMessage and an Incoming Webhook; the posts made."""
    posts: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            posts.append({"path": self.path, "body": json.loads(body or b"{}")})
            reply = b'{"ok": true}' if self.path.startswith("/api/") else b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if reply != b"ok" else "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    api = {"conn_type": "slack", "password": "xoxb-test", "extra": {"base_url": f"{url}/api/"}}
    hook = {"conn_type": "slackwebhook", "password": f"{url}/services/T0/B0/secret"}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_TEST", json.dumps(api))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_HOOK_TEST", json.dumps(hook))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    try:
        yield posts
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class TI:
    """What a callback reads from ``context["ti"]``: its ids and the XComs of the run."""

    task_id: str
    xcoms: dict[str, Any] = field(default_factory=dict)
    dag_id: str = "churn_retrain"
    run_id: str = RUN_ID
    map_index: int = -1
    try_number: int = 2

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcoms.get(task_ids)


def ctx(task_id: str, result: Any = None, **extra: Any) -> dict[str, Any]:
    ti = TI(task_id, {task_id: result} if result is not None else {})
    return {"ti": ti, "task_instance": ti, **extra}


SMTP = {"type": "smtp", "conn_id": "smtp_test", "to": ["ml-team@example.com"], "cc": [], "on": EVENTS}
REFUSED = {
    "decision": "refused",
    "model_name": "churn",
    "old_version": "3",
    "new_version": "4",
    "reason": "vs_champion f1_macro: challenger 0.71 < champion 0.74 + 0.0",
    "gates": [
        {"gate": "threshold_min", "metric": "f1_macro", "value": 0.71, "threshold": 0.6, "passed": True},
        {"gate": "vs_champion", "metric": "f1_macro", "value": -0.03, "threshold": 0.0, "passed": False},
    ],
}


def html_of(message: email.message.EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


# -- what each event says ---------------------------------------------------------------------------
def test_a_refused_gate_names_model_version_decision_reason_and_links_to_the_run(inbox: Inbox) -> None:
    TaskNotice("churn", "promote", "failed", [SMTP])(ctx("promote_model", REFUSED))

    [(sender, recipients, message)] = inbox.messages
    assert sender == "airflow@example.com"
    assert recipients == ["ml-team@example.com"]
    assert message["Subject"] == "[mlops] churn version 4: challenger refused"
    body = html_of(message)
    assert "<th" in body
    assert ">churn<" in body
    assert ">4<" in body
    assert "vs_champion f1_macro: challenger 0.71 &lt; champion 0.74 + 0.0" in body
    assert "vs_champion f1_macro: -0.03 (threshold 0) failed" in body  # the gate that failed, only
    assert "threshold_min" not in body
    run = "https://airflow.example.com/ui/dags/churn_retrain/runs/manual__2024-05-01T02%3A00%3A00%2B00%3A00"
    assert f'href="{run}/tasks/promote_model"' in body
    assert f'href="{run}"' in body


def test_a_refusal_is_not_also_a_failure_and_a_success_says_nothing(inbox: Inbox) -> None:
    only_failed = {**SMTP, "on": ("failed",)}
    TaskNotice("churn", "promote", "failed", [only_failed])(ctx("promote_model", REFUSED))
    TaskNotice("churn", "promote", "skipped", [only_failed])(ctx("promote_model", REFUSED))
    promoted = {**REFUSED, "decision": "promoted"}
    TaskNotice("churn", "promote", "success", [SMTP])(ctx("promote_model", promoted))
    no_drift = {"status": "no_drift", "champion_version": "3"}
    TaskNotice("churn", "drift", "success", [SMTP])(ctx("check_drift", no_drift))
    TaskNotice("churn", "performance", "success", [SMTP])(ctx("check_performance", {"status": "ok"}))
    assert inbox.messages == []
    TaskNotice("churn", "promote", "skipped", [SMTP])(ctx("promote_model", REFUSED))  # on_refuse: skip
    assert [m["Subject"] for *_, m in inbox.messages] == ["[mlops] churn version 4: challenger refused"]


def test_a_task_failed_for_good_says_which_task_why_and_which_version(inbox: Inbox) -> None:
    error = RuntimeError("MLflow unreachable at http://mlflow:5000")
    context = ctx("promote_model", None, exception=error)
    context["ti"].xcoms["register_model"] = {"version": "7", "model_name": "churn"}
    TaskNotice("churn", "promote", "failed", [SMTP])(context)
    TaskNotice("churn", "task", "failed", [SMTP])(ctx("train_model", None, exception=ValueError("no rows")))

    first, second = (m for *_, m in inbox.messages)
    assert first["Subject"] == "[mlops] churn version 7: task failed"
    assert "RuntimeError: MLflow unreachable at http://mlflow:5000" in html_of(first)
    assert "promote_model failed (try 2, no retry left)" in html_of(first)
    assert second["Subject"] == "[mlops] churn version n/a: task failed"
    assert "ValueError: no rows" in html_of(second)


def test_drift_performance_and_rollback_events(inbox: Inbox) -> None:
    drift = {
        "status": "drift",
        "champion_version": "3",
        "drift_share": 0.75,
        "threshold_share": 0.5,
        "drifted_columns": [f"c{i}" for i in range(14)],
        "current_uri": "/data/batches/2024-05-01.csv",
        "n_current": 200,
    }
    TaskNotice("churn", "drift", "success", [SMTP])(ctx("check_drift", drift))
    monitor = {
        "model_name": "churn",
        "status": "degraded",
        "action": "rollback",
        "reason": "f1_macro dropped 0.09 below its holdout value",
        "champion_version": "5",
        "target_version": "4",
        "labels": 420,
        "live": {"f1_macro": 0.612345},
    }
    only_performance = {**SMTP, "to": ["oncall@example.com"], "on": ("performance",)}
    TaskNotice("churn", "performance", "success", [SMTP, only_performance])(ctx("check_performance", monitor))
    manual = {
        "decision": "rolled_back",
        "model_name": "churn",
        "old_version": "5",
        "new_version": "4",
        "reason": "bad release",
    }
    TaskNotice("churn", "rollback", "success", [SMTP])(ctx("rollback", manual))

    subjects = [(m["Subject"], rcpt) for _, rcpt, m in inbox.messages]
    assert subjects == [
        ("[mlops] churn version 3: drift detected", ["ml-team@example.com"]),
        ("[mlops] churn version 4: champion rolled back", ["ml-team@example.com"]),  # the most specific
        ("[mlops] churn version 5: champion degraded", ["oncall@example.com"]),  # what it listens to
        ("[mlops] churn version 4: champion rolled back", ["ml-team@example.com"]),
    ]
    drift_body, rolled, degraded, manual_body = (html_of(m) for *_, m in inbox.messages)
    assert "share of drifted columns 0.75 reached 0.5; drifted: c0, c1" in drift_body
    assert "c9 (+4 more)" in drift_body
    assert "c10" not in drift_body
    assert "rolled back from version 5 to version 4 on live labels" in rolled
    assert "live f1_macro: 0.6123" in degraded
    assert "degraded on 420 labelled rows" in degraded
    assert "rolled back from version 5 to version 4" in manual_body
    assert "bad release" in manual_body


def test_an_approval_waiting_links_the_required_actions_page(inbox: Inbox) -> None:
    summary = {**REFUSED, "decision": "pending", "alias": "champion", "reason": "all gates passed"}
    TaskNotice("churn", "promote", "awaiting", [SMTP]).approval_waiting(ctx("promote_model"), summary)
    [(_, _, message)] = inbox.messages
    assert message["Subject"] == "[mlops] churn version 4: approval waiting"
    body = html_of(message)
    assert "/runs/manual__2024-05-01T02%3A00%3A00%2B00%3A00/tasks/promote_model/required_actions" in body
    assert "waiting for a person to approve it as champion" in body
    assert "threshold_min f1_macro: 0.71 (threshold 0.6)" in body  # every gate, passed ones too


# -- hostile text ----------------------------------------------------------------------------------
HOSTILE_REASON = (
    "{{ conn.smtp_test.password }}{% for x in range(3) %}loop{% endfor %} <script>alert(1)</script>"
    "\r\nBcc: attacker@evil.example\r\nSubject: pwned <!channel> <https://evil.example|click>"
)


def test_hostile_text_is_never_rendered_injected_or_linked(inbox: Inbox, slack: list[dict[str, Any]]) -> None:
    summary = {
        **REFUSED,
        "new_version": "4\r\nBcc: attacker@evil.example",
        "reason": HOSTILE_REASON,
        "model_name": "churn",
    }
    notifiers = [SMTP, {"type": "slack", "conn_id": "slack_test", "channel": "#ml", "on": EVENTS}]
    TaskNotice("churn", "promote", "failed", notifiers)(ctx("promote_model", summary))

    [(_, recipients, message)] = inbox.messages
    assert recipients == ["ml-team@example.com"]  # no Bcc smuggled in through a header
    assert "Bcc" not in message
    assert message["Subject"].count("\n") == 0
    assert message["Subject"] == "[mlops] churn version 4 Bcc: attacker@evil.example: challenger refused"
    body = html_of(message)
    assert "{{ conn.smtp_test.password }}" in body  # no Jinja rendering
    assert "{% for x in range(3) %}loop{% endfor %}" in body
    assert "looploop" not in body
    assert "<script>" not in body
    assert "&lt;script&gt;" in body
    [post] = slack
    text = post["body"]["text"]
    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text
    assert "<https://evil.example|click>" not in text
    assert "{{ conn.smtp_test.password }}" in text


def test_a_notifier_that_fails_warns_and_the_others_still_send(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    down = {**SMTP, "conn_id": "smtp_down"}
    missing = {**SMTP, "conn_id": "smtp_not_configured"}
    with caplog.at_level(logging.WARNING, logger="mlops_provider.hooks.notify"):
        TaskNotice("churn", "promote", "failed", [down, missing, SMTP])(ctx("promote_model", REFUSED))
    assert len(inbox.messages) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("through smtp connection 'smtp_down' not sent" in w for w in warnings)
    assert any("'smtp_not_configured' not sent" in w for w in warnings)


def test_a_notice_that_cannot_be_read_warns_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(TI):
        def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
            raise ConnectionError("API server gone")

    ti = Broken("check_drift")
    with caplog.at_level(logging.WARNING, logger="mlops_provider.hooks.notify"):
        TaskNotice("churn", "drift", "success", [SMTP])({"ti": ti})
        TaskNotice("churn", "promote", "awaiting", [SMTP]).approval_waiting({}, None)  # no ti at all
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "No notification for churn",
        "No approval notification for churn",
    ]


@pytest.mark.parametrize(
    "result",
    [["not", "a", "mapping"], "drift", 42, {"status": "drift", "drifted_columns": None}],
)
def test_odd_return_values_still_give_sane_messages(inbox: Inbox, result: Any) -> None:
    TaskNotice("churn", "drift", "success", [SMTP])(ctx("check_drift", result))
    if isinstance(result, dict):
        [(_, _, message)] = inbox.messages
        assert message["Subject"] == "[mlops] churn version n/a: drift detected"
    else:
        assert inbox.messages == []


# -- Slack ------------------------------------------------------------------------------------------
def test_slack_api_and_incoming_webhook_get_the_message(slack: list[dict[str, Any]]) -> None:
    notifiers = [
        {"type": "slack", "conn_id": "slack_test", "channel": "#ml-alerts", "on": EVENTS},
        {"type": "slack_webhook", "conn_id": "slack_hook_test", "on": ("refused",)},
    ]
    TaskNotice("churn", "promote", "failed", notifiers)(ctx("promote_model", REFUSED))
    api, hook = slack
    assert api["path"] == "/api/chat.postMessage"
    assert api["body"]["channel"] == "#ml-alerts"
    assert hook["path"] == "/services/T0/B0/secret"
    for text in (api["body"]["text"], hook["body"]["text"]):
        assert text.startswith("*[mlops] churn version 4: challenger refused*")
        assert "*Reason:* vs_champion f1_macro: challenger 0.71 &lt; champion 0.74 + 0.0" in text
        assert "|Open the task in Airflow>" in text
        assert "<https://airflow.example.com/ui/dags/churn_retrain/runs/" in text


# -- formatting helpers -----------------------------------------------------------------------------
def test_one_line_drops_every_line_break_and_bounds_the_length() -> None:
    assert one_line("a\r\nb\x00c\u2028d\x85e\tf", 100) == "a b c d e f"
    assert len(one_line("x" * 10_000, 200)) == 200


def test_a_huge_reason_is_cut_and_the_details_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    summary = {"reason": "r" * 100_000, "gates": [{"gate": "g", "passed": False}] * 1000}
    found = notice("failed", "m", summary, ctx("t"), details=[f"line {i}" for i in range(1000)])
    assert len(found.reason) == 2000
    assert len(found.details) == 10
    assert len(found.html()) < 5_000
    assert len(found.slack_text()) < 5_000
    assert found.subject() == "[mlops] m version n/a: task failed"
