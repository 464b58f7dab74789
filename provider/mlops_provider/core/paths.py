"""Where the provider keeps files on the embedded default (reports), and run-scoped prefixes."""

from __future__ import annotations

import os
import re
from pathlib import Path


def mlops_home() -> Path:
    """Root of the embedded default: ``MLOPS_HOME`` or the working directory."""
    return Path(os.environ.get("MLOPS_HOME") or os.getcwd()).resolve()


def reports_root() -> str:
    """Base URI for reports: ``MLOPS_REPORTS_URI`` (may be s3://...) or ``<MLOPS_HOME>/.mlops/reports``."""
    return os.environ.get("MLOPS_REPORTS_URI") or str(mlops_home() / ".mlops" / "reports")


def safe_segment(value: str) -> str:
    """A path segment made from a run id or similar (``:`` and ``+`` are not portable)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", value).strip("_") or "_"


def run_prefix(root: str, dag_id: str, run_id: str, task_id: str) -> str:
    """``<root>/<dag_id>/<run_id>/<task_id>``: one folder per task of a DAG run."""
    return "/".join([root.rstrip("/"), safe_segment(dag_id), safe_segment(run_id), safe_segment(task_id)])
