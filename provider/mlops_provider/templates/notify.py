"""The factory's side of ``notify``: task callbacks from the config, attached to the generated DAGs.

Which task can raise which event (the callbacks read the task's own XCom return value, see
:mod:`mlops_provider.hooks.notify`):

==================  ==========================================  ======================================
event               task                                        callback
==================  ==========================================  ======================================
refused             ``<name>_retrain.promote_model``            on_failure / on_skipped (on_refuse)
                    ``<name>_performance_monitor``              on_success (shadow challenger refused)
approval_pending    ``<name>_retrain.promote_model``            when the manual approval starts waiting
drift               ``<name>_drift_monitor.check_drift``        on_success
performance         ``<name>_performance_monitor``              on_success
rollback            ``<name>_rollback.rollback``, the monitor   on_success
failed              every task                                  on_failure (no retry left)
==================  ==========================================  ======================================

Only the callbacks some notifier listens for are attached. Light at parse time: nothing here imports
a notifier, a provider or an operator module unless the config has a ``notify`` section.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG, BaseOperator

    from mlops_provider.templates.schema import ModelConfig
    from mlops_provider.templates.schema_notify import NotifySection

KINDS = {
    "promote_model": "promote",
    "check_drift": "drift",
    "check_performance": "performance",
    "rollback": "rollback",
}
# (task kind, outcome) -> the events such an outcome may be; "*": any task
CALLBACKS: dict[tuple[str, str], frozenset[str]] = {
    ("*", "failed"): frozenset({"failed"}),
    ("promote", "failed"): frozenset({"refused", "failed"}),
    ("promote", "skipped"): frozenset({"refused"}),
    ("drift", "success"): frozenset({"drift"}),
    ("performance", "success"): frozenset({"performance", "rollback", "refused"}),
    ("rollback", "success"): frozenset({"rollback"}),
}
SLOTS = {"success": "on_success_callback", "failed": "on_failure_callback", "skipped": "on_skipped_callback"}


def notifier_specs(section: NotifySection) -> tuple[dict[str, Any], ...]:
    """Each notifier as a plain dict, its ``on`` resolved (its own, else the section's, else all)."""
    return tuple({**n.model_dump(), "on": section.events_of(n)} for n in section.notifiers)


def _listened(specs: tuple[dict[str, Any], ...]) -> set[str]:
    return {event for spec in specs for event in spec["on"]}


def attach_notifications(dag: DAG, config: ModelConfig) -> DAG:
    """``dag`` with the callbacks ``config.notify`` asks for on its tasks (unchanged without ``notify``)."""
    if config.notify is None:
        return dag
    from mlops_provider.hooks.notify import TaskNotice

    specs = notifier_specs(config.notify)
    listened = _listened(specs)
    for task in dag.tasks:
        kind = KINDS.get(task.task_id, "task")
        for outcome, slot in SLOTS.items():
            events = CALLBACKS.get((kind, outcome)) or CALLBACKS.get(("*", outcome)) or frozenset()
            if events & listened:
                callback = TaskNotice(config.model.name, kind, outcome, specs)
                setattr(task, slot, [*getattr(task, slot), callback])
        if kind == "promote" and "approval_pending" in listened and hasattr(task, "approval_notice"):
            task.approval_notice = TaskNotice(config.model.name, kind, "awaiting", specs)
    return dag


def promote_operator(section: NotifySection | None) -> type[BaseOperator]:
    """PromoteModelOperator, or (when a notifier listens for ``approval_pending``) the same operator
    telling :attr:`approval_notice` when a manual approval starts waiting."""
    from mlops_provider.operators.registry import PromoteModelOperator

    if section is None or "approval_pending" not in _listened(notifier_specs(section)):
        return PromoteModelOperator
    return _announcing_promote_operator()


def __getattr__(name: str) -> Any:  # the operator class is made on first use (it imports the operator)
    if name == "AnnouncingPromoteModelOperator":
        return _announcing_promote_operator()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _announcing_promote_operator() -> type[BaseOperator]:
    from airflow.sdk.exceptions import TaskAwaitingInput

    from mlops_provider.operators.registry import PromoteModelOperator

    class AnnouncingPromoteModelOperator(PromoteModelOperator):
        """PromoteModelOperator that announces a manual approval it starts waiting for."""

        custom_operator_name = "PromoteModelOperator"
        approval_notice: Any = None  # a TaskNotice, set by attach_notifications

        def execute(self, context: Any) -> dict[str, Any]:
            try:
                return super().execute(context)
            except TaskAwaitingInput as waiting:  # parked in Required Actions: tell, then park
                if self.approval_notice is not None:
                    self.approval_notice.approval_waiting(context, (waiting.kwargs or {}).get("summary"))
                raise

    AnnouncingPromoteModelOperator.__module__ = __name__
    AnnouncingPromoteModelOperator.__qualname__ = AnnouncingPromoteModelOperator.__name__
    return AnnouncingPromoteModelOperator
