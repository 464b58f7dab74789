"""Published outputs: a folder of part files becomes one dataset when its manifest, written last, lists
them. No Airflow in here.

An output folder ``<out>/`` holds:

* ``part-<group>-<attempt>-<n>.parquet``: parts written by scoring tasks; no reader sees them until
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
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_provider.core.errors import DataError

MANIFEST = "_manifest.json"
PARTS_DIR = "_parts"
PLAN = "plan.json"
FORMAT = "mlops-dataset/1"
PART_NAME = re.compile(r"^part-[A-Za-z0-9_-]+\.parquet$")
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
                Group(int(g["index"]), [str(f) for f in g["files"]], int(g["row_offset"]), int(g["rows"]))
                for g in raw["groups"]
            ]
            return cls(
                plan_id=str(raw["plan_id"]),
                model_name=str(raw["model_name"]),
                source=str(raw["source"]),
                versions={str(k): str(v) for k, v in dict(raw["versions"]).items()},
                groups=groups,
            )
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{where}: not a scoring plan ({type(err).__name__}: {err})") from None


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
    """Refuse to publish unless every group of ``plan`` wrote its part for this plan, with its versions."""
    problems = []
    for group in plan.groups:
        result = results.get(group.index)
        name = group_name(group.index)
        if result is None:
            problems.append(f"group {name} wrote no part")
        elif result.plan_id != plan.plan_id:
            problems.append(
                f"group {name}'s part is from another run (plan {result.plan_id}, not {plan.plan_id})"
            )
        elif result.versions.get(served) != plan.versions.get(served):
            problems.append(
                f"group {name} was scored by version {result.versions.get(served)}, not {plan.versions.get(served)}"
            )
        elif result.rows != group.rows:
            problems.append(f"group {name} scored {result.rows} rows, its files hold {group.rows}")
    if problems:
        raise DataError(f"nothing published for {plan.source}: {'; '.join(problems)}")


def unseen_shares(results: Sequence[GroupResult], rows: int) -> dict[str, float]:
    """Unseen-category shares over the whole batch, from every group's counts."""
    totals: dict[str, int] = {}
    for result in results:
        for column, count in result.unseen.items():
            totals[column] = totals.get(column, 0) + count
    return {c: round(n / rows, 6) for c, n in sorted(totals.items())} if rows else {}


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
    return [safe_name(n, where) for n in names]
