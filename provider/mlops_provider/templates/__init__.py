"""The DAG factory: one YAML per model becomes its retrain, drift-monitor and batch-score DAGs.

Usage in a DAG file::

    from mlops_provider.templates import build_dags

    for dag in build_dags(Path(__file__).parent / "configs"):
        globals()[dag.dag_id] = dag
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_provider.templates.builder import InvalidModelConfigError, build_dags

__all__ = ["InvalidModelConfigError", "build_dags"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mlops_provider.templates import builder

        return getattr(builder, name)
    raise AttributeError(name)
