"""The Models JSON API: ``GET /mlops/api/models`` and ``GET /mlops/api/models/{name}``.

A model is a model the configs define (DAGs tagged ``mlops`` and ``model:<name>``) or one the provider's
operators registered in MLflow (tag ``mlops.managed``). A user sees it only if the auth manager lets them
read its retrain DAG (the config's ``<name>_retrain``, else the registered model's ``mlops.retrain_dag``
tag); a model with no retrain DAG only if they may read every DAG. An unknown and a forbidden model get
the same 404. MLflow is read through :class:`~mlops_provider.hooks.catalog.ModelCatalogHook` (cached
per model), Airflow's metadata DB through :mod:`mlops_provider.plugins.models_data`.

Every string in the answers is data from MLflow or Airflow: clients render it as text.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlops_provider.core import catalog as shape
from mlops_provider.core import catalog_rows as rows
from mlops_provider.core.metrics import higher_is_better
from mlops_provider.core.model_card_record import CARD_FILES, CARD_TAG, card_path
from mlops_provider.plugins import models_data as data
from mlops_provider.plugins.app import URL_PREFIX

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlops_provider.hooks.catalog import ModelCatalogHook, ModelState, RegisteredModelInfo

log = logging.getLogger(__name__)

HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
NOT_FOUND = {"detail": "No such model"}
UNAVAILABLE = {"detail": "MLflow is unavailable; see the API server log"}
_catalog: ModelCatalogHook | None = None
_catalog_lock = threading.Lock()


def get_catalog() -> ModelCatalogHook:
    """The process's catalog (one cache for every request), built on first use."""
    global _catalog
    with _catalog_lock:
        if _catalog is None:
            from mlops_provider.hooks.catalog import ModelCatalogHook

            _catalog = ModelCatalogHook()
        return _catalog


def reset_catalog() -> None:
    """Forget the catalog and its cache (tests point MLflow elsewhere)."""
    global _catalog
    with _catalog_lock:
        _catalog = None


def report_link(uri: str) -> str | None:
    """The plugin URL of a report, None for a URI no report can have (``http://[x``: data, not a fault)."""
    from mlops_provider.links.reports import report_url

    try:
        return report_url(uri)
    except ValueError:
        return None


def page_links(name: str, retrain_dag_id: str | None) -> dict[str, str | None]:
    encoded = quote(name, safe="")
    return {
        "retrain_dag": data.dag_url(retrain_dag_id) if retrain_dag_id else None,
        "model_page": f"{URL_PREFIX}/models/{encoded}",
        "api": f"{URL_PREFIX}/api/models/{encoded}",
    }


def is_listed(info: RegisteredModelInfo) -> bool:
    """A registered model the provider manages (not a lock, not someone else's model)."""
    tags = info.tags
    return tags.get("mlops.lock") != "true" and (
        tags.get(shape.MANAGED_TAG) == "true" or bool(tags.get(shape.RETRAIN_DAG_TAG))
    )


def retrain_dag_of(configured: data.ConfiguredModel | None, tags: Mapping[str, str]) -> str | None:
    if configured is not None:  # the config, never a tag anyone with MLflow access could set
        return configured.dags.get("retrain")
    return str(tags.get(shape.RETRAIN_DAG_TAG) or "") or None


def may_read(user: Any, dag_id: str | None) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    details = DagDetails(id=dag_id) if dag_id else None
    return bool(get_auth_manager().is_authorized_dag(method="GET", details=details, user=user))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- GET /api/models ------------------------------------------------------------------------------
def list_models(user: Any) -> dict[str, Any]:
    configured = data.configured_models()
    registered = {m.name: m for m in get_catalog().registered_models() if is_listed(m)}
    visible: dict[str, str | None] = {}
    for name in sorted(set(configured) | set(registered)):
        tags = registered[name].tags if name in registered else {}
        retrain = retrain_dag_of(configured.get(name), tags)
        if may_read(user, retrain):
            visible[name] = retrain
    dags_of = {
        name: configured[name].dag_ids if name in configured else [d for d in [retrain] if d]
        for name, retrain in visible.items()
    }
    runs = data.retrain_runs([d for d in visible.values() if d], per_dag=1)
    readable = [d for dags in dags_of.values() for d in dags if may_read(user, d)]
    approvals = data.count_by_model(data.pending_approvals(readable), dags_of)
    models = [
        safe_summary(name, retrain, name in configured, registered.get(name), runs, approvals.get(name, 0))
        for name, retrain in visible.items()
    ]
    return {"models": models, "generated_at": now_iso()}


def safe_summary(name: str, retrain: str | None, configured: bool, *rest: Any) -> dict[str, Any]:
    """:func:`model_summary`, or a bare row when the model's data cannot be shaped: one model's hostile
    or broken tags never take the list down for everyone."""
    try:
        return model_summary(name, retrain, configured, *rest)
    except Exception:
        log.exception("Models API: cannot summarise model %r", name[:200])
        row = dict.fromkeys(("champion", "last_retrain", "last_decision", "last_drift", "live_metric"))
        return {
            **row,
            "name": name,
            "retrain_dag_id": retrain,
            "configured": configured,
            "registered": None,
            "pending_approvals": 0,
            "problems": ["unreadable"],
            "links": page_links(name, retrain),
        }


def model_summary(
    name: str,
    retrain: str | None,
    configured: bool,
    info: RegisteredModelInfo | None,
    runs: Mapping[str, Sequence[dict[str, Any]]],
    pending: int,
) -> dict[str, Any]:
    tags = info.tags if info is not None else {}
    history = shape.alias_history(tags)
    last_retrain = next(iter(runs.get(retrain) or []), None) if retrain else None
    decision = shape.last_decision(tags.get(shape.LAST_DECISION_TAG))
    drift = shape.last_check(tags.get(shape.LAST_CHECK_TAG.format(check="drift")), report_link)
    served = info.aliases.get(shape.CHAMPION) if info is not None else None
    live = rows.live_check(tags.get(shape.LAST_CHECK_TAG.format(check="performance")), served)
    return {
        "name": name,
        "retrain_dag_id": retrain,
        "configured": configured,
        "registered": info is not None,
        "champion": shape.champion(info.aliases, history) if info is not None else None,
        "last_retrain": last_retrain,
        "last_decision": decision,
        "last_drift": drift,
        "live_metric": live,
        "pending_approvals": pending,
        "problems": rows.problems(decision, drift, last_retrain, pending, live),
        "links": page_links(name, retrain),
    }


# -- GET /api/models/{name} -----------------------------------------------------------------------
def model_detail(name: str, user: Any) -> dict[str, Any] | None:
    """The model page's data, or None when the model is unknown or the user may not read it."""
    from mlops_provider.hooks.catalog import MAX_NAME_CHARS

    if not name or len(name) > MAX_NAME_CHARS:
        return None
    configured = data.configured_models(name).get(name)
    if configured is not None and not may_read(user, configured.dags.get("retrain")):
        return None  # decided before MLflow is asked
    info = None
    if configured is None:  # the registry's own claim decides, read cheaply before anything is loaded
        info = get_catalog().registered_model(name)
        if info is None or not is_listed(info) or not may_read(user, retrain_dag_of(None, info.tags)):
            return None
    state = get_catalog().model(name, info)
    if configured is None and state is None:
        return None
    retrain = retrain_dag_of(configured, state.model.tags if state is not None else {})
    dags = dict(configured.dags) if configured is not None else ({"retrain": retrain} if retrain else {})
    approvals = data.pending_approvals([d for d in dags.values() if may_read(user, d)])
    detail = dict(mlflow_part(state)) if state is not None else empty_mlflow_part()
    detail["versions"] = mark_pending(detail["versions"], detail.pop("_origins"), approvals)
    return {
        "name": name,
        "configured": configured is not None,
        "registered": state is not None,
        "retrain_dag_id": retrain,
        "drift_dag_id": dags.get("drift"),
        "score_dag_id": dags.get("scoring"),
        "rollback_dag_id": dags.get("rollback"),
        **detail,
        "retrains": data.retrain_runs([retrain], per_dag=data.RETRAINS_SHOWN).get(retrain, [])
        if retrain
        else [],
        "pending_approvals": approvals,
        "actions": actions(dags, approvals),
        "links": page_links(name, retrain),
        "generated_at": now_iso(),
    }


def actions(dags: Mapping[str, str], approvals: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """Airflow UI pages for what a person may do: each through Airflow (authorized, audited). The
    retrain and rollback DAG pages hold the Trigger button that opens the form with the DAG's Params."""
    retrain, rollback = dags.get("retrain"), dags.get("rollback")
    waiting = sorted({a["dag_id"] for a in approvals})
    approvals_page = data.dag_url(waiting[0], "required_actions") if len(waiting) == 1 else None
    if len(waiting) > 1:
        approvals_page = "/required_actions?response_received=false"
    return {
        "trigger_retrain": data.dag_url(retrain) if retrain else None,
        "rollback": data.dag_url(rollback) if rollback else None,
        "approvals": approvals_page or (data.dag_url(retrain, "required_actions") if retrain else None),
    }


def mark_pending(
    versions: list[dict[str, Any]],
    origins: Sequence[tuple[str | None, str | None]],
    approvals: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Versions without a decision whose registering DAG run (``origins``: (dag id, run id) per version)
    waits for an approval are ``pending``; the cached entries are copied, never changed."""
    waiting = {(a["dag_id"], a["dag_run_id"]) for a in approvals}
    if not waiting:
        return versions
    return [
        {**v, "decision": "pending"} if v["decision"] is None and origin in waiting else v
        for v, origin in zip(versions, origins, strict=True)
    ]


def empty_mlflow_part() -> dict[str, Any]:
    return {
        "primary_metric": shape.primary_metric({}, []),
        "greater_is_better": True,
        "champion": None,
        "aliases": {},
        "versions": [],
        "_origins": [],
        "alias_history": [],
        "drift": [],
        "performance": [],
        "last_decision": None,
        "last_drift": None,
    }


def mlflow_part(state: ModelState) -> dict[str, Any]:
    """What MLflow says, shaped once per cached state."""
    return dict(state.derived("detail", lambda: build_mlflow_part(state)))


def build_mlflow_part(state: ModelState) -> dict[str, Any]:
    info = state.model
    history = shape.alias_history(info.tags)
    holders = shape.aliases_by_version(info.aliases)
    primary = shape.primary_metric(info.tags, state.versions)
    base = get_catalog().settings.ui_base_url()
    encoded = quote(info.name, safe="")
    versions, origins = [], []
    for record in state.versions:
        run = state.runs.get(record.run_id or "")
        dag_id, dag_run = record.tags.get("mlops.dag_id"), record.tags.get("mlops.dag_run_id")
        links = {
            "mlflow_run": f"{base}/#/experiments/{run.experiment_id}/runs/{run.run_id}"
            if base and run
            else None,
            "mlflow_version": f"{base}/#/models/{encoded}/versions/{quote(record.version, safe='')}"
            if base
            else None,
            "dag_run": data.dag_url(dag_id, "runs", dag_run) if dag_id and dag_run else None,
            "model_card": card_path(info.name, record.version) if record.tags.get(CARD_TAG) else None,
        }
        versions.append(shape.version_entry(record, run, holders.get(record.version, []), links))
        origins.append((dag_id, dag_run))
    return {
        "primary_metric": primary,
        "greater_is_better": higher_is_better(primary),
        "champion": shape.champion(info.aliases, history),
        "aliases": dict(info.aliases),
        "versions": versions,
        "_origins": origins,
        "alias_history": history,
        **shape.series(state.monitoring, report_link),
        "last_decision": shape.last_decision(info.tags.get(shape.LAST_DECISION_TAG)),
        "last_drift": shape.last_check(
            info.tags.get(shape.LAST_CHECK_TAG.format(check="drift")), report_link
        ),
        "live_metric": rows.live_check(
            info.tags.get(shape.LAST_CHECK_TAG.format(check="performance")), info.aliases.get(shape.CHAMPION)
        ),
    }


# -- GET /cards/{name}/{version}/{file}: a version's model card (an MLflow artifact) ---------------------
def model_card(name: str, version: str, file: str, user: Any) -> bytes | None:
    """The card's bytes, or None when it does not exist or the user may not read the model's DAGs (the
    rule of :func:`model_detail`: the config's retrain DAG, else the managed model's recorded one)."""
    from mlops_provider.hooks.catalog import MAX_NAME_CHARS
    from mlops_provider.hooks.model_card import read_card

    if not name or len(name) > MAX_NAME_CHARS or file not in CARD_FILES:
        return None
    if not (version.isascii() and version.isdigit() and len(version) <= 10):
        return None
    configured = data.configured_models(name).get(name)
    if configured is not None and not may_read(user, configured.dags.get("retrain")):
        return None
    info = get_catalog().registered_model(name)
    if info is None or (
        configured is None and not (is_listed(info) and may_read(user, retrain_dag_of(None, info.tags)))
    ):
        return None
    return read_card(get_catalog(), name, version, file)


# -- routes ---------------------------------------------------------------------------------------
def json_response(payload: Any, status_code: int = 200) -> Any:
    from fastapi.responses import Response

    # ASCII: a lone surrogate from a hostile tag is escaped (\\udXXX), never an encoding error
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return Response(body, status_code=status_code, media_type="application/json", headers=HEADERS)


def add_routes(api: FastAPI, authenticated_user: Any) -> None:
    """Add this module's routes to the plugin's app (``authenticated_user``: a ``Depends(get_user)``)."""
    from fastapi.responses import Response

    from mlops_provider.exceptions import MLflowConfigError, MLflowRequestError, MLflowUnavailableError

    mlflow_errors = (MLflowConfigError, MLflowRequestError, MLflowUnavailableError)

    def get_models(user: Any = authenticated_user) -> Any:
        try:
            return json_response(list_models(user))
        except mlflow_errors as err:
            log.warning("Models API: %s", err)
            return json_response(UNAVAILABLE, 503)

    def get_model(name: str, user: Any = authenticated_user) -> Any:
        try:
            detail = model_detail(name, user)
        except mlflow_errors as err:
            log.warning("Models API (%r): %s", name[:200], err)
            # only a user who may read every DAG learns that MLflow, not the name, is the problem
            return json_response(UNAVAILABLE, 503) if may_read(user, None) else json_response(NOT_FOUND, 404)
        if detail is None:
            return json_response(NOT_FOUND, 404)
        return json_response(detail)

    def get_card(name: str, version: str, file: str, user: Any = authenticated_user) -> Any:
        from mlops_provider.core.model_card import CARD_CSP
        from mlops_provider.plugins.reports import SECURITY_HEADERS

        try:
            body = model_card(name, version, file, user)
        except mlflow_errors as err:
            log.warning("Model card (%r v%r): %s", name[:200], version[:20], err)
            return json_response(UNAVAILABLE, 503) if may_read(user, None) else json_response(NOT_FOUND, 404)
        if body is None:
            return json_response(NOT_FOUND, 404)
        kind = "text/html" if file.endswith(".html") else "text/plain"  # Markdown is shown as text
        csp = f"sandbox; {CARD_CSP}; frame-ancestors 'self'"  # no script, no network, an opaque origin
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": csp}
        return Response(body, media_type=f"{kind}; charset=utf-8", headers=headers)

    for path, endpoint, route_name in (
        ("/api/models", get_models, "mlops_models"),
        ("/api/models/{name}", get_model, "mlops_model"),
        ("/cards/{name:path}/{version}/{file}", get_card, "mlops_model_card"),
    ):
        api.add_api_route(
            path, endpoint, methods=["GET"], response_class=Response, response_model=None, name=route_name
        )
