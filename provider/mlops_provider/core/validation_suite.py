"""Great Expectations 1.x expectation suites: reading a suite (JSON or dict) and building every
expectation GX can build, naming each one it cannot instead of letting GX log and drop it.

No Airflow in here; :mod:`mlops_provider.core.validation` re-exports these names.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InvalidInputError

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

GX_LOGGER = "great_expectations"


class SuiteError(InvalidInputError):
    """An expectation suite cannot be read or holds expectations GX cannot build."""


def quiet_gx_logging() -> None:
    """
    Keep GX's INFO lines out of task logs: call before importing GX (~200 lines on import) and after
    (GX sets one of its own module loggers to INFO explicitly). A stricter level set by the user stays.
    """
    for name, logger in [(GX_LOGGER, logging.getLogger(GX_LOGGER))] + [
        (name, obj)
        for name, obj in list(logging.root.manager.loggerDict.items())
        if name.startswith(GX_LOGGER + ".") and isinstance(obj, logging.Logger)
    ]:
        if (
            name == GX_LOGGER
            and logger.level < logging.WARNING
            or name != GX_LOGGER
            and logging.NOTSET < logger.level < logging.WARNING
        ):
            logger.setLevel(logging.WARNING)


# -- suites ------------------------------------------------------------------------------------------
def parse_suite_json(raw: bytes | str, source: str) -> dict[str, Any]:
    """Parse the text of a GX suite JSON file; errors name ``source`` and the position."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        spec = json.loads(text)
    except UnicodeDecodeError as err:
        raise SuiteError(f"{source}: suite file is not UTF-8 text (offset {err.start})") from None
    except json.JSONDecodeError as err:
        raise SuiteError(
            f"{source}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    if not isinstance(spec, dict):
        raise SuiteError(f"{source}: a suite must be a JSON object, got {type(spec).__name__}")
    return spec


def load_suite_spec(
    suite: str | Mapping[str, Any], read_bytes: Callable[[str], bytes] | None = None
) -> tuple[dict[str, Any], str]:
    """
    The suite as a dict and a description of where it came from.

    :param suite: a dict (a GX 1.x suite) or the path/URI of a suite JSON file (already resolved).
    :param read_bytes: reads a path/URI; defaults to the local filesystem.
    """
    if isinstance(suite, Mapping):
        return dict(suite), "suite given as a dict"
    if not isinstance(suite, str) or not suite.strip():
        raise SuiteError(f"suite must be a dict or the path of a suite JSON file, got {suite!r}")
    reader = read_bytes or _read_local
    try:
        raw = reader(suite)
    except FileNotFoundError:
        raise SuiteError(f"{suite}: suite file not found") from None
    except OSError as err:
        raise SuiteError(f"{suite}: cannot read the suite file ({type(err).__name__}: {err})") from None
    return parse_suite_json(raw, suite), suite


def load_suite(
    suite: Any, resolve: Callable[[str], str], read: Callable[[str], bytes], absent: Sequence[str] = ()
) -> tuple[ExpectationSuite, str, list[str]]:
    """
    The built GX suite without what it says about ``absent`` optional columns, where it came from, and
    what was left out (:func:`without_columns`).

    :param suite: a dict, or the path/URI of a suite JSON file (``resolve`` makes it absolute).
    :param read: reads the file.
    """
    from_file = isinstance(suite, str) and bool(suite.strip())
    if from_file:
        suite = resolve(suite)
    spec, source = load_suite_spec(suite, read)
    spec, skipped = without_columns(spec, absent)
    default_name = source.rsplit("/", 1)[-1].removesuffix(".json") if from_file else "suite"
    return build_suite(spec, source, default_name=default_name), source, skipped


def _read_local(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _describe(index: int, exp: Any) -> str:
    kind = exp.get("type") if isinstance(exp, Mapping) else None
    where = f"expectation #{index}"
    if isinstance(kind, str):
        where += f" {kind!r}"
        kwargs = exp.get("kwargs")
        if isinstance(kwargs, Mapping) and isinstance(kwargs.get("column"), str):
            where += f" (column {kwargs['column']!r})"
    return where


def _pydantic_errors(err: Exception) -> str | None:
    errors = getattr(err, "errors", None)
    if not callable(errors):
        return None
    try:
        items = errors()
    except Exception:
        return None
    parts, seen = [], set()
    for item in items:
        loc = ".".join(str(p) for p in item.get("loc", ()) if p != "__root__")
        if loc and loc in seen:  # a union type reports one error per member: keep the first
            continue
        seen.add(loc)
        parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
    return "; ".join(parts) or None


def _build_one(index: int, exp: Any) -> tuple[Any, str | None]:
    """Build one expectation; return (expectation, None) or (None, problem)."""
    import great_expectations.exceptions as gx_exceptions
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    where = _describe(index, exp)
    if not isinstance(exp, Mapping):
        return None, f"{where}: must be an object with 'type' and 'kwargs', got {type(exp).__name__}"
    if "type" not in exp and "expectation_type" in exp:
        return None, f"{where}: 'expectation_type' is the GX 0.x format; GX 1.x suites use 'type'"
    kind = exp.get("type")
    if not isinstance(kind, str) or not kind:
        return None, f"{where}: missing or invalid 'type'"
    if not isinstance(exp.get("kwargs", {}), Mapping):
        return None, f"{where}: 'kwargs' must be an object"
    config = {"kwargs": {}, **exp}
    try:
        return ExpectationConfiguration(**config).to_domain_obj(), None
    except gx_exceptions.ExpectationNotFoundError:
        close = difflib.get_close_matches(kind, list_registered_expectation_implementations(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return None, f"{where}: unknown expectation type{hint}"
    except gx_exceptions.InvalidExpectationConfigurationError as err:
        return None, f"{where}: invalid configuration ({err})"
    except TypeError as err:
        return None, f"{where}: invalid field ({err})"
    except ValueError as err:  # pydantic's ValidationError
        return None, f"{where}: invalid argument(s): {_pydantic_errors(err) or err}"


def build_suite(spec: Mapping[str, Any], source: str, default_name: str = "suite") -> ExpectationSuite:
    """
    A GX ``ExpectationSuite`` holding every expectation of ``spec``; raise :class:`SuiteError` naming
    each expectation GX cannot build (index, type, column, reason) instead of dropping it.
    """
    quiet_gx_logging()
    import great_expectations as gx

    quiet_gx_logging()
    expectations = spec.get("expectations")
    if not isinstance(expectations, list):
        raise SuiteError(f"{source}: 'expectations' must be a list of expectations")
    if not expectations:
        raise SuiteError(f"{source}: the suite has no expectations (it would pass any data)")
    built, problems = [], []
    for index, exp in enumerate(expectations):
        obj, problem = _build_one(index, exp)
        if problem:
            problems.append(problem)
        else:
            built.append(obj)
    if problems:
        raise SuiteError(f"{source}: {len(problems)} invalid expectation(s): " + "; ".join(problems))
    name = spec.get("name") or spec.get("expectation_suite_name") or default_name
    try:
        suite = gx.ExpectationSuite(
            name=str(name),
            expectations=built,
            suite_parameters=spec.get("suite_parameters") or None,
            meta=spec.get("meta") or None,
        )
    except (TypeError, ValueError) as err:
        raise SuiteError(f"{source}: invalid suite ({err})") from None
    if len(suite.expectations) != len(expectations):  # GX drops what it cannot load: never silently
        kept = {id(e) for e in suite.expectations}
        dropped = [_describe(i, expectations[i]) for i, e in enumerate(built) if id(e) not in kept]
        raise SuiteError(
            f"{source}: GX dropped {len(expectations) - len(suite.expectations)} expectation(s) while "
            f"loading: {', '.join(dropped) or 'unknown'}"
        )
    return suite


COLUMN_KEYS = ("column", "column_A", "column_B")
LIST_KEYS = ("column_list", "column_set")


def without_columns(spec: Mapping[str, Any], absent: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """
    The suite without what it says about ``absent`` columns (optional columns the data lacks, e.g. the
    target in a batch that is not labelled yet): expectations on one of them are left out, and they
    are taken out of table-level column lists. Returns the new spec and a description of what changed.
    """
    gone = set(absent)
    kept, skipped = [], []
    for index, exp in enumerate(spec.get("expectations") or []):
        kwargs = exp.get("kwargs") if isinstance(exp, Mapping) else None
        if not isinstance(kwargs, Mapping):
            kept.append(exp)
            continue
        if any(kwargs.get(key) in gone for key in COLUMN_KEYS if isinstance(kwargs.get(key), str)):
            skipped.append(_describe(index, exp))
            continue
        trimmed = dict(kwargs)
        for key in LIST_KEYS:
            if isinstance(kwargs.get(key), list) and gone & set(map(str, kwargs[key])):
                trimmed[key] = [c for c in kwargs[key] if c not in gone]
                skipped.append(
                    f"{_describe(index, exp)}: {', '.join(sorted(gone & set(kwargs[key])))} left out"
                )
        kept.append({**exp, "kwargs": trimmed})
    return {**spec, "expectations": kept}, skipped
