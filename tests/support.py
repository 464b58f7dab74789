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
