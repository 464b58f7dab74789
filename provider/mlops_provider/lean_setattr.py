"""A cheaper ``BaseOperator.__setattr__`` while an operator is being built (DAG parse time).

Airflow's ``__setattr__`` looks up a ``_convert_<key>`` method for every attribute (a failed attribute
lookup each time) and then checks mapping, execution and template-field state. Building one operator
sets about 75 attributes, so for the factory's DAGs this was a fifth of the parse time. Before the
operator is instantiated the outcome is the same as a plain store plus Airflow's ``__init_kwargs``
bookkeeping; keys with a converter and everything after construction still take Airflow's path.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

# Airflow's converters are BaseOperator methods; a subclass adding one is checked by a test.
CONVERTED_KEYS = frozenset(
    n.removeprefix("_convert_") for n in dir(BaseOperator) if n.startswith("_convert_")
)


class LeanSetattrMixin:
    """Put first among an operator's bases: ``class MyOperator(LeanSetattrMixin, BaseOperator)``."""

    def __setattr__(self, key: str, value: Any) -> None:
        state = self.__dict__
        if key in CONVERTED_KEYS or "_BaseOperator__instantiated" in state:
            super().__setattr__(key, value)  # Airflow's own path
            return
        object.__setattr__(self, key, value)  # descriptors (properties) still apply
        if state.get("_BaseOperator__from_mapped") or state.get("_lock_for_execution"):
            return
        init_kwargs = state.get("_BaseOperator__init_kwargs")
        if init_kwargs is not None and key in init_kwargs:
            init_kwargs[key] = value
