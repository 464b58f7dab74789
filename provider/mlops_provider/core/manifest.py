"""Published outputs: a folder of part files becomes one dataset when its manifest, written last, lists
them. No Airflow in here.

An output folder ``<out>/`` holds:

* ``part-<group>-<attempt>-<n>.mlops.parquet``: parts written by scoring tasks; no reader sees them until
  the manifest lists them, so a failed or retried attempt leaves nothing half-published;
* ``_parts/plan.json``: a mapped run's plan (:class:`Plan`): its id, the versions pinned for the run,
  and the groups of input files, each with the row number it starts at;
* ``_parts/<group>.json``: what one group's task wrote (:class:`GroupResult`); a retry rewrites only
  its own;
* ``_manifest.json``: the published dataset: its files and what made them (:func:`manifest`).

The publishing step accepts group results only from the current plan (one plan id, the same pinned
versions), so the published output never mixes two runs. Readers (:func:`mlops_provider.core.data.expand`)
read the files a manifest lists and nothing else; names in a manifest must stay inside its folder.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_provider.core.errors import DataError
from mlops_provider.core.scoring import as_shares

MANIFEST = "_manifest.json"
PARTS_DIR = "_parts"
PLAN = "plan.json"
FORMAT = "mlops-dataset/1"
PART_NAME = re.compile(r"^part-[A-Za-z0-9_-]+\.mlops\.parquet$")  # core.data_parts.PART_SUFFIX
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_=.-]+(/[A-Za-z0-9_=.-]+)*$")


def group_name(index: int) -> str:
    return f"{index:05d}"


def part_prefix(group: str, attempt: str) -> str:
    """Part files of one group's attempt: ``part-<group>-<attempt>``."""
    return f"part-{group}-{attempt}"


def safe_name(name: Any, where: str) -> str:
    """A file name relative to the manifest's folder; anything leading out of it is refused."""
    if (
        not isinstance(name, str)
        or not _SAFE_NAME.match(name)
        or any(p in (".", "..") for p in name.split("/"))
    ):
        raise DataError(f"{where}: {name!r} is not a file name inside the folder")
    return name


@dataclass(frozen=True)
class Group:
    """Input files scored by one task, and the batch row number its first row has."""

    index: int
    files: list[str]
    row_offset: int
    rows: int


@dataclass(frozen=True)
class Plan:
    """A mapped scoring run: the versions pinned for it (served alias first) and its groups."""

    plan_id: str
    model_name: str
    source: str
    versions: dict[str, str]
    groups: list[Group]

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Plan:
        try:
            raw = json.loads(data)
            groups = [
                Group(
                    _count(g["index"]),
                    [_text(f) for f in g["files"]],
                    _count(g["row_offset"]),
                    _count(g["rows"]),
                )
                for g in raw["groups"]
            ]
            plan = cls(
                plan_id=_text(raw["plan_id"]),
                model_name=_text(raw["model_name"]),
                source=_text(raw["source"]),
                versions={_text(k): _text(v) for k, v in dict(raw["versions"]).items()},
                groups=groups,
            )
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{where}: not a scoring plan ({type(err).__name__}: {err})") from None
        plan.check(where)
        return plan

    def check(self, where: str) -> None:
        """The groups tile the batch: numbered 0..n-1, each file once, row offsets the running sum."""
        seen: set[str] = set()
        offset = 0
        for number, group in enumerate(self.groups):
            repeated = seen.intersection(group.files)
            if group.index != number or group.row_offset != offset or not group.files or repeated:
                raise DataError(
                    f"{where}: group {number} does not follow the groups before it (index {group.index}, "
                    f"row offset {group.row_offset} for {offset}, files repeated: {sorted(repeated)[:3]})"
                )
            seen.update(group.files)
            offset += group.rows


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a count")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value


def make_groups(files: Sequence[str], rows: Sequence[int], per_task: int) -> list[Group]:
    """Files in order, ``per_task`` to a group, with each group's first batch row number."""
    groups: list[Group] = []
    offset = 0
    for start in range(0, len(files), per_task):
        chunk = list(files[start : start + per_task])
        count = sum(rows[start : start + per_task])
        groups.append(Group(len(groups), chunk, offset, count))
        offset += count
    return groups


@dataclass
class GroupResult:
    """What one group's task wrote: per alias the versions scored and part files, rows, unseen counts."""

    plan_id: str
    group: int
    versions: dict[str, str]
    rows: int
    files: dict[str, list[str]] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)  # shadow alias -> why it was left out

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> GroupResult:
        try:
            raw = json.loads(data)
            return cls(
                plan_id=str(raw["plan_id"]),
                group=int(raw["group"]),
                versions={str(k): str(v) for k, v in dict(raw["versions"]).items()},
                rows=int(raw["rows"]),
                files={
                    str(a): [safe_name(n, where) for n in names] for a, names in dict(raw["files"]).items()
                },
                unseen={str(k): int(v) for k, v in dict(raw.get("unseen") or {}).items()},
                left_out={str(k): str(v) for k, v in dict(raw.get("left_out") or {}).items()},
            )
        except (ValueError, KeyError, TypeError) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"{where}: not a scoring part record ({type(err).__name__}: {err})") from None


def check_results(plan: Plan, results: Mapping[int, GroupResult | None], served: str) -> None:
    """Refuse to publish unless every group of ``plan`` wrote its part for this plan, with the plan's
    versions (served and shadow), as many rows as its files hold, and part files of its own only."""
    problems: list[str] = []
    listed: set[str] = set()
    for group in plan.groups:
        name = group_name(group.index)
        problem = _result_problem(plan, group, results.get(group.index), served)
        result = results.get(group.index)
        if problem is None and result is not None:
            names = [n for files in result.files.values() for n in files]
            foreign = [n for n in names if not n.startswith(f"part-{name}-")]
            twice = listed.intersection(names) | {n for n, k in Counter(names).items() if k > 1}
            if foreign or twice:
                problem = f"group {name} lists part files not its own: {sorted(set(foreign) | twice)[:3]}"
            listed.update(names)
        if problem is not None:
            problems.append(problem)
    if problems:
        raise DataError(f"nothing published for {plan.source}: {'; '.join(problems)}")


def _result_problem(plan: Plan, group: Group, result: GroupResult | None, served: str) -> str | None:
    name = group_name(group.index)
    if result is None:
        return f"group {name} wrote no part"
    if result.plan_id != plan.plan_id:
        return f"group {name}'s part is from another run (plan {result.plan_id}, not {plan.plan_id})"
    if result.versions.get(served) != plan.versions.get(served):
        return f"group {name} was scored by version {result.versions.get(served)}, not {plan.versions.get(served)}"
    wrong = {a: v for a, v in result.versions.items() if plan.versions.get(a) != v}
    if wrong or set(result.files) - set(result.versions):
        return f"group {name} scored with versions {result.versions}, the plan pinned {plan.versions}"
    if result.rows != group.rows:
        return f"group {name} scored {result.rows} rows, its files hold {group.rows}"
    if served not in result.files:
        return f"group {name} lists no part of @{served}"
    return None


def unseen_shares(results: Sequence[GroupResult], rows: int) -> dict[str, float]:
    """Unseen-category shares over the whole batch, from every group's counts."""
    totals: dict[str, int] = {}
    for result in results:
        for column, count in result.unseen.items():
            totals[column] = totals.get(column, 0) + count
    return as_shares(totals, rows)


def manifest(files: Sequence[str], *, rows: int, about: Mapping[str, Any]) -> bytes:
    """A folder's manifest: its files (relative names), its rows and what made them."""
    names = [safe_name(n, MANIFEST) for n in files]
    return json.dumps(
        {"format": FORMAT, "files": names, "rows": rows, **about}, indent=1, default=str
    ).encode()


def manifest_files(data: bytes, where: str) -> list[str]:
    """The relative file names a manifest lists (each checked to stay inside its folder)."""
    try:
        raw = json.loads(data)
        names = raw["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{where}: not a dataset manifest ({type(err).__name__}: {err})") from None
    if not isinstance(names, list):
        raise DataError(f"{where}: 'files' must be a list of file names")
    checked = [safe_name(n, where) for n in names]
    twice = sorted(n for n, count in Counter(checked).items() if count > 1)
    if twice:
        raise DataError(f"{where}: lists {twice[:3]} more than once")
    return checked
