"""Airflow's human-in-the-loop (Required Actions) for the promotion gate: ask, then read the answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseHook

APPROVE = "Approve"
REJECT = "Reject"


@dataclass(frozen=True)
class HumanDecision:
    """What came back: who answered (``""`` if nobody), the options chosen, whether it timed out."""

    who: str
    chosen: list[str]
    timed_out: bool

    @property
    def approved(self) -> bool:
        return bool(self.who) and not self.timed_out and self.chosen == [APPROVE]


def approval_text(summary: Mapping[str, Any], alias: str) -> tuple[str, str]:
    """The subject and Markdown body a person sees for a promotion that waits for them."""
    gates = (
        "\n".join(
            f"- {g['gate']} `{g['metric']}`: value {g['value']}, threshold {g['threshold']}, "
            f"passed {g['passed']}"
            for g in summary["gates"]
        )
        or "- no gates configured"
    )
    body = (
        f"Move **{summary['model_name']}@{alias}** from version {summary['old_version']} to "
        f"version {summary['new_version']}?\n\n{summary['reason']}\n\n{gates}\n\n"
        f"Challenger metrics: `{json.dumps(summary['metrics']['challenger'])}`\n\n"
        f"Champion metrics: `{json.dumps(summary['metrics']['champion'])}`"
    )
    return f"Promote {summary['model_name']} version {summary['new_version']} to {alias}?", body


class ApprovalHook(BaseHook):
    """Asks for an Approve/Reject decision on the running task instance (default: Reject)."""

    hook_name = "MLOps approval"

    def request(
        self, ti_id: Any, subject: str, body: str, resume_kwargs: Mapping[str, Any], timeout: Any
    ) -> None:
        """Record the question and suspend the task; it resumes in ``execute_complete``."""
        from airflow.sdk.exceptions import TaskAwaitingInput
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        upsert_hitl_detail(
            ti_id=ti_id,
            options=[APPROVE, REJECT],
            subject=subject,
            body=body,
            defaults=[REJECT],
            multiple=False,
            params={},
        )
        self.log.info("Waiting for a human decision in Required Actions")
        raise TaskAwaitingInput(method_name="execute_complete", kwargs=dict(resume_kwargs), timeout=timeout)

    @staticmethod
    def decision(event: Mapping[str, Any]) -> HumanDecision:
        """The answer an ``execute_complete`` event carries."""
        user = event.get("responded_by_user") or {}
        who = (user.get("name") or user.get("id")) if isinstance(user, Mapping) else str(user)
        return HumanDecision(
            str(who or ""), list(event.get("chosen_options") or []), bool(event.get("timedout"))
        )

    @classmethod
    def resume(
        cls, event: Mapping[str, Any] | None, summary: Mapping[str, Any] | None
    ) -> tuple[bool, dict[str, Any], str]:
        """After the answer: whether it approves, the summary with who decided in its reason, and who."""
        from mlops_provider.exceptions import InvalidInputError

        if not summary:
            raise InvalidInputError("resumed without the gate summary: cannot complete the promotion")
        if not event or "chosen_options" not in event:
            raise InvalidInputError(f"resumed without a human decision (event {event!r})")
        out, answer = dict(summary), cls.decision(event)
        if answer.timed_out or not answer.who:
            out["reason"] = f"{out['reason']}; no human answered in time (default: {REJECT})"
            return False, out, "timeout"
        verdict = "approved" if answer.approved else "rejected"
        out["reason"] = f"{out['reason']}; {verdict} by {answer.who}"
        return answer.approved, out, f"human:{answer.who}"
