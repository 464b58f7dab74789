"""Jinja helpers of the generated DAGs: templates that render for runs without a logical date.

``{{ ds }}`` is undefined for runs triggered from the UI or REST (no logical date): configs may use
``ds`` / ``ds_nodash``; :func:`safe_template` rewrites them to macros (:func:`macros`) that fall back to
the run's ``data_interval_end``, then its ``run_after``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_JINJA_EXPR = re.compile(r"{{(.*?)}}", re.S)
_DATE_NAME = re.compile(r"(?<![\w.])(ds_nodash|ds)(?![\w(])")
_FALLBACK_NAMES = {"ds": "mlops_ds()", "ds_nodash": "mlops_ds_nodash()"}


def _date_of(context: Any) -> datetime:
    for key in ("logical_date", "data_interval_end"):
        value = context.get(key)
        if value:
            return value
    dag_run = context.get("dag_run")
    return getattr(dag_run, "run_after", None) or datetime.now(UTC)


def macros() -> dict[str, Any]:
    """The ``user_defined_macros`` that :func:`safe_template` rewrites ``ds``/``ds_nodash`` to."""
    from jinja2 import pass_context

    return {
        "mlops_ds": pass_context(lambda ctx: _date_of(ctx).strftime("%Y-%m-%d")),
        "mlops_ds_nodash": pass_context(lambda ctx: _date_of(ctx).strftime("%Y%m%d")),
    }


def safe_template(value: str) -> str:
    """Rewrite ``ds``/``ds_nodash`` inside ``{{ }}`` so runs without a logical date render too."""

    def fix(match: re.Match[str]) -> str:
        body = _DATE_NAME.sub(lambda m: _FALLBACK_NAMES[m.group(1)], match.group(1))
        return "{{" + body + "}}"

    return _JINJA_EXPR.sub(fix, value)


def training_data_guard(default: str | None, prefixes: list[str], base_dir: str) -> Callable[[Any], str]:
    """
    The ``mlops_training_data`` macro: a trigger's ``training_data`` Param as it is, when it names the
    configured data or lies inside ``data.allowed_training_prefixes``; otherwise the task rendering it
    fails without retry, naming the Param and the rule (so ``validate_data`` never reads it either).
    """

    def guard(value: Any) -> str:
        from mlops_provider.core.data_scope import check_training_data
        from mlops_provider.exceptions import airflow_errors

        with airflow_errors():
            check_training_data(str(value), default=default, prefixes=prefixes, base_dir=base_dir)
        return str(value)

    return guard


def training_data_uri(default: str) -> str:
    """The retrain DAG's data URI: the checked ``training_data`` Param, else the config's ``data.train``."""
    return (
        "{% if params.training_data %}{{ mlops_training_data(params.training_data) }}{% else %}"
        + default
        + "{% endif %}"
    )


def xcom_value(task_id: str, key: str) -> str:
    """A template pulling ``key`` from the XCom ``return_value`` of ``task_id``."""
    return f"{{{{ ti.xcom_pull(task_ids='{task_id}')['{key}'] }}}}"
