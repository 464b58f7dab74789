"""The ``notify`` section of a model config: which events to tell, and through which Airflow notifiers.

```yaml
notify:
  on: [refused, drift, performance, approval_pending, rollback, failed]   # default: every event
  notifiers:
    - {type: smtp, conn_id: smtp_default, to: [ml-team@example.com]}
    - {type: slack, conn_id: slack_api_default, channel: "#ml", on: [refused, rollback, failed]}
    - {type: slack_webhook, conn_id: slack_webhook_default}
```

Each notifier is one of Airflow's own (``SmtpNotifier``, ``SlackNotifier``, ``SlackWebhookNotifier``)
reaching its service through an Airflow connection; credentials never live in the config. Every value
is checked here, at parse time: addresses are single plain e-mail addresses (no display names, no
commas, no line breaks: nothing that could add a header or a recipient), channel names and connection
ids are plain names. YAML 1.1 reads an unquoted ``on:`` key as ``true``: it is read as ``on``.
Pydantic only: nothing is imported that a DAG file would not import anyway.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeAlias, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from mlops_provider.templates.schema_sections import Section

NotifyEvent: TypeAlias = Literal["refused", "drift", "performance", "approval_pending", "rollback", "failed"]
EVENTS: tuple[str, ...] = get_args(NotifyEvent)

MAX_NOTIFIERS = 10
MAX_RECIPIENTS = 50
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*", re.ASCII)
CONN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,200}", re.ASCII)  # Airflow's connection id characters
CHANNEL_PATTERN = re.compile(r"#?[A-Za-z0-9][A-Za-z0-9._-]{0,79}", re.ASCII)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _email(value: str) -> str:
    local = value.partition("@")[0]
    if len(value) > 254 or len(local) > 64 or not EMAIL_PATTERN.fullmatch(value):
        raise ValueError(
            f"{_shown(value)} is not one plain e-mail address (e.g. ml-team@example.com; one address per "
            "entry, no display name, comma or line break)"
        )
    return value


def _conn_id(value: str) -> str:
    if not CONN_ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"{_shown(value)} is not an Airflow connection id (letters, digits, '_', '.', '-'; at most 200)"
        )
    return value


def _channel(value: str) -> str:
    if not CHANNEL_PATTERN.fullmatch(value):
        raise ValueError(
            f"{_shown(value)} is not a Slack channel name or id (e.g. '#ml-alerts' or 'C0123ABCD': letters, "
            "digits, '.', '_', '-'; at most 80)"
        )
    return value


def _one_address_list(value: Any) -> Any:
    """``to: ml-team@example.com`` (one address, as SmtpNotifier also takes it) is a list of one."""
    return [value] if isinstance(value, str) else value


Email: TypeAlias = Annotated[str, Field(strict=True), AfterValidator(_email)]
ConnId: TypeAlias = Annotated[str, Field(strict=True), AfterValidator(_conn_id)]
Recipients: TypeAlias = Annotated[
    list[Email], BeforeValidator(_one_address_list), Field(max_length=MAX_RECIPIENTS)
]
Events: TypeAlias = Annotated[list[NotifyEvent], Field(min_length=1, max_length=len(EVENTS))]


def _unique(value: list[str] | None, what: str) -> None:
    if value is not None:
        dupes = sorted({v for v in value if value.count(v) > 1})
        if dupes:
            raise ValueError(f"{what} listed twice: {dupes}")


class _WithOn(Section):
    """A section with an ``on`` key, which YAML 1.1 (PyYAML) reads as the boolean ``true``."""

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k is True for k in data):
            if "on" in data:
                raise ValueError("on: given twice (as on: and as 'on':)")
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("on", check_fields=False)
    @classmethod
    def _unique_events(cls, value: list[str] | None) -> list[str] | None:
        _unique(value, "event(s)")
        return value


class SmtpNotify(_WithOn):
    """E-mail through Airflow's SmtpNotifier (providers-smtp) and an SMTP connection."""

    type: Literal["smtp"]
    conn_id: ConnId = Field(description="Airflow SMTP connection (host, port, login; from_email in extras).")
    to: Recipients = Field(min_length=1, description="Recipients: e-mail addresses.")
    cc: Recipients = Field(default_factory=list, description="Copy recipients.")
    from_email: Email | None = Field(None, description="Sender (default: the connection's from_email).")
    on: Events | None = Field(None, description="Events for this notifier (default: notify.on).")

    @model_validator(mode="after")
    def _unique_recipients(self) -> SmtpNotify:
        _unique([a.lower() for a in [*self.to, *self.cc]], "recipient(s) (to and cc)")
        return self


class SlackNotify(_WithOn):
    """A Slack message through Airflow's SlackNotifier (providers-slack) and a Slack API connection."""

    type: Literal["slack"]
    conn_id: ConnId = Field(description="Airflow Slack API connection (the bot token).")
    channel: Annotated[str, Field(strict=True), AfterValidator(_channel)] = Field(
        description="Channel name or id, e.g. '#ml-alerts'."
    )
    on: Events | None = Field(None, description="Events for this notifier (default: notify.on).")


class SlackWebhookNotify(_WithOn):
    """A Slack message through Airflow's SlackWebhookNotifier and an Incoming Webhook connection."""

    type: Literal["slack_webhook"]
    conn_id: ConnId = Field(description="Airflow Slack Incoming Webhook connection (the webhook URL).")
    on: Events | None = Field(None, description="Events for this notifier (default: notify.on).")


def _notifier_type(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


NOTIFIER_TYPES = ("smtp", "slack", "slack_webhook")
Notifier: TypeAlias = Annotated[
    Annotated[SmtpNotify, Tag("smtp")]
    | Annotated[SlackNotify, Tag("slack")]
    | Annotated[SlackWebhookNotify, Tag("slack_webhook")],
    Discriminator(
        _notifier_type,
        custom_error_type="notifier_type",
        custom_error_message="needs a type: 'smtp', 'slack' or 'slack_webhook'",
    ),
]


class NotifySection(_WithOn):
    on: Events | None = Field(
        None,
        description="Events to tell: refused, drift, performance, approval_pending, rollback, failed "
        "(default: all of them).",
    )
    notifiers: list[Notifier] = Field(
        min_length=1,
        max_length=MAX_NOTIFIERS,
        description="Airflow notifiers, each through a connection: {type: smtp, conn_id, to, cc, from_email}, "
        "{type: slack, conn_id, channel}, {type: slack_webhook, conn_id}; each may set its own on.",
    )

    def events_of(self, notifier: SmtpNotify | SlackNotify | SlackWebhookNotify) -> tuple[str, ...]:
        """The events ``notifier`` is told about (its own ``on``, else the section's, else all)."""
        return tuple(notifier.on or self.on or EVENTS)
