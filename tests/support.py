"""Helpers shared by tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path


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
