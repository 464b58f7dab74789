"""Notifications through Airflow's own notifiers: what happened to a model, told by e-mail or Slack.

:class:`TaskNotice` is a task callback (``on_success_callback``, ``on_failure_callback``,
``on_skipped_callback``) the DAG factory attaches from a config's ``notify`` section. When the task ends
it reads the task's own XCom return value to decide whether an event happened (a refused gate, confirmed
drift, a degraded champion, a rollback, a failure for good; a manual approval that starts waiting is
told by :meth:`TaskNotice.approval_waiting`), builds one :class:`~.notify_messages.Notice` (model,
version, decision, reason, links to the task and the DAG run in the Airflow UI) and hands it to Airflow's
``SmtpNotifier``, ``SlackNotifier`` or ``SlackWebhookNotifier``, imported only then.

The text is untrusted: it is escaped (see :mod:`.notify_messages`) and never rendered as Jinja
(``notifier.notify(context)`` is called, not ``notifier(context)``, which would render the message's text
as a template with the task's context, connections included). A notifier that fails (SMTP down, Slack
refusing) logs a warning: it never fails the task, nor keeps the other notifiers from sending.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.hooks.notify_messages import (
    RESULT_NOTICES,
    Notice,
    approval_notice,
    failure_notice,
    one_line,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.bases.notifier import BaseNotifier

log = logging.getLogger(__name__)


def own_result(context: Context) -> Mapping[str, Any]:
    """The task's own ``return_value`` XCom of this try (``{}`` when it pushed none)."""
    ti = context["ti"]
    value = ti.xcom_pull(task_ids=ti.task_id, key="return_value")
    return value if isinstance(value, Mapping) else {}


# -- telling ---------------------------------------------------------------------------------------
def build_notifier(spec: Mapping[str, Any], found: Notice) -> BaseNotifier:
    """Airflow's notifier for ``spec`` (a ``notify.notifiers`` entry) carrying ``found``."""
    kind = spec["type"]
    if kind == "smtp":
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(
            smtp_conn_id=spec["conn_id"],
            to=list(spec["to"]),
            cc=list(spec.get("cc") or []) or None,
            from_email=spec.get("from_email"),
            subject=found.subject(),
            html_content=found.html(),
        )
    if kind == "slack":
        from airflow.providers.slack.notifications.slack import SlackNotifier

        return SlackNotifier(slack_conn_id=spec["conn_id"], channel=spec["channel"], text=found.slack_text())
    if kind == "slack_webhook":
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        return SlackWebhookNotifier(slack_webhook_conn_id=spec["conn_id"], text=found.slack_text())
    raise ValueError(f"unknown notifier type {kind!r}")


def send(spec: Mapping[str, Any], found: Notice, context: Context) -> bool:
    """Tell ``found`` through ``spec``'s notifier; a failure is a warning, never the task's failure."""
    try:
        build_notifier(spec, found).notify(context)  # not notifier(context): no Jinja on the text
    except Exception as error:
        log.warning(
            "Notification %r of %s through %s connection %r not sent: %s: %s",
            found.event,
            found.model,
            spec.get("type"),
            spec.get("conn_id"),
            type(error).__name__,
            one_line(error, 500),
        )
        return False
    log.info(
        "Notified %r of %s through %s connection %r", found.event, found.model, spec["type"], spec["conn_id"]
    )
    return True


class TaskNotice:
    """
    A task callback telling ``notifiers`` what a task's outcome means for ``model``.

    :param model: the model's name.
    :param kind: ``promote`` | ``drift`` | ``performance`` | ``rollback`` | ``task`` (any other task).
    :param outcome: ``success`` | ``failed`` | ``skipped``: which callback this is.
    :param notifiers: ``notify.notifiers`` entries as dicts, each with its events in ``on``.
    """

    def __init__(self, model: str, kind: str, outcome: str, notifiers: Sequence[Mapping[str, Any]]) -> None:
        self.model = model
        self.kind = kind
        self.outcome = outcome
        self.notifiers = tuple(notifiers)

    def __repr__(self) -> str:
        return f"TaskNotice({self.model!r}, {self.kind!r}, {self.outcome!r})"

    def __call__(self, context: Context) -> None:
        try:
            found = self.notices(context)
        except Exception as error:  # a notice is never worth a task: say why and go on
            log.warning(
                "No notification for %s: %s: %s", self.model, type(error).__name__, one_line(error, 500)
            )
            return
        self.tell(found, context)

    def notices(self, context: Context) -> list[Notice]:
        """What the outcome means, most specific first (a refused gate is a refusal, not a failure)."""
        summary = own_result(context)
        if self.kind == "promote" and not summary:  # failed before deciding: the version it was to judge
            registered = context["ti"].xcom_pull(task_ids="register_model", key="return_value")
            if isinstance(registered, Mapping):
                summary = {"new_version": registered.get("version")}
        read = RESULT_NOTICES.get(self.kind)
        found = read(self.model, summary, context) if read is not None else []
        if self.outcome == "failed" and not found:
            found = [failure_notice(self.model, summary, context)]
        return found

    def approval_waiting(self, context: Context, summary: Mapping[str, Any] | None) -> None:
        """A manual approval just started waiting (the promote task parks in Required Actions)."""
        try:
            found = approval_notice(self.model, summary if isinstance(summary, Mapping) else {}, context)
        except Exception as error:
            log.warning("No approval notification for %s: %s", self.model, one_line(error, 500))
            return
        self.tell([found], context)

    def tell(self, found: Sequence[Notice], context: Context) -> None:
        """Each notifier gets the first notice among ``found`` whose event it listens to."""
        for spec in self.notifiers:
            chosen = next((n for n in found if n.event in spec["on"]), None)
            if chosen is not None:
                send(spec, chosen, context)
