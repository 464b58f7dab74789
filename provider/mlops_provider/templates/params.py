"""The retrain DAG's trigger-form Params, and a parse-time cache of their JSON-schema checks.

Why the cache: Airflow validates a scheduled DAG's Params when the DAG is built
(``DAG._validate_params`` -> ``Param.resolve`` -> ``jsonschema.validate``), and ``jsonschema.validate``
first checks the Param's schema against the JSON Schema 2020-12 metaschema, then builds a validator:
~0.2 ms per Param, so ~90 ms for 100 model configs at every parse, for four schemas that never change.
While :func:`cached_schema_checks` is active (the factory wraps its DAG building in it), the same
``jsonschema.validate`` runs with the metaschema check and the validator construction done once per
distinct schema (keyed by its canonical JSON) in this process. Every value is still validated against
its schema, with the same validator class, format checks and error (``best_match``), so a default that
does not fit its schema still fails the DAG, and a schema that fails the metaschema check is never
cached. Outside the block ``jsonschema.validate`` is the library's own again; triggers are validated by
the API server from the serialized DAG, which this module does not touch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import Param

APPROVAL_CHOICES = ("auto", "manual")
# A trigger can only make the gate stricter: the tasks enforce these rules (the conf bypasses the form).
TRAINING_DATA_HELP = (
    "Path, glob or URI to train on instead of data.train (leave empty for the config's). Accepted only "
    "inside the config's data.allowed_training_prefixes; none listed: no override."
)
SKIP_HELP = (
    "Forced retrain: only where the config sets promotion.allow_forced: true. The absolute gates still "
    "apply; a reason is required and recorded with who triggered the run."
)
REASON_HELP = (
    "Recorded on the model version, with who triggered the run, when the champion comparison is skipped."
)
APPROVAL_HELP = (
    "auto: the gate decides; manual: a person approves in the Airflow UI. A trigger can only make the "
    "gate stricter: auto is refused when the config's promotion.approval is manual."
)
MAX_CACHED_SCHEMAS = 256

_lock = threading.Lock()
_validators: dict[str, Any] = {}  # canonical schema JSON -> a validator whose schema passed check_schema
_state: dict[str, Any] = {"depth": 0, "original": None}


def retrain_params(approval: str) -> dict[str, Param]:
    """The retrain DAG's trigger form: name -> Param (``approval`` is the config's default)."""
    return {
        "training_data": Param(
            None,
            type=["null", "string"],
            title="Training data override",
            description=TRAINING_DATA_HELP,
        ),
        "skip_vs_champion": Param(
            False,
            type="boolean",
            title="Skip the champion comparison",
            description=SKIP_HELP,
        ),
        "force_reason": Param(
            "",
            type="string",
            title="Reason for a forced retrain",
            description=REASON_HELP,
        ),
        "approval": Param(
            approval,
            enum=list(APPROVAL_CHOICES),
            title="Approval",
            description=APPROVAL_HELP,
        ),
    }


def _default_formats() -> frozenset[str]:
    from jsonschema import FormatChecker

    if "formats" not in _state:
        _state["formats"] = frozenset(FormatChecker().checkers)
    return _state["formats"]


def _cacheable(cls: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Only the call shape ``Param.resolve`` makes: no class, no extra arguments, default formats."""
    from jsonschema import FormatChecker

    if cls is not None or args or set(kwargs) - {"format_checker"}:
        return False
    checker = kwargs.get("format_checker")
    return checker is None or (
        type(checker) is FormatChecker and frozenset(checker.checkers) == _default_formats()
    )


def _validator(schema: Any, key: str, with_formats: bool) -> Any:
    from jsonschema import FormatChecker
    from jsonschema.validators import validator_for

    key = f"{with_formats}:{key}"
    validator = _validators.get(key)
    if validator is None:
        cls = validator_for(schema)
        cls.check_schema(schema)  # a SchemaError propagates, as from jsonschema.validate; not cached
        validator = cls(schema, format_checker=FormatChecker() if with_formats else None)
        if len(_validators) < MAX_CACHED_SCHEMAS:
            _validators[key] = validator
    return validator


def _cached_validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
    """``jsonschema.validate`` with the metaschema check and validator construction cached per schema."""
    original = _state["original"]
    if original is None or not _cacheable(cls, args, kwargs):
        import jsonschema.validators

        return (original or jsonschema.validators.validate)(instance, schema, cls, *args, **kwargs)
    try:
        key = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # not plain JSON: no safe key
        return original(instance, schema, cls, *args, **kwargs)
    from jsonschema.exceptions import best_match

    validator = _validator(schema, key, kwargs.get("format_checker") is not None)
    error = best_match(validator.iter_errors(instance))
    if error is not None:
        raise error
    return None


@contextmanager
def cached_schema_checks() -> Iterator[None]:
    """Within the block, ``jsonschema.validate`` caches its per-schema work (see the module doc)."""
    import jsonschema

    with _lock:
        if _state["depth"] == 0:
            _state["original"] = jsonschema.validate
            jsonschema.validate = _cached_validate
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                if jsonschema.validate is _cached_validate:  # nobody replaced it meanwhile
                    jsonschema.validate = _state["original"]
                _state["original"] = None
