"""Extra links to HTML reports (validation, drift) written by the operators.

Local reports are served by the plugin's FastAPI app under ``/mlops/reports/<path relative to the
reports root>``; reports on object storage link to their URI. Operators persist the URL at execute
time (``ValidationReportLink.persist(context, url)``); links only read XCom.
"""

from __future__ import annotations

import os

from mlops_provider.core.data import is_local, local_path
from mlops_provider.core.paths import reports_root
from mlops_provider.links.base import XComUrlLink

REPORTS_ROUTE = "/mlops/reports"


def report_url(uri: str) -> str:
    """The URL a browser opens for a report at ``uri``."""
    if is_local(uri):
        root = os.path.abspath(local_path(reports_root()))
        path = os.path.abspath(local_path(uri))
        if path.startswith(root + os.sep):
            return f"{REPORTS_ROUTE}/{os.path.relpath(path, root)}"
        return f"file://{path}"
    return uri


class ValidationReportLink(XComUrlLink):
    """The Data Docs page of a Great Expectations validation."""

    name = "Validation report"
    key = "validation_report_url"


class DriftReportLink(XComUrlLink):
    """The Evidently drift report."""

    name = "Drift report"
    key = "drift_report_url"
