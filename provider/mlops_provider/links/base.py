"""The base of the provider's extra links: a URL the operator pushed to XCom at execute time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey


class XComUrlLink(BaseOperatorLink):
    """A link whose URL the operator pushed to XCom under ``key``."""

    name: ClassVar[str]
    key: ClassVar[str]

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        try:
            value = XCom.get_value(key=self.key, ti_key=ti_key)
        except Exception:  # a link must never break the UI
            return ""
        return value if isinstance(value, str) else ""

    @classmethod
    def persist(cls, context: Context, url: str | None) -> None:
        if url:
            context["ti"].xcom_push(key=cls.key, value=url)
