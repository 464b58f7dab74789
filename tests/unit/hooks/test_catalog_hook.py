"""ModelCatalogHook on a real MLflow store (SQLite): queries per page or chunk (no per-version round
trip), the cache and what invalidates it, odd names, and its bound."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from mlops_provider.hooks import catalog as catalog_module
from mlops_provider.hooks.catalog import ModelCatalogHook

CALLS = (
    "get_registered_model",
    "search_registered_models",
    "search_model_versions",
    "search_runs",
    "search_experiments",
    "get_experiment_by_name",
)


@pytest.fixture
def client(mlflow_store: Path) -> Any:
    from mlflow import MlflowClient

    from mlops_provider.hooks.mlflow import MLflowHook

    settings = MLflowHook().settings
    return MlflowClient(settings.tracking_uri, settings.registry_uri)


@pytest.fixture
def calls() -> Iterator[Counter[str]]:
    """How often each MlflowClient method the catalog uses was called."""
    from mlflow import MlflowClient

    counted: Counter[str] = Counter()
    patches = []
    for name in CALLS:
        real = getattr(MlflowClient, name)

        def spy(self: Any, *args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            counted[_name] += 1
            return _real(self, *args, **kwargs)

        patches.append(mock.patch.object(MlflowClient, name, spy))
    for p in patches:
        p.start()
    yield counted
    for p in patches:
        p.stop()


def make_model(client: Any, name: str, versions: int, experiment: str | None = None) -> list[str]:
    from mlflow.entities import Metric

    experiment_id = client.create_experiment(experiment or name)
    client.create_registered_model(name, tags={"mlops.managed": "true", "mlops.revision": "1"})
    run_ids = []
    for i in range(versions):
        run = client.create_run(experiment_id)
        client.log_batch(run.info.run_id, metrics=[Metric("holdout_f1_macro", 0.5 + i / 100, 0, 0)])
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        run_ids.append(run.info.run_id)
    return run_ids


def add_check(client: Any, name: str, start_ms: int) -> str:
    experiment = client.get_experiment_by_name(f"{name}-monitoring")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(f"{name}-monitoring")
    run = client.create_run(
        experiment_id, start_time=start_ms, tags={"mlops.check": "drift", "mlops.status": "drift"}
    )
    client.log_metric(run.info.run_id, "drift_share", 0.5)
    client.set_terminated(run.info.run_id, end_time=start_ms + 1)
    return str(run.info.run_id)


def test_one_query_per_chunk_of_runs_and_none_per_version(
    client: Any, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "RUN_CHUNK", 2)
    run_ids = make_model(client, "m", 5)
    now = int(time.time() * 1000)
    add_check(client, "m", now - 1000)
    calls.clear()
    state = ModelCatalogHook().model("m")
    assert state is not None
    assert [v.version for v in state.versions] == ["5", "4", "3", "2", "1"]
    assert set(state.runs) == set(run_ids)
    assert state.runs[run_ids[0]].metrics == {"holdout_f1_macro": 0.5}
    assert len(state.monitoring) == 1
    # 1 model read, 1 versions search, 3 chunks of runs + 1 monitoring search, 2 experiment lookups
    assert calls == Counter(
        get_registered_model=1, search_model_versions=1, search_runs=4, get_experiment_by_name=2
    )


def test_cache_holds_until_an_alias_moves_the_revision_changes_or_a_check_arrives(
    client: Any, calls: Counter[str]
) -> None:
    make_model(client, "m", 2)
    hook = ModelCatalogHook()
    first = hook.model("m")
    calls.clear()
    assert hook.model("m") is first
    assert calls == Counter(get_registered_model=1, get_experiment_by_name=1)  # no monitoring yet

    add_check(client, "m", int(time.time() * 1000))
    with_check = hook.model("m")
    assert with_check is not first
    assert len(with_check.monitoring) == 1
    assert with_check.versions == first.versions  # only the series was reloaded
    calls.clear()
    assert hook.model("m") is with_check
    assert calls == Counter(get_registered_model=1, search_runs=1)  # the newest-run check

    client.set_registered_model_alias("m", "champion", "2")
    moved = hook.model("m")
    assert moved is not with_check
    assert moved.model.aliases == {"champion": "2"}
    client.set_registered_model_tag("m", "mlops.revision", "2")
    assert hook.model("m") is not moved


def test_runs_outside_the_models_experiment_are_found(client: Any, calls: Counter[str]) -> None:
    run_ids = make_model(client, "m", 2, experiment="custom-experiment")
    calls.clear()
    state = ModelCatalogHook().model("m")
    assert state is not None
    assert set(state.runs) == set(run_ids)
    assert calls["search_experiments"] == 1


@pytest.mark.parametrize("name", ["it's", 'say "hi"', "back\\slash", "per%cent_x", "uni-é-名", "a b\nc"])
def test_odd_names_read_their_own_versions(client: Any, name: str) -> None:
    make_model(client, name, 1)
    make_model(client, f"{name}2", 2)  # a name the first one is a prefix of
    state = ModelCatalogHook().model(name)
    assert state is not None
    assert [v.version for v in state.versions] == ["1"]


def test_unknown_names_and_both_quotes(client: Any) -> None:
    hook = ModelCatalogHook()
    assert hook.model("nope") is None
    assert hook.model("") is None
    assert hook.model("x" * 5000) is None
    make_model(client, "\"both\" 'quotes'", 1)
    state = hook.model("\"both\" 'quotes'")
    assert state is not None
    assert state.versions == ()  # no filter literal can hold it: no versions rather than a wrong query


def test_list_is_one_query_and_the_cache_is_bounded(client: Any, calls: Counter[str]) -> None:
    for name in ("a", "b", "c"):
        client.create_registered_model(name, tags={"mlops.managed": "true"})
    hook = ModelCatalogHook(cache_size=2)
    assert sorted(m.name for m in hook.registered_models()) == ["a", "b", "c"]
    assert calls["search_registered_models"] == 1
    for name in ("a", "b", "c"):
        hook.model(name)
    assert list(hook._cache) == ["b", "c"]


def test_a_rewritten_check_is_read_again_and_only_it(client: Any, calls: Counter[str]) -> None:
    make_model(client, "m", 1)
    now = int(time.time() * 1000)
    old = add_check(client, "m", now - 86_400_000)
    add_check(client, "m", now)
    hook = ModelCatalogHook()
    assert len(hook.model("m").monitoring) == 2
    client.log_metric(old, "drift_share", 0.9)
    client.set_terminated(old, end_time=now + 5000)  # a retry rewrites the run and ends it again
    calls.clear()
    again = hook.model("m")
    assert calls == Counter(get_registered_model=1, search_runs=2)  # the newest end, then what ended since
    assert {r.run_id: r.metrics["drift_share"] for r in again.monitoring}[old] == 0.9
    assert len(again.monitoring) == 2
