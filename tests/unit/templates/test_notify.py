"""The ``notify`` section: every value checked with the key named (hostile values included), the callbacks
the factory attaches, and a config without ``notify`` costing nothing new at parse time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_provider.templates.builder import build_dags
from mlops_provider.templates.loader import load_configs
from mlops_provider.templates.schema import reference_rows

SMTP = {"type": "smtp", "conn_id": "smtp_default", "to": ["ml-team@example.com"]}
SLACK = {"type": "slack", "conn_id": "slack_default", "channel": "#ml"}


def config(notify: Any = None, name: str = "wine") -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": {"name": name, "task": "classification"},
        "data": {"train": "data/train.csv", "current": "data/batch_{{ ds }}.csv", "target": "target"},
        "training": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "evaluation": {"primary_metric": "f1_macro"},
    }
    if notify is not None:
        cfg["notify"] = notify
    return cfg


def write(folder: Path, cfg: dict[str, Any] | str, name: str = "wine.yaml") -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "train.csv").write_text("a,target\n1,0\n")
    path = folder / name
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return path


def problems(folder: Path) -> list[str]:
    return [f"{p.key}: {p.message}" for item in load_configs(folder) for p in item.problems]


# -- validation ------------------------------------------------------------------------------------
def test_the_documented_config_loads_with_an_unquoted_on_key(tmp_path: Path) -> None:
    text = yaml.safe_dump(config()) + textwrap.dedent(
        """\
        notify:
          on: [refused, drift, performance, approval_pending, rollback, failed]
          notifiers:
            - {type: smtp, conn_id: smtp_default, to: [ml-team@example.com], cc: ops@example.com}
            - {type: slack, conn_id: slack_default, channel: "#ml", on: [refused, failed]}
            - {type: slack_webhook, conn_id: slack_webhook_default}
        """
    )
    write(tmp_path, text)
    [item] = load_configs(tmp_path)
    assert item.ok, item.problems
    notify = item.config.notify
    smtp, slack, hook = notify.notifiers
    assert smtp.cc == ["ops@example.com"]  # one address as a string is a list of one
    assert notify.events_of(slack) == ("refused", "failed")
    assert notify.events_of(hook) == tuple(notify.on)


def test_on_defaults_to_every_event(tmp_path: Path) -> None:
    write(tmp_path, config({"notifiers": [SMTP]}))
    [item] = load_configs(tmp_path)
    notify = item.config.notify
    assert notify.events_of(notify.notifiers[0]) == (
        "refused",
        "drift",
        "performance",
        "approval_pending",
        "rollback",
        "failed",
    )


def smtp(**changes: Any) -> dict[str, Any]:
    return {"notifiers": [{**SMTP, **changes}]}


@pytest.mark.parametrize(
    ("notify", "key", "fragment"),
    [
        # header injection through a recipient, a sender or a channel
        (
            smtp(to=["ml@example.com\r\nBcc: evil@example.com"]),
            "notifiers.0.smtp.to.0",
            "not one plain e-mail",
        ),
        (smtp(to=["ml@example.com\nSubject: x"]), "notifiers.0.smtp.to.0", "not one plain e-mail"),
        (smtp(to="ml@example.com, evil@example.com"), "notifiers.0.smtp.to.0", "not one plain e-mail"),
        (smtp(to=["Ml Team <ml@example.com>"]), "notifiers.0.smtp.to.0", "no display name"),
        (smtp(cc=["ml@example.com;evil@example.com"]), "notifiers.0.smtp.cc.0", "not one plain e-mail"),
        (smtp(from_email="a@b.example\r\nX-Evil: 1"), "notifiers.0.smtp.from_email", "not one plain e-mail"),
        (smtp(to=["ml@exämple.com"]), "notifiers.0.smtp.to.0", "not one plain e-mail"),
        (smtp(to=["x" * 65 + "@example.com"]), "notifiers.0.smtp.to.0", "not one plain e-mail"),
        (smtp(to=["@example.com"]), "notifiers.0.smtp.to.0", "not one plain e-mail"),
        (
            {"notifiers": [{**SLACK, "channel": "#ml\n<!channel>"}]},
            "notifiers.0.slack.channel",
            "not a Slack",
        ),
        ({"notifiers": [{**SLACK, "channel": "<!here>"}]}, "notifiers.0.slack.channel", "not a Slack"),
        # not strings where strings belong
        (smtp(to=[123]), "notifiers.0.smtp.to.0", "valid string"),
        (smtp(to=[True]), "notifiers.0.smtp.to.0", "valid string"),
        (smtp(to=[{"a": "b@example.com"}]), "notifiers.0.smtp.to.0", "valid string"),
        (smtp(to=[["ml@example.com"]]), "notifiers.0.smtp.to.0", "valid string"),
        (smtp(to=[None]), "notifiers.0.smtp.to.0", "valid string"),
        (smtp(to=[]), "notifiers.0.smtp.to", "at least 1"),
        (smtp(conn_id=42), "notifiers.0.smtp.conn_id", "valid string"),
        ({"notifiers": [{**SLACK, "channel": 5}]}, "notifiers.0.slack.channel", "valid string"),
        # unknown, missing or misplaced keys
        ({"notifiers": [{"type": "teams", "conn_id": "x"}]}, "notifiers.0", "needs a type: 'smtp'"),
        ({"notifiers": [{"conn_id": "x", "to": ["a@example.com"]}]}, "notifiers.0", "needs a type"),
        ({"notifiers": [{"type": None}]}, "notifiers.0", "needs a type"),
        ({"notifiers": ["smtp"]}, "notifiers.0", "needs a type"),
        ({"notifiers": [{"type": "smtp", "to": ["a@example.com"]}]}, "notifiers.0.smtp.conn_id", "missing"),
        ({"notifiers": [{"type": "slack", "conn_id": "s"}]}, "notifiers.0.slack.channel", "missing"),
        ({"notifiers": [{**SLACK, "to": ["a@example.com"]}]}, "notifiers.0.slack.to", "unknown key"),
        (smtp(password="hunter2"), "notifiers.0.smtp.password", "unknown key"),
        ({"notifiers": []}, "notifiers", "at least 1"),
        ({"on": ["refused"]}, "notifiers", "missing"),
        ({"notifiers": {"type": "smtp"}}, "notifiers", "valid list"),
        ("smtp", "(top level)", ""),
        # conn ids are plain names
        (smtp(conn_id=""), "notifiers.0.smtp.conn_id", "not an Airflow connection id"),
        (smtp(conn_id="smtp default"), "notifiers.0.smtp.conn_id", "not an Airflow connection id"),
        (smtp(conn_id="smtp\ndefault"), "notifiers.0.smtp.conn_id", "not an Airflow connection id"),
        (smtp(conn_id="{{ var.value.x }}"), "notifiers.0.smtp.conn_id", "not an Airflow connection id"),
        (smtp(conn_id="x" * 201), "notifiers.0.smtp.conn_id", "not an Airflow connection id"),
        # events
        ({"on": ["refused", "exploded"], "notifiers": [SMTP]}, "on.1", "Input should be 'refused'"),
        ({"on": [], "notifiers": [SMTP]}, "on", "at least 1"),
        ({"on": "refused", "notifiers": [SMTP]}, "on", "valid list"),
        ({"on": ["drift", "drift"], "notifiers": [SMTP]}, "on", "listed twice"),
        (smtp(on=["failed", "failed"]), "notifiers.0.smtp.on", "listed twice"),
        (smtp(cc=["ML-team@example.com"]), "notifiers.0.smtp", "recipient(s) (to and cc) listed twice"),
        # huge lists
        (smtp(to=[f"u{i}@example.com" for i in range(51)]), "notifiers.0.smtp.to", "at most 50"),
        (smtp(cc=[f"u{i}@example.com" for i in range(5000)]), "notifiers.0.smtp.cc", "at most 50"),
        ({"notifiers": [SMTP] * 11}, "notifiers", "at most 10"),
        ({"on": ["failed"] * 10_000, "notifiers": [SMTP]}, "on", "at most 6"),
    ],
)
def test_hostile_values_are_refused_naming_the_key(
    tmp_path: Path, notify: Any, key: str, fragment: str
) -> None:
    write(tmp_path, config(notify))
    found = problems(tmp_path)
    expected = "notify" if key == "(top level)" else f"notify.{key}"
    assert any(p.startswith(f"{expected}: ") and fragment in p for p in found), found


def test_on_given_twice_through_yaml_is_refused(tmp_path: Path) -> None:
    text = (
        yaml.safe_dump(config())
        + "notify:\n  on: [failed]\n  'on': [drift]\n  notifiers: [{type: smtp, conn_id: s, to: a@example.com}]\n"
    )
    write(tmp_path, text)
    assert any("on: given twice" in p for p in problems(tmp_path)), problems(tmp_path)


def test_a_bad_notify_section_becomes_a_placeholder_and_the_good_config_still_loads(tmp_path: Path) -> None:
    write(tmp_path, config(smtp(to=["x\r\nBcc: y@example.com"]), name="bad"), "bad.yaml")
    write(tmp_path, config({"notifiers": [SMTP]}, name="good"), "good.yaml")
    dags = {d.dag_id: d for d in build_dags(tmp_path, only_dag_id=None)}
    assert "good_retrain" in dags
    [placeholder] = [d for d in dags.values() if "invalid-config" in d.tags]
    assert "notify.notifiers.0.smtp.to.0" in (placeholder.description or "")


def test_the_reference_lists_the_notify_keys() -> None:
    rows = {key: (type_name, default) for key, type_name, default, _ in reference_rows()}
    assert rows["notify"] == ("section", "null")
    assert rows["notify.on"][1] == "null"
    assert "approval_pending" in rows["notify.on"][0]
    assert rows["notify.notifiers"] == ("list[SmtpNotify | SlackNotify | SlackWebhookNotify]", "required")


# -- what the factory attaches ---------------------------------------------------------------------
def callbacks(dags: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """dag_id.task_id -> slot -> the TaskNotice callbacks' (kind, outcome)."""
    out: dict[str, dict[str, list[str]]] = {}
    for dag in dags.values():
        for task in dag.tasks:
            slots = {
                slot: [
                    f"{c.kind}/{c.outcome}" for c in getattr(task, slot) if type(c).__name__ == "TaskNotice"
                ]
                for slot in ("on_success_callback", "on_failure_callback", "on_skipped_callback")
            }
            notice = getattr(task, "approval_notice", None)
            if notice is not None:
                slots["approval"] = [f"{notice.kind}/{notice.outcome}"]
            out[f"{dag.dag_id}.{task.task_id}"] = {k: v for k, v in slots.items() if v}
    return out


def built(tmp_path: Path, notify: Any) -> dict[str, Any]:
    write(tmp_path, config(notify))
    return {d.dag_id: d for d in build_dags(tmp_path, only_dag_id=None)}


def test_every_event_attaches_the_callbacks_that_can_see_it(tmp_path: Path) -> None:
    dags = built(tmp_path, {"notifiers": [SMTP]})
    found = callbacks(dags)
    assert found["wine_retrain.train_model"] == {"on_failure_callback": ["task/failed"]}
    assert found["wine_retrain.promote_model"] == {
        "on_failure_callback": ["promote/failed"],
        "on_skipped_callback": ["promote/skipped"],
        "approval": ["promote/awaiting"],
    }
    assert found["wine_drift_monitor.check_drift"] == {
        "on_success_callback": ["drift/success"],
        "on_failure_callback": ["drift/failed"],
    }
    assert found["wine_rollback.rollback"] == {
        "on_success_callback": ["rollback/success"],
        "on_failure_callback": ["rollback/failed"],
    }
    promote = dags["wine_retrain"].get_task("promote_model")
    assert promote.operator_name == "PromoteModelOperator"  # what the UI shows
    from mlops_provider.operators.registry import PromoteModelOperator
    from mlops_provider.templates import notify

    assert isinstance(promote, PromoteModelOperator)
    assert type(promote) is notify.AnnouncingPromoteModelOperator
    spec = promote.on_failure_callback[0].notifiers[0]
    assert spec == {**SMTP, "cc": [], "from_email": None, "on": spec["on"]}
    assert len(spec["on"]) == 6


def test_only_the_callbacks_some_notifier_listens_for(tmp_path: Path) -> None:
    found = callbacks(built(tmp_path, {"on": ["drift"], "notifiers": [SMTP, {**SLACK, "on": ["rollback"]}]}))
    assert {k: v for k, v in found.items() if v} == {
        "wine_drift_monitor.check_drift": {"on_success_callback": ["drift/success"]},
        "wine_rollback.rollback": {"on_success_callback": ["rollback/success"]},
    }


def test_without_notify_nothing_is_attached_and_promote_is_the_plain_operator(tmp_path: Path) -> None:
    from mlops_provider.operators.registry import PromoteModelOperator

    dags = built(tmp_path, None)
    assert all(not v for v in callbacks(dags).values())
    assert type(dags["wine_retrain"].get_task("promote_model")) is PromoteModelOperator
    # approval_pending not listened to: no need for the announcing operator either
    dags = built(tmp_path, {"on": ["failed"], "notifiers": [SMTP]})
    assert type(dags["wine_retrain"].get_task("promote_model")) is PromoteModelOperator


PROBE = """
import json, sys, time
import airflow.sdk
before = set(sys.modules)
from mlops_provider.templates import build_dags
build_dags(sys.argv[1], only_dag_id=None)
plain = sorted(set(sys.modules) - before)
before = set(sys.modules)
build_dags(sys.argv[2], only_dag_id=None)
notify = sorted(set(sys.modules) - before)
print(json.dumps({"plain": plain, "notify": notify}))
"""


def test_parsing_imports_no_notifier_and_without_notify_nothing_of_it(tmp_path: Path) -> None:
    write(tmp_path / "plain", config(name="plain"))
    write(tmp_path / "notify", config({"notifiers": [SMTP, SLACK]}, name="loud"))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "plain"), str(tmp_path / "notify")],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    notifying = [m for m in found["plain"] if "notif" in m or "smtp" in m or "slack" in m]
    assert notifying == ["mlops_provider.templates.notify", "mlops_provider.templates.schema_notify"]
    assert "airflow.providers.smtp" not in found["plain"]
    assert "slack_sdk" not in found["plain"]
    # with notify: its runtime module (the standard library only), no notifier, provider or Slack SDK
    assert found["notify"] == ["mlops_provider.hooks.notify", "mlops_provider.hooks.notify_messages"]
