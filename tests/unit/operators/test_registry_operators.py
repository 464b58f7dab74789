"""Register, Promote and Rollback operators: argument checks in execute() (the constructor only
stores), and their registry effects on a real MLflow store (SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.exceptions import MLflowRequestError
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.registry import (
    PromoteModelOperator,
    RegisterModelOperator,
    RollbackModelOperator,
)
from mlops_provider.operators.training import TrainModelOperator

UI = "http://mlflow.example"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("registry-operators")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp, ui_url=UI))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        runs = {}
        for label, estimator, params in (
            ("dummy", "sklearn.dummy.DummyClassifier", {"strategy": "most_frequent"}),
            ("tree", "sklearn.tree.DecisionTreeClassifier", {"max_depth": 3}),
        ):
            op = TrainModelOperator(
                task_id="train",
                model_name="ops",
                data_uri=str(data),
                target="target",
                estimator=estimator,
                estimator_params=params,
            )
            runs[label] = op.execute(context("train", run_id=label))["run_id"]
        yield SimpleNamespace(runs=runs)


@pytest.fixture
def name(store) -> str:
    return f"ops-{uuid.uuid4().hex[:8]}"


def register(name: str, run_id: str) -> dict:
    return RegisterModelOperator(task_id="register", model_name=name, run_id=run_id).execute(
        context("register")
    )


def champion(name: str, alias: str = "champion") -> str | None:
    return MLflowRegistryHook().alias_version(name, alias)


# -- the constructor stores; execute() checks --
def test_constructing_with_nonsense_does_not_raise():
    RegisterModelOperator(task_id="r", model_name="", run_id="")
    PromoteModelOperator(
        task_id="p",
        model_name="a'b",
        version="abc",
        on_refuse="explode",
        skip_vs_champion="maybe",
        first_run="sometimes",
        thresholds={"bogus": {"min": "x"}},
    )
    RollbackModelOperator(task_id="b", model_name="", to_version="zz")


@pytest.mark.parametrize("run_id", ["", "   ", None])
def test_register_empty_run_id_fails_naming_it(store, run_id):
    with pytest.raises(AirflowFailException, match="run_id"):
        RegisterModelOperator(task_id="r", model_name="m", run_id=run_id).execute(context())


@pytest.mark.parametrize("bad", ["", "it's", "a`b"])
def test_register_bad_model_name_fails_naming_it(store, bad):
    with pytest.raises(AirflowFailException, match="model.name"):
        RegisterModelOperator(task_id="r", model_name=bad, run_id=store.runs["tree"]).execute(context())


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"version": "abc"}, "version"),
        ({"version": "1.5"}, "version"),
        ({"version": ""}, "version"),
        ({"on_refuse": "explode"}, "on_refuse"),
        ({"skip_vs_champion": True}, "force_reason"),
        ({"skip_vs_champion": "true", "force_reason": "  "}, "force_reason"),
        ({"skip_vs_champion": "maybe", "force_reason": "why"}, "skip_vs_champion"),
        ({"reuse_evaluation": "perhaps"}, "reuse_evaluation"),
        ({"model_name": 'a"b'}, "model name"),
    ],
)
def test_promote_argument_checks_fail_naming_the_argument(store, name, kwargs, named):
    options = {"model_name": name, "version": "1", **kwargs}
    op = PromoteModelOperator(task_id="promote", **options)
    with pytest.raises(AirflowFailException, match=named):
        op.execute(context("promote"))
    assert champion(name) is None


def test_promote_bad_gate_config_fails_naming_the_key(store, name):
    register(name, store.runs["tree"])
    op = PromoteModelOperator(
        task_id="promote", model_name=name, version="1", thresholds={"bogus": {"min": 1}}
    )
    with pytest.raises(AirflowFailException, match="bogus"):
        op.execute(context("promote"))
    assert champion(name) is None


# -- effects on the registry --
def test_register_is_idempotent_and_links_the_version(store, name):
    ctx = context("register")
    op = RegisterModelOperator(task_id="register", model_name=name, run_id=store.runs["tree"])
    first = op.execute(ctx)
    assert first == {"model_name": name, "version": "1", "run_id": store.runs["tree"], "created": True}
    assert ctx["ti"].pushed["mlflow_model_version_url"] == f"{UI}/#/models/{name}/versions/1"
    assert register(name, store.runs["tree"])["created"] is False


def test_register_unknown_run_fails_without_retry(store, name):
    missing = uuid.uuid4().hex
    with pytest.raises(MLflowRequestError, match=missing):
        register(name, missing)


def test_promote_then_refuse_with_skip(store, name):
    good = register(name, store.runs["tree"])["version"]
    summary = PromoteModelOperator(
        task_id="promote", model_name=name, version=int(good), thresholds={"f1_macro": {"min": 0.5}}
    ).execute(context("promote"))
    assert summary["decision"] == "promoted"
    assert champion(name) == good
    worse = register(name, store.runs["dummy"])["version"]
    ctx = context("promote")
    op = PromoteModelOperator(
        task_id="promote",
        model_name=name,
        version=worse,
        thresholds={"f1_macro": {"min": 0.5}},
        on_refuse="skip",
    )
    with pytest.raises(AirflowSkipException, match="refused"):
        op.execute(ctx)
    assert ctx["ti"].pushed["return_value"]["decision"] == "refused"
    assert champion(name) == good
    tags = MLflowRegistryHook().model_version(name, worse).tags
    assert tags["mlops.gate.decision"] == "refused"


def test_promote_the_champion_again_is_skipped(store, name):
    version = register(name, store.runs["tree"])["version"]
    op = PromoteModelOperator(task_id="promote", model_name=name, version=version)
    assert op.execute(context("promote"))["decision"] == "promoted"
    again = PromoteModelOperator(task_id="promote", model_name=name, version=version)
    assert again.execute(context("promote"))["decision"] == "skipped"


def pending(name: str, version: str, old: str | None) -> dict:
    return {
        "decision": "pending",
        "gates": [],
        "old_version": old,
        "new_version": version,
        "reason": "no gates configured; manual approval required",
        "metrics": {"challenger": {}, "champion": None},
        "challenger_metrics_source": "computed",
        "alias": "champion",
        "model_name": name,
        "dag_run": "airflow:lifecycle_test/manual__1/promote",
        "decided_by": None,
    }


def test_execute_complete_promotes_on_a_named_approval(store, name):
    version = register(name, store.runs["tree"])["version"]
    event = {"chosen_options": ["Approve"], "responded_by_user": {"name": "alice"}, "timedout": False}
    op = PromoteModelOperator(task_id="promote", model_name=name, version=version, approval="manual")
    result = op.execute_complete(context("promote"), event=event, summary=pending(name, version, None))
    assert result["decision"] == "promoted"
    assert result["decided_by"] == "human:alice"
    assert champion(name) == version


@pytest.mark.parametrize(
    ("event", "why"),
    [
        ({"chosen_options": ["Reject"], "responded_by_user": {"name": "bob"}}, "rejected by bob"),
        ({"chosen_options": ["Approve"], "responded_by_user": {"name": "bob"}, "timedout": True}, "in time"),
        ({"chosen_options": ["Approve"]}, "in time"),
    ],
)
def test_execute_complete_refuses_otherwise(store, name, event, why):
    version = register(name, store.runs["tree"])["version"]
    op = PromoteModelOperator(task_id="promote", model_name=name, version=version, approval="manual")
    with pytest.raises(AirflowFailException, match=why):
        op.execute_complete(context("promote"), event=event, summary=pending(name, version, None))
    assert champion(name) is None


def test_execute_complete_refuses_when_the_champion_moved_meanwhile(store, name):
    first = register(name, store.runs["tree"])["version"]
    second = register(name, store.runs["dummy"])["version"]
    PromoteModelOperator(task_id="p", model_name=name, version=first).execute(context("promote"))
    event = {"chosen_options": ["Approve"], "responded_by_user": {"name": "alice"}}
    op = PromoteModelOperator(task_id="promote", model_name=name, version=second, approval="manual")
    with pytest.raises(AirflowFailException, match="champion changed"):
        op.execute_complete(context("promote"), event=event, summary=pending(name, second, None))
    assert champion(name) == first


@pytest.mark.parametrize(("event", "summary"), [(None, {"x": 1}), ({"chosen_options": ["Approve"]}, None)])
def test_execute_complete_without_event_or_summary_fails(event, summary):
    op = PromoteModelOperator(task_id="promote", model_name="m", version="1")
    with pytest.raises(AirflowFailException, match="resumed without"):
        op.execute_complete(context("promote"), event=event, summary=summary)


# -- rollback --
def test_rollback_operator_restores_previous_champion(store, name):
    v1 = register(name, store.runs["tree"])["version"]
    v2 = register(name, store.runs["dummy"])["version"]
    PromoteModelOperator(task_id="p", model_name=name, version=v1).execute(context("promote"))
    PromoteModelOperator(task_id="p", model_name=name, version=v2).execute(context("promote"))
    assert champion(name) == v2
    ctx = context("rollback")
    summary = RollbackModelOperator(task_id="rollback", model_name=name, reason="bad").execute(ctx)
    assert (summary["decision"], summary["old_version"], summary["new_version"]) == ("rolled_back", v2, v1)
    assert champion(name) == v1
    assert ctx["ti"].pushed["mlflow_model_version_url"].endswith(f"/versions/{v1}")


def test_rollback_operator_unknown_version_and_bad_name(store, name):
    v1 = register(name, store.runs["tree"])["version"]
    PromoteModelOperator(task_id="p", model_name=name, version=v1).execute(context("promote"))
    with pytest.raises(MLflowRequestError, match="does not exist"):
        RollbackModelOperator(task_id="b", model_name=name, to_version="42").execute(context("rollback"))
    with pytest.raises(AirflowFailException, match="model_name"):
        RollbackModelOperator(task_id="b", model_name="").execute(context("rollback"))
    assert champion(name) == v1


# -- Step 8 hardening: a trigger can only make the gate stricter ------------------------------------
@pytest.mark.parametrize(
    ("approval", "floor", "effective"),
    [("auto", "auto", "auto"), ("manual", "auto", "manual"), ("manual", "manual", "manual")],
)
def test_a_trigger_may_tighten_the_approval(approval, floor, effective):
    from mlops_provider.hooks.gate_requests import trigger_requests

    assert trigger_requests(approval, floor, False, False, "") == (effective, False)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        (
            {"approval": "auto", "approval_floor": "manual"},
            r"Param 'approval'.*can only make the gate stricter",
        ),
        ({"approval_floor": "sometimes"}, "approval_floor"),
        ({"approval": "never"}, "approval must be one of"),
        (
            {"skip_vs_champion": True, "force_reason": "why", "allow_forced": False},
            r"Param 'skip_vs_champion'.*promotion\.allow_forced: false",
        ),
        (
            {
                "skip_vs_champion": "True",
                "force_reason": "why",
                "allow_forced": "False",
            },  # rendered templates
            r"Param 'skip_vs_champion'",
        ),
        ({"skip_vs_champion": True, "allow_forced": "perhaps", "force_reason": "why"}, "allow_forced"),
    ],
)
def test_a_trigger_cannot_loosen_the_gate(store, name, kwargs, named):
    first = register(name, store.runs["tree"])["version"]
    PromoteModelOperator(task_id="p", model_name=name, version=first).execute(context("promote"))
    second = register(name, store.runs["dummy"])["version"]
    op = PromoteModelOperator(
        task_id="promote",
        model_name=name,
        version=second,
        vs_champion={"f1_macro": {"min_delta": 0.0}},
        **kwargs,
    )
    with pytest.raises(AirflowFailException, match=named):
        op.execute(context("promote"))
    assert champion(name) == first
    assert "mlops.gate.decision" not in MLflowRegistryHook().model_version(name, second).tags


def test_a_forced_retrain_records_who_triggered_it_and_why(store, name):
    first = register(name, store.runs["tree"])["version"]
    summary = PromoteModelOperator(task_id="p", model_name=name, version=first).execute(context("promote"))
    assert "mlops.gate.forced_by" not in MLflowRegistryHook().model_version(name, first).tags
    assert summary["forced_by"] is None
    second = register(name, store.runs["dummy"])["version"]  # worse than the champion
    ctx = context("promote")
    ctx["dag_run"].triggering_user_name = "alice"
    op = PromoteModelOperator(
        task_id="promote",
        model_name=name,
        version=second,
        vs_champion={"f1_macro": {"min_delta": 0.0}},
        skip_vs_champion="True",
        allow_forced="true",
        force_reason="  new sensor firmware  ",
    )
    result = op.execute(ctx)
    assert result["decision"] == "promoted"
    assert (result["forced_by"], result["force_reason"]) == ("alice", "new sensor firmware")
    assert champion(name) == second
    tags = MLflowRegistryHook().model_version(name, second).tags
    assert tags["mlops.gate.forced_by"] == "alice"
    assert tags["mlops.gate.force_reason"] == "new sensor firmware"
    assert "champion comparison skipped: " in tags["mlops.gate.reason"]
