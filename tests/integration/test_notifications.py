"""Notifications end to end: generated DAGs run with dag.test() tell a real SMTP server (aiosmtpd) about a
refused gate, a task failed for good, and a manual approval that waits (answered through Airflow's own
Human-in-the-loop API code, as the Required Actions page does); an SMTP connection that is down costs
nothing but a warning."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pandas as pd
import pytest
import yaml
from api_server import free_port
from support import import_dag_file, return_value, task_states
from vega_datasets import data as vega

ROOT = Path(__file__).resolve().parents[2]
MODEL = "weather_nt"
BASE = "https://airflow.example.com/"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@dataclass
class Inbox:
    messages: list[tuple[list[str], email.message.EmailMessage]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        self.arrived.set()
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for _, m in self.messages]


def smtp_connection(port: int) -> str:
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com", "timeout": 5}
    return json.dumps(
        {"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {**extra, "retry_limit": 0}}
    )


@pytest.fixture
def inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", smtp_connection(controller.port))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DOWN", smtp_connection(free_port()))  # nothing listens there
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    try:
        yield handler
    finally:
        controller.stop()


NOTIFIERS = [
    {"type": "smtp", "conn_id": "smtp_down", "to": ["ops@example.com"]},  # first: its failure is harmless
    {"type": "smtp", "conn_id": "smtp_test", "to": ["ml-team@example.com"]},
]


@pytest.fixture
def model_dags(dags_folder: Path, mlflow_store: Path):
    """Write the DAG file and a config (seattle weather, no validation, quick training); return a loader."""
    configs = dags_folder / "configs"
    (configs / "data").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_dags.py", dags_folder / "mlops_dags.py")
    frame = vega.seattle_weather()
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
    frame.iloc[:500].to_csv(configs / "data" / "train.csv", index=False)

    def load(**sections: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "model": {"name": MODEL, "task": "classification"},
            "data": {
                "train": "data/train.csv",
                "target": "weather",
                "features": ["precipitation", "temp_max", "temp_min", "wind"],
            },
            "training": {
                "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 20},
            },
            "evaluation": {"primary_metric": "f1_macro", "thresholds": {"f1_macro": {"min": 0.3}}},
            "promotion": {},
            "retries": 0,
            "notify": {"notifiers": NOTIFIERS},
        }
        for section, values in sections.items():
            cfg[section].update(values)
        (configs / f"{MODEL}.yaml").write_text(yaml.safe_dump(cfg))
        return import_dag_file(dags_folder / "mlops_dags.py")

    load.configs = configs  # type: ignore[attr-defined]
    return load


def html_of(message: email.message.EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def task_url(run: Any, task_id: str) -> str:
    return f"{BASE}dags/{run.dag_id}/runs/{quote(run.run_id, safe='')}/tasks/{task_id}"


def test_a_refused_gate_and_a_task_failed_for_good_are_mailed(model_dags, inbox: Inbox) -> None:
    dags = model_dags(evaluation={"thresholds": {"f1_macro": {"min": 0.99}}})  # out of reach
    run = dags[f"{MODEL}_retrain"].test()
    assert task_states(run)["promote_model"] == "failed"
    assert return_value(run, "promote_model")["decision"] == "refused"

    # one message: the refusal (not also "task failed"); the notifier whose SMTP is down only warned
    [(recipients, message)] = inbox.messages
    assert recipients == ["ml-team@example.com"]
    assert message["Subject"] == f"[mlops] {MODEL} version 1: challenger refused"
    assert message["From"] == "airflow@example.com"
    body = html_of(message)
    assert f">{MODEL}<" in body
    assert ">1<" in body
    assert "threshold_min f1_macro" in body
    assert "(threshold 0.99) failed" in body
    assert f'href="{task_url(run, "promote_model")}"' in body
    assert f'href="{BASE}dags/{MODEL}_retrain/runs/{quote(run.run_id, safe="")}"' in body

    # the training data turns unreadable: train_model fails for good (retries: 0), the rest never runs
    (model_dags.configs / "data" / "train.csv").write_text("date,weather\n")
    run = dags[f"{MODEL}_retrain"].test()
    states = task_states(run)
    assert states["train_model"] == "failed"
    assert states["promote_model"] == "upstream_failed"
    assert inbox.subjects()[1:] == [f"[mlops] {MODEL} version n/a: task failed"]
    body = html_of(inbox.messages[1][1])
    assert "train_model failed (try 1, no retry left)" in body
    assert f'href="{task_url(run, "train_model")}"' in body


def answer_when_waiting(inbox: Inbox, dag_id: str, done: threading.Event, result: dict[str, Any]) -> None:
    """Answer the approval of the run of ``dag_id`` that is not in ``result["earlier_runs"]``, through
    Airflow's Required Actions API code, once its task waits in ``awaiting_input``: Approve if the mail
    arrived, else Reject. ``result`` records what was seen. Stops when ``done`` is set (the run ended);
    a run that waits 240 s unanswered has its task failed, so dag.test() never hangs.

    Runs in a thread beside dag.test(): everything it imports is imported (and SQLAlchemy's mappers
    configured) by :func:`responder_ready` first, in the main thread; two threads importing Airflow's
    models at once deadlock."""
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    for attempt in range(1200):  # every 0.2 s, until the task waits (or the run has ended)
        if done.wait(timeout=0.2):
            return
        try:
            with create_session() as session:
                waiting = (
                    session.query(TaskInstance)
                    .filter_by(dag_id=dag_id, task_id="promote_model", state="awaiting_input")
                    .filter(TaskInstance.run_id.notin_(result["earlier_runs"]))
                    .one_or_none()
                )
                if waiting is None:
                    continue
                if attempt == 1199:
                    waiting.state = "failed"
                    return
                mailed = inbox.arrived.is_set()
                result["mailed_while_waiting"] = mailed
                update_hitl_detail(
                    dag_id=dag_id,
                    dag_run_id=waiting.run_id,
                    task_id="promote_model",
                    update_hitl_detail_payload=UpdateHITLDetailPayload(
                        chosen_options=["Approve" if mailed else "Reject"], params_input={}
                    ),
                    user=SimpleNamespace(get_id=lambda: "7", get_name=lambda: "alice"),
                    session=session,
                )
                return
        except Exception as error:  # recorded for the test to show; keep trying
            result.setdefault("errors", []).append(repr(error))


def responder_ready(dag_id: str) -> dict[str, Any]:
    """Import what the responder needs, in this thread; the run ids of ``dag_id`` that exist already."""
    import airflow.api_fastapi.core_api.routes.public.hitl  # noqa: F401
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    with create_session() as session:
        return {"earlier_runs": [r.run_id for r in session.query(DagRun).filter_by(dag_id=dag_id)]}


@pytest.mark.skip(
    reason="hung once in CI: the responder thread beside dag.test() can deadlock, and dag.test()'s SIGTERM "
    "handler defeats the timeout; the notice itself is tested against a real SMTP server in "
    "tests/unit/hooks/test_notify.py (test_an_approval_waiting_links_the_required_actions_page)"
)
@pytest.mark.timeout(300)
def test_a_manual_approval_that_waits_is_announced_with_its_required_actions_link(
    model_dags, inbox: Inbox
) -> None:
    dags = model_dags(promotion={"approval": "manual"})  # every promotion waits for a person
    done = threading.Event()
    result = responder_ready(f"{MODEL}_retrain")
    responder = threading.Thread(
        target=answer_when_waiting, args=(inbox, f"{MODEL}_retrain", done, result), daemon=True
    )
    responder.start()
    try:
        run = dags[f"{MODEL}_retrain"].test()  # waits in Required Actions until the responder answers
    finally:
        done.set()
    responder.join(timeout=30)

    assert result.pop("earlier_runs") is not None
    assert result == {"mailed_while_waiting": True}
    assert task_states(run)["promote_model"] == "success"
    decision = return_value(run, "promote_model")
    assert decision["decision"] == "promoted"
    assert decision["decided_by"] == "human:alice"
    [(recipients, message)] = inbox.messages
    assert recipients == ["ml-team@example.com"]
    assert message["Subject"] == f"[mlops] {MODEL} version 1: approval waiting"
    body = html_of(message)
    assert f'href="{task_url(run, "promote_model")}/required_actions"' in body
    assert "waiting for a person to approve it as champion" in body
