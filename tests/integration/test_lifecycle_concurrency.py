"""Two promotions of different challengers racing in two processes leave one consistent champion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from support import cancer_csv, context

from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator
from mlops_provider.operators.training import TrainModelOperator

PROMOTE = textwrap.dedent(
    """
    import json, sys, uuid
    from types import SimpleNamespace

    from mlops_provider.operators.registry import PromoteModelOperator

    pushed = {}
    ti = SimpleNamespace(dag_id="race", run_id=sys.argv[1], task_id="promote", try_number=1, id=uuid.uuid4(),
                         xcom_push=lambda key, value: pushed.__setitem__(key, value))
    op = PromoteModelOperator(task_id="promote", model_name="cancer", version=sys.argv[1],
                              vs_champion={"f1_macro": {"min_delta": -1.0}})
    try:
        result = op.execute({"ti": ti, "dag_run": SimpleNamespace(run_id=sys.argv[1])})
    except BaseException as err:
        result = dict(pushed.get("return_value") or {}, error=type(err).__name__)
    print("RESULT " + json.dumps(result))
    """
)


def _train_and_register(data: Path, depth: int) -> str:
    trained = TrainModelOperator(
        task_id=f"train{depth}",
        model_name="cancer",
        data_uri=str(data),
        target="target",
        estimator="sklearn.tree.DecisionTreeClassifier",
        estimator_params={"max_depth": depth},
    ).execute(context(f"train{depth}"))
    registered = RegisterModelOperator(task_id="register", model_name="cancer", run_id=trained["run_id"])
    return registered.execute(context("register"))["version"]


def test_concurrent_promotions_leave_a_consistent_champion_and_history(tmp_path: Path, mlflow_store: Path):
    data = cancer_csv(tmp_path)
    v1, v2, v3 = (_train_and_register(data, depth) for depth in (1, 2, 3))
    PromoteModelOperator(task_id="promote", model_name="cancer", version=v1).execute(context("promote"))

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROMOTE, v],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for v in (v2, v3)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        line = [row for row in out.splitlines() if row.startswith("RESULT ")][-1]
        results.append(json.loads(line.removeprefix("RESULT ")))

    champion = MLflowRegistryHook().alias_version("cancer", "champion")
    previous = MLflowRegistryHook().alias_version("cancer", "previous_champion")
    with MLflowHook().session() as client:
        history = json.loads(client.get_registered_model("cancer").tags["mlops.alias_history.champion"])
        assert not client.search_registered_models("name = 'cancer.mlops-lock'")  # lock released
    promoted = [r["new_version"] for r in results if r.get("decision") == "promoted"]
    assert promoted, results
    assert champion == promoted[-1] if len(promoted) == 1 else champion in promoted
    # the history is one unbroken chain ending at the champion, and previous_champion is the one before
    assert history[0]["from"] is None
    assert history[0]["to"] == v1
    for before, after in zip(history, history[1:], strict=False):
        assert after["from"] == before["to"]
    assert history[-1]["to"] == champion
    assert previous == history[-1]["from"]
    assert len(history) == 1 + len(promoted)
    # a loser was refused because the champion moved under it, never silently overwritten
    for result in results:
        if result.get("decision") == "refused":
            assert "champion changed meanwhile" in result["reason"]


ROLLBACK = textwrap.dedent(
    """
    import json, sys
    from mlops_provider.hooks.registry import MLflowRegistryHook

    hook = MLflowRegistryHook()
    summary = hook.rollback(sys.argv[1], "champion", None, "v2 misbehaves", who="oncall", request_key=sys.argv[2])
    print("RESULT " + json.dumps(summary))
    """
)


def _light_versions(hook: MLflowRegistryHook, name: str, count: int) -> list[str]:
    """Versions of FINISHED runs holding a model file as TrainModelOperator leaves it (no training)."""
    from mlops_provider.hooks.models import COMPLETE_TAG

    experiment = hook.ensure_experiment("rollback-race")
    with hook.session() as client:
        runs = [client.create_run(experiment, tags={COMPLETE_TAG: "true"}).info.run_id for _ in range(count)]
        for run_id in runs:
            client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
            client.set_terminated(run_id, "FINISHED")
    return [hook.register_run(name, run_id, {})[0] for run_id in runs]


def test_concurrent_tries_of_one_rollback_move_the_champion_once(mlflow_store: Path):
    hook = MLflowRegistryHook()
    v1, v2 = _light_versions(hook, "churn", 2)
    for old, new in ((None, v1), (v1, v2)):
        hook.move_alias(
            model_name="churn",
            alias="champion",
            expected_old=old,
            new_version=new,
            why="better",
            who="test",
            action="promote",
            lock_owner="test",
        )
    key = "airflow:rollback/manual__1/rollback"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ROLLBACK, "churn", key], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0
        results.append(json.loads([r for r in out.splitlines() if r.startswith("RESULT ")][-1][7:]))
    assert sorted(r["decision"] for r in results) == ["rolled_back", "skipped", "skipped", "skipped"]
    assert {(r["old_version"], r["new_version"]) for r in results} == {(v2, v1)}
    assert hook.alias_version("churn", "champion") == v1
    with hook.session() as client:
        history = json.loads(client.get_registered_model("churn").tags["mlops.alias_history.champion"])
        assert not client.search_registered_models("name LIKE 'churn.mlops-lock%'")  # released, none broken
    assert [(e["from"], e["to"]) for e in history if e["action"] == "rollback"] == [(v2, v1)]
