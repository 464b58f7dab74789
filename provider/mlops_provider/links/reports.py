"""Extra links to HTML reports (validation, drift) written by the operators.

Every report under the reports root (local or ``s3://``) is served by the plugin's FastAPI app under
``/mlops/reports/<path relative to the reports root>``, which checks that the user may read the DAG
that owns it. Operators persist the URL at execute time (``ValidationReportLink.persist(context,
url)``); links only read XCom.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from mlops_provider.core.data import is_local, local_path
from mlops_provider.core.paths import reports_root
from mlops_provider.links.base import XComUrlLink

REPORTS_ROUTE = "/mlops/reports"


def _relative_parts(uri: str, root: str) -> list[str] | None:
    """The path segments of ``uri`` below ``root`` (both local or both remote), else None."""
    if is_local(uri) != is_local(root):
        return None
    if is_local(uri):
        base = os.path.abspath(local_path(root))
        path = os.path.abspath(local_path(uri))
        if not path.startswith(base.rstrip(os.sep) + os.sep):
            return None
        return os.path.relpath(path, base).split(os.sep)
    base = root.rstrip("/") + "/"
    if not uri.startswith(base):
        return None
    parts = uri[len(base) :].split("/")
    return None if any(p in ("", ".", "..") for p in parts) else parts


def report_url(uri: str) -> str | None:
    """
    The URL a browser opens for a report at ``uri``: ``/mlops/reports/...`` with every on-disk name
    URL-encoded (``%`` -> ``%25``); ``None`` for a report outside the served reports root (the plugin
    could not serve it, and a ``file://`` or ``s3://`` URL opens nothing in a browser).
    """
    parts = _relative_parts(uri, reports_root())
    if not parts:
        return None
    return REPORTS_ROUTE + "/" + "/".join(quote(p, safe="") for p in parts)


class ValidationReportLink(XComUrlLink):
    """The validation report page (self-contained HTML)."""

    name = "Validation report"
    key = "validation_report_url"


class DriftReportLink(XComUrlLink):
    """The Evidently drift report."""

    name = "Drift report"
    key = "drift_report_url"
