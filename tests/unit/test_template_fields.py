"""Every templated field of every operator and sensor names an attribute its constructor sets."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest
from airflow.sdk import DAG, BaseOperator

from mlops_provider.get_provider_info import get_provider_info

# The public classes of DESIGN.md: the collection below must find at least these.
PUBLIC = {
    "mlops_provider.operators.validation.ValidateDataOperator",
    "mlops_provider.operators.drift.DriftCheckOperator",
    "mlops_provider.operators.training.TrainModelOperator",
    "mlops_provider.operators.evaluation.EvaluateModelOperator",
    "mlops_provider.operators.registry.RegisterModelOperator",
    "mlops_provider.operators.registry.PromoteModelOperator",
    "mlops_provider.operators.registry.RollbackModelOperator",
    "mlops_provider.operators.scoring.BatchScoreOperator",
    "mlops_provider.sensors.drift.DriftSensor",
    "mlops_provider.sensors.registry.ModelAliasSensor",
}
# Values for required constructor arguments whose placeholder must look real; others get a string.
DUMMY: dict[str, Any] = {
    "estimator": "sklearn.linear_model.LogisticRegression",
    "suite": {"name": "dummy_suite", "expectations": []},
    "version": "1",
}
# Arguments that are not attributes of the task (BaseOperator's own, or the operator's **kwargs).
SKIP_PARAMS = {"self", "task_id"}


def _modules() -> list[str]:
    info = get_provider_info()
    names: list[str] = []
    for kind in ("operators", "sensors"):
        for entry in info[kind]:  # type: ignore[attr-defined]
            names.extend(entry["python-modules"])
    return names


def _classes() -> dict[str, type[BaseOperator]]:
    """Every BaseOperator subclass defined (not just imported) in the provider's operator/sensor modules."""
    found: dict[str, type[BaseOperator]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseOperator)
                and obj.__module__ == name
                and not obj.__name__.startswith("_")
            ):
                found[f"{name}.{obj.__name__}"] = obj
    return found


CLASSES = _classes()


def _init_params(cls: type[BaseOperator]) -> dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in SKIP_PARAMS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _required_args(cls: type[BaseOperator]) -> dict[str, Any]:
    return {
        name: DUMMY.get(name, f"dummy_{name}")
        for name, p in _init_params(cls).items()
        if p.default is inspect.Parameter.empty
    }


@pytest.fixture
def build() -> Any:
    """Construct a task with placeholder required arguments inside a DAG."""

    def _build(cls: type[BaseOperator]) -> BaseOperator:
        with DAG(dag_id=f"template_fields_{cls.__name__}", schedule=None):
            return cls(task_id="t", **_required_args(cls))

    return _build


def test_collects_every_public_operator_and_sensor() -> None:
    missing = PUBLIC - set(CLASSES)
    assert not missing, f"not found through get_provider_info(): {sorted(missing)}"


@pytest.mark.parametrize("cls", CLASSES.values(), ids=list(CLASSES))
def test_template_fields_is_a_sequence_of_names(cls: type[BaseOperator]) -> None:
    fields = cls.template_fields
    assert isinstance(fields, tuple | list), f"template_fields is a {type(fields).__name__}"
    assert all(isinstance(f, str) and f.isidentifier() for f in fields), fields
    duplicates = sorted({f for f in fields if list(fields).count(f) > 1})
    assert not duplicates, f"repeated in template_fields: {duplicates}"
    renderers = set(getattr(cls, "template_fields_renderers", {}) or {})
    assert renderers <= set(fields), f"renderers for untemplated fields: {sorted(renderers - set(fields))}"


@pytest.mark.parametrize("cls", CLASSES.values(), ids=list(CLASSES))
def test_every_template_field_is_set_by_init(cls: type[BaseOperator], build: Any) -> None:
    task = build(cls)
    # Set on the instance by __init__: a class attribute, method or property would render nothing.
    missing = [f for f in cls.template_fields if f not in vars(task)]
    assert not missing, f"{cls.__name__}.template_fields names attributes __init__ does not set: {missing}"


@pytest.mark.parametrize("cls", CLASSES.values(), ids=list(CLASSES))
def test_required_string_arguments_land_on_their_field(cls: type[BaseOperator], build: Any) -> None:
    task = build(cls)
    for name, value in _required_args(cls).items():
        if name in cls.template_fields and isinstance(value, str):
            assert getattr(task, name) == value, f"{cls.__name__}({name}=...) is not kept as .{name}"


@pytest.mark.parametrize("cls", CLASSES.values(), ids=list(CLASSES))
def test_connection_ids_are_templated(cls: type[BaseOperator]) -> None:
    """``mlflow_conn_id``, ``data_conn_id`` (and any other ``*_conn_id``) wherever the constructor takes one."""
    conn_params = [name for name in _init_params(cls) if name.endswith("_conn_id")]
    missing = [name for name in conn_params if name not in cls.template_fields]
    assert not missing, f"{cls.__name__} takes {missing} but does not template them"
