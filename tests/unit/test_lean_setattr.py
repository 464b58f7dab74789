"""The lean ``__setattr__`` builds operators exactly as Airflow's own does, only cheaper."""

from __future__ import annotations

import inspect
import pkgutil
import re
from datetime import datetime
from importlib import import_module
from pathlib import Path

import pytest
from airflow.sdk import DAG, BaseOperator

from mlops_provider.lean_setattr import CONVERTED_KEYS, LeanSetattrMixin
from mlops_provider.templates.builder import build_dags

ROOT = Path(__file__).resolve().parents[2]


def provider_operator_classes() -> list[type]:
    found = []
    for package in ("operators", "sensors"):
        pkg = import_module(f"mlops_provider.{package}")
        for info in pkgutil.iter_modules(pkg.__path__):
            module = import_module(f"{pkg.__name__}.{info.name}")
            found += [
                c
                for _, c in inspect.getmembers(module, inspect.isclass)
                if issubclass(c, BaseOperator) and c.__module__ == module.__name__
            ]
    return found


def stable(value: object) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


def snapshot(dags: list[DAG]) -> dict:
    from airflow.serialization.serialized_objects import DagSerialization

    out = {}
    for dag in dags:
        out[dag.dag_id] = DagSerialization.to_dict(dag)
        for task in dag.tasks:
            out[f"{dag.dag_id}.{task.task_id}"] = (
                sorted(vars(task)),
                stable(task._BaseOperator__init_kwargs),
                {k: stable(v) for k, v in vars(task).items()},
            )
    return out


def test_generated_dags_are_the_same_with_airflows_setattr(monkeypatch: pytest.MonkeyPatch) -> None:
    lean = snapshot(build_dags(ROOT / "dags" / "configs", only_dag_id=None))
    monkeypatch.delattr(LeanSetattrMixin, "__setattr__")  # every operator takes BaseOperator's path
    plain = snapshot(build_dags(ROOT / "dags" / "configs", only_dag_id=None))
    assert lean.keys() == plain.keys()
    assert len(lean) > 10
    for key in lean:
        assert lean[key] == plain[key], key


def test_every_provider_operator_and_sensor_uses_it() -> None:
    classes = provider_operator_classes()
    assert len(classes) >= 10
    for cls in classes:
        assert cls.__mro__[1] is LeanSetattrMixin, cls
        assert not {n for n in dir(cls) if n.startswith("_convert_")} - {
            f"_convert_{k}" for k in CONVERTED_KEYS
        }


def test_nothing_between_baseoperator_and_object_overrides_setattr() -> None:
    # The lean path stores with object.__setattr__, which is what BaseOperator's super() call reaches.
    for cls in BaseOperator.__mro__[1:-1]:
        assert "__setattr__" not in vars(cls), cls


def test_converted_and_post_construction_assignments_take_airflows_path() -> None:
    from mlops_provider.operators.validation import ValidateDataOperator

    with DAG("lean", schedule=None, start_date=datetime(2024, 1, 1)):
        upstream = ValidateDataOperator(task_id="up", data_uri="a.csv", suite="s.json", retries="3")
        task = ValidateDataOperator(task_id="down", data_uri="b.csv", suite="s.json")
    assert upstream.retries == 3  # converted by Airflow's _convert_retries
    task.data_uri = upstream.output  # an XComArg assigned after construction sets the dependency
    assert task.upstream_task_ids == {"up"}
    task.suite = "other.json"
    assert task._BaseOperator__init_kwargs["suite"] == "other.json"


def test_mapped_operators_still_build() -> None:
    from mlops_provider.operators.validation import ValidateDataOperator

    with DAG("lean_mapped", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        ValidateDataOperator.partial(task_id="each", suite="s.json").expand(data_uri=["a.csv", "b.csv"])
    (mapped,) = dag.tasks
    unmapped = mapped.unmap({"data_uri": "a.csv"})
    assert isinstance(unmapped, ValidateDataOperator)
    assert (unmapped.suite, unmapped.data_uri) == ("s.json", "a.csv")
