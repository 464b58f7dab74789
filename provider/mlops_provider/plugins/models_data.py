"""What Airflow's metadata DB says about the models: which the configs define, their retrain runs and
the approvals waiting for a person. Used by :mod:`mlops_provider.plugins.models_api` in the API server.

Each function is one query (with :func:`airflow.utils.session.create_session`, as the core API's
``SessionDep`` does); nothing here imports at module level beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from mlops_provider.core.catalog_rows import retrain_cause

MODEL_TAG_PREFIX = "model:"
MLOPS_TAG = "mlops"
DAG_KINDS = {  # DAG id suffix -> kind; the kind tags the DAG factory sets
    "_retrain": "retrain",
    "_drift_monitor": "drift",
    "_batch_score": "scoring",
    "_rollback": "rollback",
    "_performance_monitor": "performance",
}
RETRAINS_SHOWN = 20
WAITING_STATES = ("awaiting_input", "deferred")


@dataclass
class ConfiguredModel:
    """A model the configs define: its DAG ids by kind (``retrain``, ``drift``, ``scoring``, ``rollback``)."""

    name: str
    dags: dict[str, str] = field(default_factory=dict)

    @property
    def dag_ids(self) -> list[str]:
        return sorted(self.dags.values())


def dag_url(dag_id: str, *rest: str) -> str:
    """The Airflow UI page of a DAG (``rest``: deeper segments, each URL-encoded)."""
    return "/".join(["/dags", *(quote(str(p), safe="") for p in (dag_id, *rest))])


def _kind(name: str, dag_id: str) -> str | None:
    """The DAG's kind when its id is the factory's id for ``name`` (``<name>_retrain``, ...), else None:
    a tag alone never ties a DAG to a model (any DAG author can set tags)."""
    return next((kind for suffix, kind in DAG_KINDS.items() if dag_id == f"{name}{suffix}"), None)


def configured_models(name: str | None = None) -> dict[str, ConfiguredModel]:
    """
    The models of non-stale DAGs tagged ``mlops`` and ``model:<name>`` (only ``name`` when given), each
    with its DAG ids by kind. Only a DAG whose id is the factory's id for that model counts: a DAG
    tagged ``model:<another team's model>`` claims nothing.
    """
    from airflow.models.dag import DagModel, DagTag
    from airflow.utils.session import create_session
    from sqlalchemy import select

    mlops_dags = select(DagTag.dag_id).where(DagTag.name == MLOPS_TAG)
    stmt = (
        select(DagTag.dag_id, DagTag.name)
        .join(DagModel, DagModel.dag_id == DagTag.dag_id)
        .where(DagModel.is_stale.is_(False), DagTag.dag_id.in_(mlops_dags))
    )
    with create_session(scoped=False) as session:
        rows = session.execute(stmt).all()
    tags: dict[str, set[str]] = {}
    for dag_id, tag in rows:
        tags.setdefault(dag_id, set()).add(tag)
    models: dict[str, ConfiguredModel] = {}
    for dag_id, names in sorted(tags.items()):
        for tag in names:
            model = tag[len(MODEL_TAG_PREFIX) :] if tag.startswith(MODEL_TAG_PREFIX) else ""
            if not model or (name is not None and model != name):
                continue
            kind = _kind(model, dag_id)
            if kind is not None:
                models.setdefault(model, ConfiguredModel(model)).dags[kind] = dag_id
    return models


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def retrain_runs(dag_ids: Iterable[str], per_dag: int = 1) -> dict[str, list[dict[str, Any]]]:
    """
    The newest ``per_dag`` runs of each DAG (newest first), with why each started, in one query: a window
    over the runs joined with the Asset events each consumed.
    """
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.asset import association_table as consumed
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    ids = sorted(set(dag_ids))
    if not ids:
        return {}
    order = (DagRun.run_after.desc(), DagRun.id.desc())
    rank = func.row_number().over(partition_by=DagRun.dag_id, order_by=order).label("rank")
    ranked = select(DagRun.id.label("id"), rank).where(DagRun.dag_id.in_(ids)).subquery()
    stmt = (
        select(
            DagRun.id,
            DagRun.dag_id,
            DagRun.run_id,
            DagRun._state,
            DagRun.run_type,
            DagRun.triggering_user_name,
            DagRun.conf,
            DagRun.logical_date,
            DagRun.run_after,
            DagRun.start_date,
            DagRun.end_date,
            AssetModel.uri,
        )
        .join(ranked, ranked.c.id == DagRun.id)
        .outerjoin(consumed, consumed.c.dag_run_id == DagRun.id)
        .outerjoin(AssetEvent, AssetEvent.id == consumed.c.event_id)
        .outerjoin(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(ranked.c.rank <= per_dag)
        .order_by(DagRun.dag_id, *order)
    )
    with create_session(scoped=False) as session:
        rows = session.execute(stmt).all()
    return _shape_runs(rows)


def _shape_runs(rows: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    runs: dict[int, dict[str, Any]] = {}
    uris: dict[int, list[str]] = {}
    for row in rows:
        if row.id not in runs:
            runs[row.id] = {
                "dag_id": row.dag_id,
                "dag_run_id": row.run_id,
                "state": row._state,
                "run_type": str(row.run_type or "") or None,
                "conf": row.conf,
                "triggered_by": row.triggering_user_name,
                "logical_date": _iso(row.logical_date or row.run_after),
                "start_date": _iso(row.start_date),
                "end_date": _iso(row.end_date),
                "url": dag_url(row.dag_id, "runs", row.run_id),
            }
            uris[row.id] = []
        if row.uri:
            uris[row.id].append(row.uri)
    shaped: dict[str, list[dict[str, Any]]] = {}
    for run_key, run in runs.items():
        conf = run.pop("conf")
        run["cause"] = retrain_cause(run["run_type"], conf, uris[run_key])
        shaped.setdefault(run["dag_id"], []).append(run)
    return shaped


def pending_approvals(dag_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Human-in-the-loop requests nobody answered yet on tasks still waiting, oldest first."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    ids = sorted(set(dag_ids))
    if not ids:
        return []
    stmt = (
        select(
            TaskInstance.dag_id,
            TaskInstance.run_id,
            TaskInstance.task_id,
            TaskInstance.map_index,
            HITLDetail.subject,
            HITLDetail.created_at,
        )
        .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
        .where(
            TaskInstance.dag_id.in_(ids),
            HITLDetail.responded_at.is_(None),
            TaskInstance.state.in_(WAITING_STATES),
        )
        .order_by(HITLDetail.created_at)
    )
    with create_session(scoped=False) as session:
        rows = session.execute(stmt).all()
    return [
        {
            "dag_id": r.dag_id,
            "dag_run_id": r.run_id,
            "task_id": r.task_id,
            "subject": (r.subject or "")[:500],
            "created_at": _iso(r.created_at),
            "url": (
                dag_url(r.dag_id, "runs", r.run_id, "tasks", r.task_id, "required_actions")
                if r.map_index < 0
                else dag_url(r.dag_id, "runs", r.run_id, "tasks", r.task_id, "mapped", str(r.map_index))
            ),
        }
        for r in rows
    ]


def count_by_model(
    approvals: Iterable[Mapping[str, Any]], dags_of: Mapping[str, Iterable[str]]
) -> dict[str, int]:
    """How many approvals wait per model (``dags_of``: model -> its DAG ids)."""
    owner = {dag: model for model, dags in dags_of.items() for dag in dags}
    counts: dict[str, int] = {}
    for a in approvals:
        model = owner.get(a["dag_id"])
        if model is not None:
            counts[model] = counts.get(model, 0) + 1
    return counts
