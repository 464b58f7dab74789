"""DriftCheckOperator is thin: argument checks, the shared check (hooks.drift), the report link, the Asset."""

from __future__ import annotations

import inspect
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from support import context
from support import shifted_frame as frame

from mlops_provider import exceptions
from mlops_provider.assets import drift_asset
from mlops_provider.core import drift as core_drift
from mlops_provider.links.reports import DriftReportLink
from mlops_provider.operators.drift import DriftCheckOperator


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store: Path) -> Path:
    # mlflow_store: every completed check is recorded in MLflow (a temporary store here)
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    folder = tmp_path / "data"
    folder.mkdir()
    frame(0.0, 1).to_csv(folder / "ref.csv", index=False)
    frame(2.0, 2).to_csv(folder / "drifted.csv", index=False)
    frame(0.0, 1).to_csv(folder / "same.csv", index=False)
    return folder


def operator(folder: Path, **kwargs) -> DriftCheckOperator:
    arguments = {
        "task_id": "check",
        "model_name": "m",
        "current_uri": "drifted.csv",
        "reference_uri": "ref.csv",
        "columns": ["x", "y", "c"],
        "base_dir": str(folder),
        **kwargs,
    }
    return DriftCheckOperator(**arguments)


def drift_context() -> dict:
    ctx = context(task_id="check")
    ctx["outlet_events"] = defaultdict(SimpleNamespace)
    return ctx


def test_defaults_are_the_ones_declared_in_core():
    params = inspect.signature(DriftCheckOperator.__init__).parameters
    assert params["drift_share"].default == core_drift.DEFAULT_DRIFT_SHARE == 0.5
    assert params["min_rows"].default == core_drift.DEFAULT_MIN_ROWS == 200
    assert params["numeric_method"].default == core_drift.DEFAULT_NUMERIC_METHOD == "auto"
    assert params["categorical_method"].default == core_drift.DEFAULT_CATEGORICAL_METHOD == "auto"
    assert params["report_sample_rows"].default == core_drift.DEFAULT_REPORT_SAMPLE_ROWS == 50_000


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"current_uri": ""}, "current_uri"),
        ({"drift_share": 0}, "drift_share"),
        ({"drift_share": True}, "drift_share"),
        ({"min_rows": 0}, "min_rows"),
        ({"min_rows": 2.5}, "min_rows"),
        ({"numeric_method": "psi"}, "numeric_method"),
        ({"categorical_method": "ks"}, "categorical_method"),
        (
            {
                "threshold": {"numerical": 0.2},
                "numeric_method": "wasserstein",
                "categorical_method": "jensenshannon",
            },
            "threshold keys",
        ),
        (
            {"threshold": 0, "numeric_method": "wasserstein", "categorical_method": "jensenshannon"},
            "threshold",
        ),
        ({"threshold": 0.2}, "threshold needs pinned methods"),
        ({"report_sample_rows": 0}, "report_sample_rows"),
    ],
)
def test_bad_arguments_fail_without_retry_naming_the_argument(data: Path, kwargs, argument):
    task = operator(data, emit_asset=False, **kwargs)
    with pytest.raises(AirflowFailException, match=argument):
        task.execute(drift_context())


def test_empty_model_name_fails_naming_it(data: Path):
    task = operator(data, model_name="", emit_asset=False)
    with pytest.raises(exceptions.InvalidInputError, match="model_name must be a non-empty string"):
        task.execute(drift_context())


def test_drift_emits_the_asset_event_and_links_the_report(data: Path, tmp_path: Path):
    task = operator(data)
    asset = drift_asset("m")
    assert asset in task.outlets
    ctx = drift_context()
    summary = task.execute(ctx)
    assert summary["status"] == "drift"
    assert asset in task.outlets
    extra = ctx["outlet_events"][asset].extra
    assert extra["status"] == "drift"
    assert extra["current_uri"] == str(data / "drifted.csv")
    assert extra["drifted_columns"] == summary["drifted_columns"][:20]
    assert extra["champion_version"] is None
    assert (extra["dag_id"], extra["run_id"]) == ("lifecycle_test", "manual__1")
    assert summary["report_uri"].startswith(
        str(tmp_path / "reports" / "lifecycle_test" / "manual__1" / "check")
    )
    assert Path(summary["report_uri"]).is_file()
    assert (
        ctx["ti"].pushed[DriftReportLink.key]
        == "/mlops/reports/lifecycle_test/manual__1/check/drift_report.html"
    )


def test_no_drift_succeeds_without_an_event(data: Path):
    task = operator(data, current_uri="same.csv")
    ctx = drift_context()
    summary = task.execute(ctx)
    assert summary["status"] == "no_drift"
    assert drift_asset("m") not in task.outlets
    assert not ctx["outlet_events"]
    assert DriftReportLink.key in ctx["ti"].pushed  # the report is linked whatever the decision


def test_too_few_rows_is_insufficient_data_never_drift(data: Path):
    frame(2.0, 3, rows=50).to_csv(data / "small.csv", index=False)
    task = operator(data, current_uri="small.csv")
    summary = task.execute(drift_context())
    assert summary["status"] == "insufficient_data"
    assert drift_asset("m") not in task.outlets


def test_schema_mismatch_fails_without_retry(data: Path):
    frame(0.0, 4).drop(columns="c").to_csv(data / "no_c.csv", index=False)
    with pytest.raises(exceptions.DataError, match=r"no_c\.csv: missing column\(s\) 'c'") as raised:
        operator(data, current_uri="no_c.csv", emit_asset=False).execute(drift_context())
    assert isinstance(raised.value, AirflowFailException)


def test_missing_data_fails_naming_it(data: Path):
    with pytest.raises(exceptions.DataError, match=r"absent\.csv: no such file"):
        operator(data, current_uri="absent.csv", emit_asset=False).execute(drift_context())


def test_a_model_name_rendered_away_from_the_asset_fails(data: Path):
    task = operator(data, model_name="m")
    task.model_name = "other"  # what a Jinja model_name does after parsing
    with pytest.raises(AirflowFailException, match="fixed at parse time"):
        task.execute(drift_context())
