"""The README's Python example builds the DAG it shows (imports and arguments stay current)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compose_the_operators_example_builds_a_dag():
    from airflow.sdk import DAG

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Compose the operators yourself", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    dag = namespace["dag"]
    assert isinstance(dag, DAG)
    assert dag.dag_id == "penguins_retrain"
    assert [t.task_id for t in dag.topological_sort()] == [
        "validate",
        "train",
        "evaluate",
        "register",
        "promote",
    ]
