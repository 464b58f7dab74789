"""The Models page's reads from MLflow: registered models, and per model its versions, their training
runs' holdout metrics and its monitoring runs, with no per-version round trip.

Queries (each paginated at the server's page size, one query per page):

* the list: one ``search_registered_models`` (tags and aliases come with it);
* a model whose cache entry is current: one ``get_registered_model`` and one ``search_runs``
  (``max_results=1``) for the monitoring run that ended last;
* when a new check ended (or a retry rewrote one): the runs that ended since, merged into the series;
* when the model's ``mlops.revision`` tag or an alias changed: one ``search_model_versions``, one
  ``search_runs`` with ``attributes.run_id IN (...)`` per :data:`RUN_CHUNK` training runs not read
  before (none when only an alias moved), and the runs that ended since;
* the first read: all of that, and the monitoring runs of two years in ``<model>-monitoring`` (the
  newest :data:`~mlops_provider.core.catalog.SERIES_MAX_POINTS` per check).

The cache holds :data:`CACHE_SIZE` models (least recently read dropped first) and is thread-safe; a
:class:`ModelState` is never changed once built (a new one replaces it).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mlops_provider.core.catalog import (
    HOLDOUT_PREFIX,
    REVISION_TAG,
    SERIES_MAX_DAYS,
    SERIES_MAX_POINTS,
    RunRecord,
    VersionRecord,
    aliases_of,
    filter_literal,
    version_sort_key,
)
from mlops_provider.core.monitoring import CHECK_TAG
from mlops_provider.core.performance import SCORING_CHECK
from mlops_provider.hooks.mlflow import MLflowHook, error_code, is_mlflow_error

if TYPE_CHECKING:
    from mlflow import MlflowClient

MONITORING_EXPERIMENT = "{model}-monitoring"
CACHE_SIZE = 32
RUN_CHUNK = 100
VERSIONS_PAGE = 10_000  # MLflow's default page (its server allows up to 200 000)
MODELS_PAGE = 1000  # the server's maximum for registered models
RUNS_PAGE = 1000
CLOCK_SKEW_MS = 10 * 60 * 1000
NEWEST_START, NEWEST_END = "attributes.start_time DESC", "attributes.end_time DESC"
MAX_NAME_CHARS = 1000
MISSING_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")


@dataclass(frozen=True)
class RegisteredModelInfo:
    """A registered model as the list needs it."""

    name: str
    tags: Mapping[str, str]
    aliases: Mapping[str, str]


@dataclass(frozen=True)
class ModelState:
    """Everything MLflow says about one model, as of one (revision, aliases) and newest monitoring run."""

    model: RegisteredModelInfo
    key: tuple[Any, ...]
    versions: tuple[VersionRecord, ...]  # newest first
    runs: Mapping[str, RunRecord]  # training runs by id
    monitoring: tuple[RunRecord, ...]
    monitoring_experiment_id: str | None
    monitoring_mark: tuple[int, str] | None  # (end time, run id) of the run that ended last
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _memo_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def derived(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()`` computed once for this state (what a reader shapes from it)."""
        with self._memo_lock:
            if name not in self.memo:
                self.memo[name] = build()
            return self.memo[name]


class ModelCatalogHook(MLflowHook):
    """
    Reads registered models and their history for the Models page (see the module docstring).

    Usage::

        catalog = ModelCatalogHook()
        names = [m.name for m in catalog.registered_models()]
        state = catalog.model("weather")  # None when MLflow has no such registered model
    """

    hook_name = "MLflow model catalog"

    def __init__(self, *args: Any, cache_size: int = CACHE_SIZE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, ModelState] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- the list ------------------------------------------------------------------------------
    def registered_models(self) -> list[RegisteredModelInfo]:
        """Every registered model with its tags and aliases, one query per page."""
        found: list[RegisteredModelInfo] = []
        with self.client("listing registered models") as client:
            for page in _pages(
                lambda token: client.search_registered_models(max_results=MODELS_PAGE, page_token=token)
            ):
                found.extend(_model_info(rm) for rm in page)
        return found

    # -- one model -----------------------------------------------------------------------------
    def registered_model(self, name: str) -> RegisteredModelInfo | None:
        """The registered model's tags and aliases (one cheap request, nothing cached or loaded)."""
        if not name or len(name) > MAX_NAME_CHARS:
            return None
        with self.client(f"reading registered model {name!r}") as client:
            return self._registered(client, name)

    def model(self, name: str, info: RegisteredModelInfo | None = None) -> ModelState | None:
        """The model's state, from the cache while its revision and aliases are unchanged; None when
        MLflow has no registered model of that name. ``info``: the model as just read (no second read)."""
        if not name or len(name) > MAX_NAME_CHARS:
            return None
        with self.client(f"reading registered model {name!r}") as client:
            info = info if info is not None and info.name == name else self._registered(client, name)
            if info is None:
                self._forget(name)
                return None
            key = (info.tags.get(REVISION_TAG), tuple(sorted(info.aliases.items())))
            cached = self._cached(name)
            if cached is not None and cached.key == key:
                state = self._refresh_monitoring(client, cached)
                if state is cached:
                    return cached
            else:
                state = self._load(client, info, key, cached)
        self._remember(name, state)
        return state

    def _registered(self, client: MlflowClient, name: str) -> RegisteredModelInfo | None:
        try:
            return _model_info(client.get_registered_model(name))
        except Exception as err:
            if is_mlflow_error(err) and error_code(err) in MISSING_CODES:
                return None
            raise

    def _load(
        self,
        client: MlflowClient,
        info: RegisteredModelInfo,
        key: tuple[Any, ...],
        previous: ModelState | None,
    ) -> ModelState:
        """The versions again (their tags change with decisions); the training runs not read before (a
        run's holdout metrics are logged before it is registered); the series brought up to date."""
        versions = self._versions(client, info.name)
        known = previous.runs if previous is not None else {}
        wanted = {v.run_id for v in versions if v.run_id}
        runs = {i: known[i] for i in wanted & known.keys()}
        runs.update(self._training_runs(client, info.name, wanted - known.keys()))
        state = ModelState(info, key, versions, runs, (), None, None)
        if previous is not None:
            state = replace(
                state,
                monitoring=previous.monitoring,
                monitoring_experiment_id=previous.monitoring_experiment_id,
                monitoring_mark=previous.monitoring_mark,
            )
        return self._refresh_monitoring(client, state, changed=True)

    def _versions(self, client: MlflowClient, name: str) -> tuple[VersionRecord, ...]:
        literal = filter_literal(name)
        if literal is None:  # a name holding both quote kinds cannot be searched for
            return ()
        found = []
        for page in _pages(
            lambda token: client.search_model_versions(
                f"name = {literal}", max_results=VERSIONS_PAGE, page_token=token
            )
        ):
            for mv in page:
                found.append(
                    VersionRecord(
                        version=str(mv.version),
                        created_ms=mv.creation_timestamp,
                        run_id=mv.run_id or None,
                        tags=dict(mv.tags or {}),
                    )
                )
        return tuple(sorted(found, key=version_sort_key, reverse=True))

    def _training_runs(self, client: MlflowClient, name: str, run_ids: set[str]) -> dict[str, RunRecord]:
        """The runs in ``run_ids``: first in the model's own experiment, then (only for runs not found
        there, e.g. a custom ``experiment_name``) in every experiment."""
        if not run_ids:
            return {}
        own = client.get_experiment_by_name(name)
        found = self._runs_by_id(client, [own.experiment_id] if own is not None else [], run_ids)
        missing = run_ids - set(found)
        if missing:
            others = [e for e in self._experiment_ids(client) if own is None or e != own.experiment_id]
            found.update(self._runs_by_id(client, others, missing))
        return found

    def _runs_by_id(
        self, client: MlflowClient, experiment_ids: list[str], run_ids: Iterable[str]
    ) -> dict[str, RunRecord]:
        ids = sorted(i for i in run_ids if i.isalnum())  # MLflow run ids are hex: anything else is no run
        found: dict[str, RunRecord] = {}
        if not experiment_ids:
            return found
        for start in range(0, len(ids), RUN_CHUNK):
            chunk = ids[start : start + RUN_CHUNK]
            query = "attributes.run_id IN (" + ", ".join(f"'{i}'" for i in chunk) + ")"
            # at most len(chunk) runs match: one query, never a second (empty) page
            runs = client.search_runs(experiment_ids, query, max_results=len(chunk))
            found.update((run.info.run_id, _run_record(run, holdout_only=True)) for run in runs)
        return found

    def _experiment_ids(self, client: MlflowClient) -> list[str]:
        ids: list[str] = []
        for page in _pages(lambda token: client.search_experiments(max_results=RUNS_PAGE, page_token=token)):
            ids.extend(str(e.experiment_id) for e in page)
        return ids

    # -- monitoring ----------------------------------------------------------------------------
    def _monitoring_experiment(self, client: MlflowClient, name: str) -> str | None:
        experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT.format(model=name))
        return None if experiment is None else str(experiment.experiment_id)

    def _refresh_monitoring(
        self, client: MlflowClient, state: ModelState, changed: bool = False
    ) -> ModelState:
        """
        ``state`` with its series brought up to date. Unless ``changed`` (the model's revision moved), one
        query for the run that ended last, and nothing more when it is the one cached; else only the runs
        that ended since (less :data:`CLOCK_SKEW_MS`: writers' clocks differ) are read and merged.
        """
        experiment_id = state.monitoring_experiment_id or self._monitoring_experiment(
            client, state.model.name
        )
        if experiment_id is None:
            return state
        if state.monitoring_mark is None:  # no finished check cached: read them all
            monitoring = self._monitoring(client, experiment_id, None)
        else:
            if not changed:
                newest = client.search_runs(
                    [experiment_id], "attributes.end_time >= 0", max_results=1, order_by=[NEWEST_END]
                )
                if not newest or _mark(_run_record(newest[0])) == state.monitoring_mark:
                    return state
            fresh = self._monitoring(client, experiment_id, state.monitoring_mark[0] - CLOCK_SKEW_MS)
            merged = {r.run_id: r for r in state.monitoring} | {r.run_id: r for r in fresh}
            monitoring = _bounded(merged.values())
        mark = max((_mark(r) for r in monitoring if r.end_ms), default=None)
        if (monitoring, mark, experiment_id) == (
            state.monitoring,
            state.monitoring_mark,
            state.monitoring_experiment_id,
        ):
            return state
        return replace(
            state,
            monitoring=monitoring,
            monitoring_mark=mark,
            monitoring_experiment_id=experiment_id,
            memo={},
        )

    def _monitoring(
        self, client: MlflowClient, experiment_id: str, ended_since: int | None
    ) -> tuple[RunRecord, ...]:
        """The monitoring runs of the last two years (those that ended since ``ended_since``, if given),
        newest first, up to twice the series length (drift and performance checks share the experiment)."""
        query = f"attributes.start_time >= {int((time.time() - SERIES_MAX_DAYS * 86400) * 1000)}"
        query += f" AND tags.`{CHECK_TAG}` != '{SCORING_CHECK}'"  # scored batches are not checks
        if ended_since is not None:
            query += f" AND attributes.end_time >= {ended_since}"
        runs: list[RunRecord] = []
        for page in _pages(
            lambda token: client.search_runs(
                [experiment_id], query, max_results=RUNS_PAGE, order_by=[NEWEST_START], page_token=token
            )
        ):
            runs.extend(_run_record(r) for r in page)
            if len(runs) >= 2 * SERIES_MAX_POINTS:
                break
        return _bounded(runs)

    # -- the cache -----------------------------------------------------------------------------
    def _cached(self, name: str) -> ModelState | None:
        with self._cache_lock:
            state = self._cache.get(name)
            if state is not None:
                self._cache.move_to_end(name)
            return state

    def _remember(self, name: str, state: ModelState) -> None:
        with self._cache_lock:
            self._cache[name] = state
            self._cache.move_to_end(name)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _forget(self, name: str) -> None:
        with self._cache_lock:
            self._cache.pop(name, None)


def _pages(fetch: Callable[[str | None], Any]) -> Iterator[Any]:
    """Each page of a paginated MLflow search (``fetch(page_token)`` returns a PagedList)."""
    token: str | None = None
    while True:
        page = fetch(token)
        yield page
        token = getattr(page, "token", None)
        if not token:
            return


def _model_info(rm: Any) -> RegisteredModelInfo:
    return RegisteredModelInfo(name=str(rm.name), tags=dict(rm.tags or {}), aliases=aliases_of(rm.aliases))


def _run_record(run: Any, holdout_only: bool = False) -> RunRecord:
    """A run as the cache keeps it (a training run: its holdout metrics only, no tags)."""
    metrics = run.data.metrics
    return RunRecord(
        run_id=str(run.info.run_id),
        experiment_id=str(run.info.experiment_id),
        start_ms=run.info.start_time,
        end_ms=run.info.end_time,
        tags={} if holdout_only else dict(run.data.tags),
        metrics={k: v for k, v in metrics.items() if k.startswith(HOLDOUT_PREFIX)}
        if holdout_only
        else dict(metrics),
    )


def _mark(run: RunRecord) -> tuple[int, str]:
    """The run that ended last: a new check, or a retry rewriting one (it ends again), changes it."""
    return (run.end_ms or 0, run.run_id)


def _bounded(runs: Iterable[RunRecord]) -> tuple[RunRecord, ...]:
    """Newest first (by start), within two years, at most twice the series length."""
    cutoff = int((time.time() - SERIES_MAX_DAYS * 86400) * 1000)
    kept = sorted((r for r in runs if (r.start_ms or 0) >= cutoff), key=lambda r: (r.start_ms or 0, r.run_id))
    return tuple(reversed(kept[-2 * SERIES_MAX_POINTS :]))
