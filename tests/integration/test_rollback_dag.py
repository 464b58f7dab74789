"""``<name>_rollback``, the generated DAG a person triggers to move the champion back: real dag.test()
runs, real MLflow on SQLite. A trigger conf goes around the form, so hostile values must fail the run
with the champion unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import import_dag_file
from vega_datasets import data as vega

from mlops_provider.hooks.mlflow import MLflowHook

ROOT = Path(__file__).resolve().parents[2]
MODEL = "weather_rb"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def model_dags(dags_folder: Path, mlflow_store: Path) -> dict:
    """A config that allows forced retrains (so a second version can be promoted) and its DAGs."""
    configs = dags_folder / "configs"
    (configs / "data").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_dags.py", dags_folder / "mlops_dags.py")
    shutil.copy(ROOT / "dags" / "weather_kpis.py", dags_folder / "weather_kpis.py")  # its custom metric
    frame = vega.seattle_weather()
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
    frame.iloc[:500].to_csv(configs / "data" / "train.csv", index=False)
    cfg = yaml.safe_load((ROOT / "dags" / "configs" / "seattle_weather.yaml").read_text())
    cfg["model"]["name"] = MODEL
    cfg["data"].update(train="data/train.csv", current=None)
    cfg.pop("validation")
    cfg["training"]["params"] = {"max_iter": 30}
    cfg["promotion"]["allow_forced"] = True
    cfg["retries"] = 0
    (configs / f"{MODEL}.yaml").write_text(yaml.safe_dump(cfg))
    return import_dag_file(dags_folder / "mlops_dags.py")


def fresh_rollback_dag(dags_folder: Path):
    """The rollback DAG imported anew: tasks run in-process under dag.test() merge a run's conf into the
    DAG object's Params; in Airflow each task process builds its own DAG."""
    return import_dag_file(dags_folder / "mlops_dags.py")[f"{MODEL}_rollback"]


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def aliases() -> dict[str, str]:
    with MLflowHook().session() as client:
        return {a: str(v) for a, v in client.get_registered_model(MODEL).aliases.items()}


def history() -> list[dict]:
    with MLflowHook().session() as client:
        return json.loads(client.get_registered_model(MODEL).tags["mlops.alias_history.champion"])


def test_the_rollback_dag_is_generated_with_its_trigger_form(model_dags) -> None:
    dag = model_dags[f"{MODEL}_rollback"]
    assert dag.schedule is None  # only a person starts it
    assert dag.max_active_runs == 1
    assert {"mlops", f"model:{MODEL}", "rollback"} <= set(dag.tags)
    assert set(dag.params) == {"to_version", "reason"}
    assert [t.task_id for t in dag.tasks] == ["rollback"]


def test_a_person_rolls_the_champion_back_and_hostile_forms_change_nothing(
    model_dags, dags_folder: Path
) -> None:
    retrain = model_dags[f"{MODEL}_retrain"]
    assert states(retrain.test()).get("promote_model") == "success"
    forced = {"skip_vs_champion": True, "force_reason": "new sensor"}
    assert states(retrain.test(run_conf=forced)).get("promote_model") == "success"
    assert aliases() == {"champion": "2", "previous_champion": "1"}

    hostile = [
        {"to_version": "1", "reason": ""},  # no reason
        {"to_version": "1"},  # reason missing altogether
        {"to_version": "1 OR 1=1", "reason": "bad"},
        {"to_version": "../1", "reason": "bad version"},
        {"to_version": "0", "reason": "no version zero"},
        {"to_version": "999", "reason": "no such version"},
        {"to_version": 1.5, "reason": "not a string"},
        {"to_version": "1", "reason": "x" * 501},
    ]
    for conf in hostile:
        try:
            run = fresh_rollback_dag(dags_folder).test(run_conf=conf)
        except Exception:  # refused before the run starts: the Params check the conf
            continue
        assert states(run) == {"rollback": "failed"}, (conf, states(run))
    assert aliases() == {"champion": "2", "previous_champion": "1"}, "a refused form moved an alias"

    run = fresh_rollback_dag(dags_folder).test(run_conf={"reason": "live accuracy fell <script>x</script>"})
    assert states(run) == {"rollback": "success"}
    assert aliases()["champion"] == "1"
    last = history()[-1]
    assert (last["action"], last["from"], last["to"]) == ("rollback", "2", "1")
    assert last["who"] == "human:dag_test"  # the person who triggered the run (dag.test's user)
    with MLflowHook().session() as client:
        decision = json.loads(client.get_registered_model(MODEL).tags["mlops.last_decision"])
    assert (decision["decision"], decision["version"]) == ("rolled_back", "1")
    assert decision["decided_by"] == "human:dag_test"
    assert (decision["dag_id"], decision["dag_run"]) == (f"{MODEL}_rollback", run.run_id)
    assert last["why"] == "live accuracy fell <script>x</script>"  # recorded as given, as text
