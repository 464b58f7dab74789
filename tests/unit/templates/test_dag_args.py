"""The generated DAGs' dependencies, set without ``>>``, are the ones ``>>`` would set."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from mlops_provider.templates.builder import build_dags
from mlops_provider.templates.dag_args import depends

ROOT = Path(__file__).resolve().parents[3]


def edges(dag) -> set[tuple[str, str]]:
    return {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids} | {
        (t.task_id, down) for t in dag.tasks for down in t.downstream_task_ids
    }


def test_depends_sets_what_the_shift_operator_sets() -> None:
    with DAG("a", schedule=None, start_date=datetime(2024, 1, 1)) as by_shift:
        x, y = EmptyOperator(task_id="x"), EmptyOperator(task_id="y")
        x >> y
    with DAG("b", schedule=None, start_date=datetime(2024, 1, 1)) as by_depends:
        x, y = EmptyOperator(task_id="x"), EmptyOperator(task_id="y")
        depends(y, x)
    assert edges(by_depends) == edges(by_shift) == {("x", "y")}
    assert [t.task_id for t in by_depends.topological_sort()] == ["x", "y"]


def test_depends_refuses_tasks_of_two_dags() -> None:
    with DAG("c", schedule=None, start_date=datetime(2024, 1, 1)):
        x = EmptyOperator(task_id="x")
    with DAG("d", schedule=None, start_date=datetime(2024, 1, 1)):
        y = EmptyOperator(task_id="y")
    with pytest.raises(AssertionError):
        depends(y, x)


def test_generated_dags_keep_their_order_through_serialization() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    dags = {d.dag_id: d for d in build_dags(ROOT / "dags" / "configs", only_dag_id=None)}
    expected = {
        "seattle_weather_retrain": [
            "validate_data",
            "train_model",
            "evaluate_model",
            "register_model",
            "promote_model",
        ],
        "seattle_weather_drift_monitor": ["validate_current", "check_drift"],
        "seattle_weather_batch_score": ["validate_current", "score_batch"],
        "seattle_weather_rollback": ["rollback"],
    }
    for dag_id, order in expected.items():
        assert [t.task_id for t in dags[dag_id].topological_sort()] == order
        restored = DagSerialization.from_dict(DagSerialization.to_dict(dags[dag_id]))
        assert edges(restored) == set(zip(order, order[1:], strict=False))


def test_the_rollback_dag_renders_its_form_as_text() -> None:
    dags = {
        d.dag_id: d for d in build_dags(ROOT / "dags" / "configs", only_dag_id="seattle_weather_rollback")
    }
    dag = dags["seattle_weather_rollback"]
    assert not dag.render_template_as_native_obj  # a reason "123" or "None" stays a string
    (task,) = dag.tasks
    assert task.to_version == "{{ params.to_version or '' }}"  # empty: @previous_champion
