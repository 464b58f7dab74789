"""Helpers shared by tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def import_dag_file(path: Path) -> dict[str, object]:
    """Import a DAG file under a unique module name; returns its DAGs by dag_id."""
    import importlib.util

    from airflow.sdk import DAG

    spec = importlib.util.spec_from_file_location(f"dagfile_{abs(hash(str(path)))}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {v.dag_id: v for v in vars(module).values() if isinstance(v, DAG)}


@dataclass
class FakeTI:
    """Just what the operators read from ``context["ti"]``; records pushed XComs."""

    dag_id: str = "lifecycle_test"
    run_id: str = "manual__1"
    task_id: str = "task"
    try_number: int = 1
    id: Any = field(default_factory=uuid.uuid4)
    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@dataclass
class FakeDagRun:
    run_id: str = "manual__1"


def context(task_id: str = "task", run_id: str = "manual__1", try_number: int = 1) -> dict[str, Any]:
    ti = FakeTI(task_id=task_id, run_id=run_id, try_number=try_number)
    return {"ti": ti, "task_instance": ti, "dag_run": FakeDagRun(run_id)}


def train(model: str, data: Path, estimator: str, params: dict[str, Any], run_id: str) -> dict[str, Any]:
    """TrainModelOperator on ``data`` (label column ``target``) in DAG run ``run_id``; its return value."""
    from mlops_provider.operators.training import TrainModelOperator

    op = TrainModelOperator(
        task_id="train",
        model_name=model,
        data_uri=str(data),
        target="target",
        estimator=estimator,
        estimator_params=params,
    )
    result: dict[str, Any] = op.execute(context("train", run_id=run_id))
    return result


def cancer_champion(folder: Path, model: str) -> Path:
    """A decision tree on the breast-cancer data (``folder/cancer.csv``), registered as version 1 of
    ``model`` and made its ``@champion``; returns the data's path. MLflow from the environment."""
    data = cancer_csv(folder)
    run_id = train(model, data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 3}, "manual__1")[
        "run_id"
    ]
    crown(model, run_id)
    return data


def crown(model: str, run_id: str, why: str = "test") -> str:
    """Register ``run_id`` as the first version of ``model`` and make it ``@champion``; the version."""
    from mlops_provider.hooks.registry import MLflowRegistryHook

    hook = MLflowRegistryHook()
    version, _ = hook.register_run(model, run_id, {})
    hook.move_alias(
        model_name=model,
        alias="champion",
        expected_old=None,
        new_version=version,
        why=why,
        who="test",
        action="promote",
        lock_owner="test",
    )
    return version


def cancer_csv(folder: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    path = folder / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


def shifted_frame(shift: float, seed: int, rows: int = 400) -> Any:
    """Two normal columns centred on ``shift`` and a two-value category: drift fixtures."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, rows),
            "y": rng.normal(shift, 1.0, rows),
            "c": rng.choice(["a", "b"], rows),
        }
    )


def registered_versions(folder: Path, versions: int = 2, champion: str | None = None) -> str:
    """A registered model with plain versions 1..``versions`` (no model files: for alias watchers), in the
    default MLflow store; ``champion`` sets that alias. Returns the model name."""
    from mlops_provider.hooks.registry import MLflowRegistryHook

    name = f"watched-{uuid.uuid4().hex[:6]}"
    source = folder / "model"
    source.mkdir(exist_ok=True)
    with MLflowRegistryHook().session() as client:
        client.create_registered_model(name)
        for _ in range(versions):
            client.create_model_version(name, source.as_uri())
        if champion is not None:
            client.set_registered_model_alias(name, "champion", champion)
    return name


# -- DAG runs (dag.test()) -------------------------------------------------------------------------


def task_states(run: Any) -> dict[str, str]:
    """Task id -> state of a finished DagRun."""
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def return_value(run: Any, task_id: str) -> Any:
    """The ``return_value`` XCom a task of ``run`` pushed (``None`` when it pushed none)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value")
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)


def scheduler_creates_run(dag_id: str, run_type: str) -> str:
    """
    The DagRun the scheduler would create for ``dag_id``, made by the scheduler's own code and set running
    as the scheduler starts it; returns its run id. ``run_type`` ``asset_triggered``: from the queued Asset
    events (``SchedulerJobRunner._create_dag_runs_asset_triggered``: the consumed events attached, the
    queue rows deleted); ``scheduled``: the next run of its timetable (``_create_dag_runs``).
    """
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    kind = DagRunType(run_type)
    with create_session() as session:
        runner = SchedulerJobRunner(job=Job(), num_runs=1)
        models = [session.get(DagModel, dag_id)]
        if kind == DagRunType.ASSET_TRIGGERED:
            runner._create_dag_runs_asset_triggered(dag_models=models, session=session)
        else:
            assert kind == DagRunType.SCHEDULED, run_type
            runner._create_dag_runs(dag_models=models, session=session)
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_type=kind).order_by(DagRun.id.desc()).first()
        assert run is not None, f"the scheduler created no {run_type} run of {dag_id}"
        run.set_state(DagRunState.RUNNING)
        return str(run.run_id)


def dag_test_existing_run(dag: Any, run_id: str) -> Any:
    """
    ``dag.test()`` on an existing DagRun. Airflow 3.3's ``dag.test()`` always makes a manual run through
    one call, ``airflow.models.dagrun.get_or_create_dagrun``; for this call it hands over the run
    ``run_id`` instead, and ``dag.test()`` runs its tasks as usual (the logical date it is given only
    picks task instances to clear: one no run has).
    """
    from datetime import UTC, datetime

    import airflow.models.dagrun as dagrun_module

    original = dagrun_module.get_or_create_dagrun

    def existing(*, dag: Any, session: Any, **_: Any) -> Any:
        run = session.query(dagrun_module.DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).one()
        run.dag = dag  # as get_or_create_dagrun's create_dagrun sets it
        return run

    dagrun_module.get_or_create_dagrun = existing  # type: ignore[assignment]
    try:
        return dag.test(logical_date=datetime(1970, 1, 1, tzinfo=UTC))
    finally:
        dagrun_module.get_or_create_dagrun = original


def run_context(task_id: str, run_id: str, when: Any, try_number: int = 1) -> dict[str, Any]:
    """:func:`context` of a run whose logical date is ``when``, with the outlet events a task may set."""
    from collections import defaultdict
    from types import SimpleNamespace

    ctx = context(task_id, run_id=run_id, try_number=try_number)
    ctx["logical_date"] = when
    ctx["outlet_events"] = defaultdict(lambda: SimpleNamespace(extra=None))
    return ctx


def move_alias(model: str, version: str, old: str | None, alias: str = "champion") -> None:
    """Move ``model@alias`` from ``old`` to ``version`` as a test (recorded like any move)."""
    from mlops_provider.hooks.registry import MLflowRegistryHook

    MLflowRegistryHook().move_alias(
        model_name=model,
        alias=alias,
        expected_old=old,
        new_version=version,
        why="test",
        who="test",
        action="promote",
        lock_owner="test",
    )


def monitor_options(model: str, labels: Any, **overrides: Any) -> dict[str, Any]:
    """PerformanceMonitorOperator arguments for the breast-cancer fixtures (``labels``: their folder)."""
    return {
        "task_id": "check_performance",
        "model_name": model,
        "labels_uri": str(labels / "*.csv"),
        "id_column": "patient_id",
        "label_column": "target",
        "task_type": "classification",
        "primary_metric": "accuracy",
        "degrade": {"accuracy": {"max_drop": 0.05}},
        "vs_champion": {"accuracy": {"min_delta": 0.0}},
        "min_labels": 100,
        **overrides,
    }
