"""The partitions of a validation: which files one mapped task validates, where it writes its result,
and reading those results back for :mod:`~mlops_provider.core.validation_combine`. No Airflow in here.

A mapped validation task gets a plan group index (``part``) of a
:class:`~mlops_provider.core.manifest.Plan`. The plan is a file on storage, so it is checked before use:
``part`` must be an integer (not a bool) naming a group, the groups must be numbered 0..n-1 in order, and
every file of the group must be one the task's own ``data_uri`` names (a plan cannot point the task at
other files). The task writes its full result to ``<task prefix>/part-<group>/validation_result.json``
(:func:`partition_folder`) with a ``partition`` object naming the plan and group; its XCom summary
carries ``part``, ``plan_id`` and ``result_uri``. The combining task accepts a summary only when it
names a group of the current plan and its ``result_uri`` is the one that group's task writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from mlops_provider.core.data import is_local, local_path
from mlops_provider.core.errors import DataError, InvalidInputError
from mlops_provider.core.manifest import Group, Plan, group_name

MAX_NAMES = 10


def names(items: Sequence[str]) -> str:
    """At most ``MAX_NAMES`` names, comma-separated, then how many more."""
    shown = ", ".join(items[:MAX_NAMES])
    return shown + (f" and {len(items) - MAX_NAMES} more" if len(items) > MAX_NAMES else "")


def count(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is a count: an int >= 0 (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def partition_folder(part: int) -> str:
    """The folder of one partition's result and report under the validation task's prefix."""
    return f"part-{group_name(part)}"


def result_uri(uri: str) -> str:
    """``uri`` as writing it reports it (a local path without ``file://``)."""
    return local_path(uri) if is_local(uri) else uri


def plan_group(plan: Plan, part: Any, plan_uri: str) -> Group:
    """The group ``part`` of ``plan`` (read from ``plan_uri``), once both are checked."""
    if not count(part):
        raise InvalidInputError(f"part must be a group number (an integer >= 0), got {part!r} for {plan_uri}")
    misplaced = [i for i, g in enumerate(plan.groups) if g.index != i]
    if misplaced:
        raise DataError(f"{plan_uri}: group #{misplaced[0]} has index {plan.groups[misplaced[0]].index}")
    if part >= len(plan.groups):
        raise InvalidInputError(
            f"part {part} is not a group of the plan at {plan_uri} ({len(plan.groups)} groups)"
        )
    group = plan.groups[part]
    if not group.files or group.rows < 0:
        raise DataError(f"{plan_uri}: group {group_name(part)} has no files or a negative row count")
    return group


def check_files(group: Group, allowed: Collection[str], plan_uri: str, data_uri: str) -> None:
    """Refuse a group listing a file ``data_uri`` does not name (``allowed``: the files it names)."""
    known = set(allowed)
    outside = [f for f in group.files if f not in known]
    if outside:
        raise DataError(
            f"{plan_uri}: group {group_name(group.index)} lists file(s) that {data_uri} does not name: "
            f"{names([repr(f) for f in outside])}"
        )


def summary_uris(
    summaries: Sequence[Any], plan: Plan, expected: Callable[[int], str]
) -> tuple[dict[int, str], list[str]]:
    """
    The result URI of each partition whose XCom summary is usable, and what is wrong with the others.

    :param summaries: what the mapped tasks returned (None for one without a summary).
    :param expected: the URI where the task of a group writes its result.
    """
    uris: dict[int, str] = {}
    problems: list[str] = []
    for index, summary in enumerate(summaries):
        if summary is None:
            continue
        part = summary.get("part") if isinstance(summary, Mapping) else None
        where = f"map index {index}"
        if not count(part) or part >= len(plan.groups):
            problems.append(f"{where}: its summary names no group of the plan (part {part!r})")
        elif summary.get("plan_id") != plan.plan_id:
            problems.append(
                f"partition {group_name(part)} validated plan {summary.get('plan_id')!r}, not {plan.plan_id!r}"
            )
        elif part in uris:
            problems.append(f"partition {group_name(part)} was validated twice ({where})")
        elif summary.get("result_uri") != expected(part):
            problems.append(
                f"partition {group_name(part)}: its result is at {summary.get('result_uri')!r}, not "
                f"{expected(part)!r} (give both tasks the same reports_uri)"
            )
        else:
            uris[part] = expected(part)
    return uris, problems


@dataclass
class Partial:
    """What one partition's task validated (read from its full result by :func:`read_partial`)."""

    part: int
    rows: int
    columns: list[str]
    suite: str
    results: list[dict[str, Any]]
    gx_version: str = ""

    @property
    def name(self) -> str:
        return group_name(self.part)


def _results(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, Mapping) or not isinstance(value.get("results"), list):
        raise DataError(f"{where}: 'validation_result.results' must be a list")
    for r in value["results"]:
        config = r.get("expectation_config") if isinstance(r, Mapping) else None
        if not isinstance(config, Mapping) or not isinstance(config.get("type"), str):
            raise DataError(f"{where}: a result without an expectation configuration")
        shapes = (config.get("kwargs", {}), r.get("result", {}), r.get("exception_info", {}))
        if not all(isinstance(x, Mapping) for x in shapes) or not isinstance(r.get("success"), bool):
            raise DataError(
                f"{where}: a result of {config['type']} lacks a 'success' flag, or its 'kwargs', 'result' "
                "or 'exception_info' is not an object"
            )
    return list(value["results"])


def read_partial(raw: bytes, where: str, plan_id: str, part: int) -> Partial:
    """A partition's full result (JSON written by the validation task), checked to be of ``plan_id``'s
    partition ``part``; a :class:`DataError` names ``where`` and what is wrong."""
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise DataError(f"{where}: not a JSON document ({err})") from None
    about = doc.get("partition") if isinstance(doc, dict) else None
    if not isinstance(about, dict):
        raise DataError(f"{where}: not a partition's validation result (no 'partition' object)")
    if about.get("plan_id") != plan_id or about.get("part") != part or isinstance(about.get("part"), bool):
        raise DataError(
            f"{where}: the result of plan {about.get('plan_id')!r} partition {about.get('part')!r}, "
            f"not of plan {plan_id!r} partition {part}"
        )
    rows, columns = doc.get("rows"), doc.get("columns")
    if not count(rows):
        raise DataError(f"{where}: 'rows' must be an integer >= 0, got {rows!r}")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise DataError(f"{where}: 'columns' must be a list of column names")
    return Partial(
        part=part,
        rows=rows,
        columns=columns,
        suite=str(doc.get("suite")),
        results=_results(doc.get("validation_result"), where),
        gx_version=str(doc.get("great_expectations_version") or ""),
    )


def read_partials(
    uris: Mapping[int, str], read: Callable[[str], bytes | None], plan_id: str
) -> tuple[dict[int, Partial], list[str]]:
    """The result of each partition at ``uris`` (``read`` returns None for a missing file), and what is
    wrong with those that cannot be used (each names its partition)."""
    partials: dict[int, Partial] = {}
    problems: list[str] = []
    for part, uri in sorted(uris.items()):
        try:
            raw = read(uri)
            if raw is None:
                raise DataError(f"{uri}: no such file")
            partials[part] = read_partial(raw, uri, plan_id, part)
        except DataError as err:
            problems.append(f"partition {group_name(part)}: {err}")
    return partials, problems


def concat(frames: Sequence[Any], files: Sequence[str]) -> Any:
    """The frames read from ``files`` (one each) as one; all must have the same columns."""
    import pandas as pd

    for frame, path in zip(frames[1:], files[1:], strict=True):
        if list(frame.columns) != list(frames[0].columns):
            raise DataError(f"{path}: columns differ from {files[0]}")
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
