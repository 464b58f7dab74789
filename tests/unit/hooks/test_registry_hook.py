"""MLflowRegistryHook on a real MLflow store (SQLite): the one "no champion" rule, registration,
alias moves with their history, and error translation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.core import lineage
from mlops_provider.exceptions import InvalidInputError, MLflowRequestError, MLflowUnavailableError
from mlops_provider.hooks.monitoring import set_model_tags
from mlops_provider.hooks.registry import (
    ChampionChangedError,
    MLflowRegistryHook,
    check_model_name,
    is_missing_alias,
)
from mlops_provider.operators.training import TrainModelOperator

HISTORY_KEYS = {"alias", "action", "from", "to", "why", "who", "when"}


def test_missing_alias_detection_is_narrow():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

    assert is_missing_alias(
        MlflowException("Registered model alias champion not found.", error_code=INVALID_PARAMETER_VALUE)
    )
    assert is_missing_alias(
        MlflowException("Registered Model with name=x not found", error_code=RESOURCE_DOES_NOT_EXIST)
    )
    assert not is_missing_alias(MlflowException("database is locked", error_code=INTERNAL_ERROR))
    assert not is_missing_alias(MlflowException("bad alias name", error_code=INVALID_PARAMETER_VALUE))
    assert not is_missing_alias(ConnectionError("alias not found"))


# -- a real store with two training runs, shared by the module (each test uses its own model name) --
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("registry-hook")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        runs = []
        for depth in (1, 2):
            op = TrainModelOperator(
                task_id="train",
                model_name="trained",
                data_uri=str(data),
                target="target",
                estimator="sklearn.tree.DecisionTreeClassifier",
                estimator_params={"max_depth": depth},
            )
            runs.append(op.execute(context("train", run_id=f"depth-{depth}"))["run_id"])
        yield SimpleNamespace(data=data, runs=runs, tmp=tmp)


@pytest.fixture
def hook(store: SimpleNamespace) -> MLflowRegistryHook:
    return MLflowRegistryHook()


@pytest.fixture
def name() -> str:
    return f"model-{uuid.uuid4().hex[:8]}"


def registered(hook: MLflowRegistryHook, name: str, runs: list[str]) -> list[str]:
    return [hook.register_run(name, run_id, {})[0] for run_id in runs]


def history(hook: MLflowRegistryHook, name: str, alias: str = "champion") -> list[dict]:
    with hook.session() as client:
        return json.loads(client.get_registered_model(name).tags.get(f"mlops.alias_history.{alias}", "[]"))


def registered_model_exists(hook: MLflowRegistryHook, name: str) -> bool:
    with hook.session() as client:
        return any(m.name == name for m in client.search_registered_models(f"name = '{name}'"))


def move(hook: MLflowRegistryHook, name: str, old: str | None, new: str, why: str = "better") -> None:
    hook.move_alias(
        model_name=name,
        alias="champion",
        expected_old=old,
        new_version=new,
        why=why,
        who="tester",
        action="promote",
        lock_owner="test",
    )


# -- alias_version: None only when the alias or the model does not exist --
def test_alias_version_none_for_missing_model_and_missing_alias(hook, name, store):
    assert hook.alias_version(name, "champion") is None
    registered(hook, name, store.runs[:1])
    assert hook.alias_version(name, "champion") is None
    move(hook, name, None, "1")
    assert hook.alias_version(name, "champion") == "1"


def _internal_error() -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

    return MlflowException("(sqlite3.OperationalError) database is locked", error_code=INTERNAL_ERROR)


@pytest.mark.parametrize(
    "fault", [_internal_error, lambda: ConnectionResetError(104, "Connection reset by peer")]
)
def test_alias_version_transient_fault_is_unavailable_not_none(hook, name, store, fault):
    from mlflow import MlflowClient

    registered(hook, name, store.runs[:1])
    move(hook, name, None, "1")
    with (
        mock.patch.object(MlflowClient, "get_model_version_by_alias", side_effect=fault()),
        pytest.raises(MLflowUnavailableError, match=name),
    ):
        hook.alias_version(name, "champion")
    assert hook.alias_version(name, "champion") == "1"


# -- registration --
def test_register_run_is_idempotent_and_copies_lineage(hook, name, store):
    run_id = store.runs[0]
    first = hook.register_run(name, run_id, {"team": "risk"})
    second = hook.register_run(name, run_id, {"team": "risk"})
    assert first == ("1", True)
    assert second == ("1", False)
    with hook.session() as client:
        versions = client.search_model_versions(f"name = '{name}'")
        assert [str(v.version) for v in versions] == ["1"]
        tags = client.get_model_version(name, "1").tags
    assert tags[lineage.TRAINING_RUN_ID] == run_id
    assert tags[lineage.TARGET] == "target"
    assert len(json.loads(tags[lineage.FEATURES])) == 30
    assert tags["team"] == "risk"
    assert hook.register_run(name, store.runs[1], {}) == ("2", True)


def test_a_retried_registration_restores_the_tags_a_crashed_try_left_unset(hook, name, store):
    run_id = store.runs[0]
    assert hook.register_run(name, run_id, {"team": "risk"}) == ("1", True)
    with hook.session() as client:
        for key in ("team", lineage.TARGET):
            client.delete_model_version_tag(name, "1", key)
        revision = client.get_registered_model(name).tags["mlops.revision"]
    assert hook.register_run(name, run_id, {"team": "risk"}) == ("1", False)
    with hook.session() as client:
        tags = client.get_model_version(name, "1").tags
        assert client.get_registered_model(name).tags["mlops.revision"] != revision
    assert tags["team"] == "risk"
    assert tags[lineage.TARGET] == "target"
    assert tags[lineage.TRAINING_RUN_ID] == run_id


def test_register_run_refuses_a_run_without_training_tags(hook, name, store):
    with hook.session() as client:
        experiment = client.get_experiment_by_name("trained").experiment_id
        run_id = client.create_run(experiment, tags={"other": "x"}).info.run_id
        client.set_terminated(run_id)
    with pytest.raises(MLflowRequestError, match=run_id):
        hook.register_run(name, run_id, {})
    assert not registered_model_exists(hook, name)


def test_register_run_refuses_a_run_without_a_model(hook, name, store):
    with hook.session() as client:
        experiment = client.get_experiment_by_name("trained").experiment_id
        tags = {lineage.FEATURES: json.dumps(["mean radius"]), lineage.TARGET: "target"}
        run_id = client.create_run(experiment, tags=tags).info.run_id
        client.set_terminated(run_id, "KILLED")
    with pytest.raises(MLflowRequestError, match=run_id):
        hook.register_run(name, run_id, {})


def test_register_run_unknown_run_is_request_error(hook, name, store):
    missing = uuid.uuid4().hex
    with pytest.raises(MLflowRequestError, match=f"{missing}.*does not exist"):
        hook.register_run(name, missing, {})


@pytest.mark.parametrize("bad", ["a/b", "a:b"])
def test_register_run_bad_model_name_is_request_error(hook, store, bad):
    with pytest.raises(MLflowRequestError, match="model name"):
        hook.register_run(bad, store.runs[0], {})


@pytest.mark.parametrize("bad", ["", "   ", None, 3, "it's", 'say "x"', "back`tick"])
def test_check_model_name_refuses_quotes_backticks_and_empty(bad):
    with pytest.raises(InvalidInputError) as raised:
        check_model_name(bad)
    assert isinstance(raised.value, AirflowFailException)  # never retried


def test_check_model_name_accepts_plain_names():
    assert check_model_name("cancer-classifier_v2.prod") == "cancer-classifier_v2.prod"


# -- alias moves --
def test_move_alias_moves_keeps_previous_and_appends_history(hook, name, store):
    v1, v2 = registered(hook, name, store.runs)
    move(hook, name, None, v1, why="first")
    move(hook, name, v1, v2, why="beats v1")
    assert hook.alias_version(name, "champion") == v2
    assert hook.alias_version(name, "previous_champion") == v1
    entries = history(hook, name)
    assert [set(e) for e in entries] == [HISTORY_KEYS, HISTORY_KEYS]
    assert [(e["from"], e["to"], e["why"]) for e in entries] == [(None, v1, "first"), (v1, v2, "beats v1")]
    assert {(e["alias"], e["action"], e["who"]) for e in entries} == {("champion", "promote", "tester")}
    assert all(e["when"].endswith("Z") for e in entries)
    assert not registered_model_exists(hook, f"{name}.mlops-lock")


def test_move_alias_refuses_a_stale_expectation_and_changes_nothing(hook, name, store):
    v1, v2 = registered(hook, name, store.runs)
    move(hook, name, None, v2)
    with pytest.raises(ChampionChangedError) as raised:
        move(hook, name, v1, v1, why="stale")
    assert (raised.value.expected, raised.value.current) == (v1, v2)
    assert hook.alias_version(name, "champion") == v2
    assert hook.alias_version(name, "previous_champion") is None
    assert [e["why"] for e in history(hook, name)] == ["better"]
    assert not registered_model_exists(hook, f"{name}.mlops-lock")


def test_move_alias_expecting_a_champion_when_there_is_none(hook, name, store):
    (v1,) = registered(hook, name, store.runs[:1])
    with pytest.raises(ChampionChangedError):
        move(hook, name, "7", v1)
    assert hook.alias_version(name, "champion") is None


# -- rollback --
def test_rollback_to_previous_champion(hook, name, store):
    v1, v2 = registered(hook, name, store.runs)
    move(hook, name, None, v1)
    move(hook, name, v1, v2)
    summary = hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall")
    assert summary["decision"] == "rolled_back"
    assert (summary["old_version"], summary["new_version"]) == (v2, v1)
    assert hook.alias_version(name, "champion") == v1
    last = history(hook, name)[-1]
    assert (last["action"], last["from"], last["to"], last["why"], last["who"]) == (
        "rollback",
        v2,
        v1,
        "v2 misbehaves",
        "oncall",
    )
    tags = hook.model_version(name, v1).tags
    assert tags["mlops.rollback.from_version"] == v2
    assert tags["mlops.rollback.by"] == "oncall"


def test_rollback_to_an_explicit_version_and_again_is_skipped(hook, name, store):
    v1, v2 = registered(hook, name, store.runs)
    move(hook, name, None, v2)
    assert hook.rollback(name, "champion", int(v1), "pin v1", who="oncall")["decision"] == "rolled_back"
    assert hook.alias_version(name, "champion") == v1
    again = hook.rollback(name, "champion", v1, "pin v1", who="oncall")
    assert again["decision"] == "skipped"
    assert len(history(hook, name)) == 2


def test_rollback_to_unknown_version_fails_and_leaves_the_alias(hook, name, store):
    (v1,) = registered(hook, name, store.runs[:1])
    move(hook, name, None, v1)
    with pytest.raises(MLflowRequestError, match="does not exist"):
        hook.rollback(name, "champion", "99", "typo", who="oncall")
    assert hook.alias_version(name, "champion") == v1


def test_rollback_without_previous_champion_asks_for_a_version(hook, name, store):
    (v1,) = registered(hook, name, store.runs[:1])
    move(hook, name, None, v1)
    with pytest.raises(InvalidInputError, match="previous_champion"):
        hook.rollback(name, "champion", None, "oops", who="oncall")


# -- champion --
def test_champion_returns_lineage_and_none_without_alias(hook, name, store):
    (v1,) = registered(hook, name, store.runs[:1])
    assert hook.champion(name) is None
    assert hook.champion(f"{name}-never-registered") is None
    move(hook, name, None, v1)
    champion = hook.champion(name)
    assert champion is not None
    assert champion.version == v1
    assert champion.run_id == store.runs[0]
    assert champion.target == "target"
    assert champion.training_data_uri == str(store.data)
    assert isinstance(champion.features, list)
    assert len(champion.features) == 30
    assert "mean radius" in champion.features
    assert champion.training_data_fingerprint.startswith("sha256:")


def test_model_version_unknown_is_request_error(hook, name, store):
    registered(hook, name, store.runs[:1])
    with pytest.raises(MLflowRequestError, match="'42' does not exist"):
        hook.model_version(name, "42")


# -- rollback happens once per request (retries and clear-and-rerun never flip it back) --
KEY = "airflow:rollback_dag/manual__1/rollback"


def champion_after_v1_then_v2(hook: MLflowRegistryHook, name: str, store: SimpleNamespace) -> tuple[str, str]:
    v1, v2 = registered(hook, name, store.runs)
    move(hook, name, None, v1)
    move(hook, name, v1, v2)
    return v1, v2


def rollbacks(hook: MLflowRegistryHook, name: str) -> list[tuple[str, str]]:
    return [(e["from"], e["to"]) for e in history(hook, name) if e["action"] == "rollback"]


def test_a_retried_rollback_is_a_no_op_once_done(hook, name, store):
    v1, v2 = champion_after_v1_then_v2(hook, name, store)
    first = hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    assert (first["decision"], first["old_version"], first["new_version"]) == ("rolled_back", v2, v1)
    again = hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    assert again["decision"] == "skipped"
    assert "already done" in again["reason"]
    assert (again["old_version"], again["new_version"]) == (v2, v1)
    assert hook.alias_version(name, "champion") == v1  # not flipped back to v2
    assert hook.alias_version(name, "previous_champion") == v2
    assert rollbacks(hook, name) == [(v2, v1)]


def test_a_clear_and_rerun_after_a_later_promotion_changes_nothing(hook, name, store):
    v1, v2 = champion_after_v1_then_v2(hook, name, store)
    hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    move(hook, name, v1, v2, why="v2 fixed")
    rerun = hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    assert rerun["decision"] == "skipped"
    assert hook.alias_version(name, "champion") == v2
    assert rollbacks(hook, name) == [(v2, v1)]


def fail_once(method: str, when: Callable[..., bool]) -> Any:
    """Fault: the first matching call of MlflowClient.<method> resets the connection (after nothing)."""
    from mlflow import MlflowClient

    real, fired = getattr(MlflowClient, method), []

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not fired and when(*args):
            fired.append(args)
            raise ConnectionResetError(104, "Connection reset by peer")
        return real(self, *args, **kwargs)

    return mock.patch.object(MlflowClient, method, call), fired


def test_a_rollback_that_died_after_moving_completes_on_retry_without_flipping(hook, name, store):
    v1, v2 = champion_after_v1_then_v2(hook, name, store)
    patch, fired = fail_once(
        "set_registered_model_tag", lambda _n, key, _v: key.startswith("mlops.alias_history")
    )
    with patch, pytest.raises(MLflowUnavailableError):
        hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    assert fired  # the alias moved, the history was not written
    assert hook.alias_version(name, "champion") == v1
    retry = hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    assert (retry["decision"], retry["old_version"], retry["new_version"]) == ("rolled_back", v2, v1)
    assert hook.alias_version(name, "champion") == v1
    assert hook.alias_version(name, "previous_champion") == v2
    assert rollbacks(hook, name) == [(v2, v1)]
    assert hook.model_version(name, v1).tags["mlops.rollback.from_version"] == v2
    assert (
        hook.rollback(name, "champion", None, "again", who="oncall", request_key=KEY)["decision"] == "skipped"
    )


def test_a_rollback_that_died_before_moving_moves_to_the_recorded_target_on_retry(hook, name, store):
    v1, v2 = champion_after_v1_then_v2(hook, name, store)
    # previous_champion was set to the current champion just before the try died: recomputing the
    # target from previous_champion would now say "already there"; the recorded target does not
    patch, fired = fail_once("set_registered_model_alias", lambda _n, alias, _v: alias == "champion")
    with patch, pytest.raises(MLflowUnavailableError):
        hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    assert fired
    assert hook.alias_version(name, "champion") == v2
    assert hook.alias_version(name, "previous_champion") == v2
    retry = hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    assert retry["decision"] == "rolled_back"
    assert hook.alias_version(name, "champion") == v1
    assert rollbacks(hook, name) == [(v2, v1)]


def test_a_rollback_with_a_new_key_is_a_new_rollback(hook, name, store):
    v1, v2 = champion_after_v1_then_v2(hook, name, store)
    hook.rollback(name, "champion", None, "v2 misbehaves", who="oncall", request_key=KEY)
    back = hook.rollback(name, "champion", v2, "v2 was fine", who="oncall", request_key=KEY + "-2")
    assert back["decision"] == "rolled_back"
    assert hook.alias_version(name, "champion") == v2
    assert rollbacks(hook, name) == [(v2, v1), (v1, v2)]


def test_a_real_model_named_like_the_lock_fails_the_move_and_is_kept(hook, name, store):
    from mlops_provider.hooks.registry_lock import LockConflict

    (v1,) = registered(hook, name, store.runs[:1])
    with hook.session() as client:
        client.create_registered_model(f"{name}.mlops-lock", tags={"team": "risk"})
    with pytest.raises(LockConflict, match=f"{name}.mlops-lock") as raised:
        move(hook, name, None, v1)
    assert isinstance(raised.value, AirflowFailException)  # a retry cannot help
    assert hook.alias_version(name, "champion") is None
    assert registered_model_exists(hook, f"{name}.mlops-lock")


@pytest.mark.parametrize(
    ("failures", "text", "succeeds"),
    [
        (
            1,
            "(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_tags.key, registered_model_tags.name",
            True,
        ),
        (2, 'duplicate key value violates unique constraint "registered_model_tag_pk"', True),
        (3, "UNIQUE constraint failed: registered_model_tags.key", False),
        (1, "database is locked", False),
    ],
    ids=["sqlite-race", "postgres-race-twice", "race-every-time", "other-internal-error"],
)
def test_a_registered_model_tag_that_loses_the_insert_race_is_set_again(store, failures, text, succeeds):
    """MLflow's SQL store sets a tag by select-then-insert: concurrent writers of a new key race and the
    loser gets a unique-key error (the 8-registrations race). Only that error is retried, a few times."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

    hook, name = MLflowRegistryHook(), f"tag-race-{uuid.uuid4().hex[:6]}"
    with hook.session() as client:
        client.create_registered_model(name)
        real, calls = client.set_registered_model_tag, []

        def racing(model: str, key: str, value: str) -> None:
            calls.append(key)
            if len(calls) <= failures:
                raise MlflowException(text, error_code=INTERNAL_ERROR)
            real(model, key, value)

        with mock.patch.object(client, "set_registered_model_tag", side_effect=racing):
            if succeeds:
                assert set_model_tags(client, name, {"mlops.retrain_dag": "dag_a"})
            else:
                with pytest.raises(MlflowException, match=text.split("(")[-1][:20]):
                    set_model_tags(client, name, {"mlops.retrain_dag": "dag_a"})
        tags = client.get_registered_model(name).tags
    assert (tags.get("mlops.retrain_dag") == "dag_a") is succeeds
    assert len(calls) == (failures + 2 if succeeds else min(failures, 3))
