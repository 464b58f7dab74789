"""hooks.drift (the check shared by the drift operator and sensor) and hooks.evidently (the report), on
small generated frames with real Evidently, real files and, where a champion is needed, a real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_provider import exceptions
from mlops_provider.core import lineage
from mlops_provider.core.drift import compute_drift
from mlops_provider.hooks.drift import DriftCheck, DriftCheckHook
from mlops_provider.hooks.evidently import BANNER_ID, EvidentlyHook, defuse, drift_banner, with_banner

HOSTILE = "<script>alert(1)</script>"
HOSTILE_VALUE = "</script><b>pwned</b>"
COLUMNS = ["x", HOSTILE, "color"]


def frame(shift: float, rows: int = 400, seed: int = 0, hostile_share: float = 0.1) -> pd.DataFrame:
    """Two numeric columns moved by ``shift`` and a categorical one holding a hostile value."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, rows),
            HOSTILE: rng.normal(shift, 1.0, rows),
            "color": rng.choice(["red", HOSTILE_VALUE], rows, p=[1 - hostile_share, hostile_share]),
            "target": rng.choice(["a", "b"], rows),
        }
    )


def banner_of(html: str) -> str:
    start = html.index(f'<div id="{BANNER_ID}"')
    return html[start : html.index("</div>", start)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    frame(0.0, seed=1).to_csv(folder / "ref.csv", index=False)
    frame(2.0, seed=2, hostile_share=0.6).to_csv(folder / "cur.csv", index=False)
    frame(0.0, seed=1).to_csv(folder / "calm.csv", index=False)  # the reference again: no drift
    return folder


# -- hooks.evidently ----------------------------------------------------------------------------------
def test_report_has_the_banner_and_renders_hostile_names_escaped():
    reference, current = frame(0.0, seed=1), frame(2.0, seed=2, hostile_share=0.6)
    result = compute_drift(reference, current, COLUMNS)
    assert HOSTILE in result.drifted_columns
    rendered = EvidentlyHook().drift_report(
        reference,
        current,
        result,
        model_name="<img src=x onerror=alert(2)>",
        reference_uri="ref<1>.csv",
        current_uri="cur.csv",
        sample_rows=100,
    )
    assert rendered is not None
    html = rendered.html.decode()
    banner = banner_of(html)
    assert html.index(banner) < html.index("</body>")
    assert "Drift decision for &lt;img src=x onerror=alert(2)&gt;: drift" in banner
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in banner
    assert "ref&lt;1&gt;.csv" in banner
    assert "<img" not in banner
    assert "<script" not in banner
    # Evidently embeds names and values in <script> JSON: none of them may close that block
    assert HOSTILE not in html
    assert HOSTILE_VALUE not in html
    assert json.dumps(defuse(HOSTILE))[1:-1] in html  # the column is there, as JSON text
    benign = [f.rename(columns={HOSTILE: "y"}).replace(HOSTILE_VALUE, "blue") for f in (reference, current)]
    plain = EvidentlyHook().drift_report(
        *benign,
        compute_drift(*benign, ["x", "y", "color"]),
        model_name="m",
        reference_uri="r.csv",
        current_uri="c.csv",
        sample_rows=100,
    )
    assert plain is not None
    assert html.lower().count("</script") == plain.html.decode().lower().count("</script")
    # the sample is stated on the report, the decision on all rows
    assert rendered.sample_note is not None
    assert "100 of 400 reference rows" in rendered.sample_note
    assert "The drift decision was computed on all rows." in banner
    assert json.loads(rendered.snapshot_json)


def test_no_report_when_no_column_has_a_score():
    empty = pd.DataFrame({"a": [np.nan] * 300})
    result = compute_drift(empty, empty, ["a"])
    assert (
        EvidentlyHook().drift_report(empty, empty, result, model_name="m", reference_uri="r", current_uri="c")
        is None
    )


def test_banner_goes_after_body_or_first():
    assert with_banner(b"<html><body class='x'><p>report</p></body></html>", "<div>B</div>") == (
        b"<html><body class='x'><div>B</div><p>report</p></body></html>"
    )
    assert with_banner(b"<p>bare</p>", "<div>B</div>") == b"<div>B</div><p>bare</p>"


def test_banner_lists_what_was_left_out_of_the_decision():
    reference = frame(0.0, seed=1).assign(**{"<empty>": np.nan})
    current = frame(0.0, seed=2).assign(**{"<empty>": np.nan})
    result = compute_drift(reference, current, [*COLUMNS, "<empty>"], min_rows=1000)
    banner = drift_banner("m", result, reference_uri="r", current_uri="c")
    assert "insufficient_data" in banner
    assert "drifted share n/a" in banner
    assert "not in the decision: " in banner
    assert "&lt;empty&gt; (not_evaluable" in banner


# -- hooks.drift ------------------------------------------------------------------------------------
def test_check_with_a_reference_writes_report_and_summary(data: Path, tmp_path: Path):
    hook = DriftCheckHook(base_dir=str(data))
    check = DriftCheck(model_name="m", current_uri="cur.csv", reference_uri="ref.csv", columns=COLUMNS)
    prefix = str(tmp_path / "reports" / "dag" / "run" / "task")
    summary, result = hook.run(check, prefix)
    assert summary["status"] == result.status == "drift"
    assert summary["reference_uri"] == str(data / "ref.csv")
    assert summary["current_uri"] == str(data / "cur.csv")
    assert summary["champion_version"] is None
    assert summary["reference_changed_since_training"] is False
    assert summary["report_uri"] == f"{prefix}/drift_report.html"
    assert "report_error" not in summary
    assert "report_sample" not in summary  # 400 rows < 50 000: no sample
    assert f'id="{BANNER_ID}"' in Path(summary["report_uri"]).read_text()
    assert json.loads(Path(summary["report_json_uri"]).read_text())
    full = json.loads(Path(summary["summary_uri"]).read_text())
    assert full["status"] == "drift"
    assert full["drifted_columns"] == result.drifted_columns
    assert full["reference_uri"] == summary["reference_uri"]
    assert full["report_error"] is None
    assert json.loads(json.dumps(summary)) == summary  # XCom: small JSON only


def test_a_failing_report_never_hides_the_decision(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def broken(self, *args, **kwargs):  # fault injection: Evidently chokes on the data
        raise RuntimeError("evidently exploded")

    monkeypatch.setattr(EvidentlyHook, "drift_report", broken)
    check = DriftCheck(model_name="m", current_uri="cur.csv", reference_uri="ref.csv", columns=COLUMNS)
    summary, _ = DriftCheckHook(base_dir=str(data)).run(check, str(tmp_path / "reports"))
    assert summary["status"] == "drift"
    assert summary["report_uri"] is None
    assert summary["report_error"] == "RuntimeError: evidently exploded"
    assert json.loads(Path(summary["summary_uri"]).read_text())["report_error"] == summary["report_error"]


def test_schema_mismatch_fails_without_retry_naming_uri_and_column(data: Path, tmp_path: Path):
    frame(0.0, seed=4).drop(columns="color").to_csv(data / "no_color.csv", index=False)
    check = DriftCheck(model_name="m", current_uri="no_color.csv", reference_uri="ref.csv", columns=COLUMNS)
    with pytest.raises(exceptions.DataError, match=r"no_color\.csv: missing column\(s\) 'color'") as raised:
        DriftCheckHook(base_dir=str(data)).run(check, str(tmp_path / "reports"))
    assert isinstance(raised.value, AirflowFailException)


@pytest.mark.parametrize(
    ("changes", "argument"),
    [
        ({"model_name": ""}, "model_name"),
        ({"current_uri": None}, "current_uri"),
        ({"drift_share": 1.5}, "drift_share"),
        ({"min_rows": 0}, "min_rows"),
        ({"numeric_method": "psi"}, "numeric_method"),
        ({"categorical_method": "wasserstein"}, "categorical_method"),
        (
            {
                "threshold": {"numerical": 0.2},
                "numeric_method": "wasserstein",
                "categorical_method": "jensenshannon",
            },
            "threshold keys",
        ),
        (
            {"threshold": -1, "numeric_method": "wasserstein", "categorical_method": "jensenshannon"},
            "threshold 'threshold'",
        ),
        ({"threshold": 0.2}, "threshold needs pinned methods"),
        ({"report_sample_rows": True}, "report_sample_rows"),
    ],
)
def test_bad_arguments_fail_without_retry_naming_the_argument(changes, argument, tmp_path: Path):
    check = DriftCheck(**{"model_name": "m", "current_uri": "cur.csv", "reference_uri": "r.csv", **changes})
    with pytest.raises(exceptions.InvalidInputError, match=argument) as raised:
        DriftCheckHook(base_dir=str(tmp_path)).run(check, str(tmp_path / "reports"))
    assert isinstance(raised.value, AirflowFailException)


def _champion(tags: dict[str, str]) -> None:
    from mlops_provider.hooks.mlflow import MLflowHook

    with MLflowHook().session() as client:
        client.create_registered_model("watched")
        version = client.create_model_version("watched", source="file:///nowhere/model", tags=tags)
        client.set_registered_model_alias("watched", "champion", version.version)


def test_reference_and_columns_come_from_the_champion(mlflow_store: Path, data: Path, tmp_path: Path):
    _champion(
        {
            lineage.TRAINING_DATA_URI: "ref.csv",  # relative: resolved against base_dir
            lineage.FEATURES: json.dumps(["x", "color"]),
            lineage.TARGET: "target",
            lineage.TRAINING_DATA_FINGERPRINT: "sha256:what-it-was-at-training",
        }
    )
    check = DriftCheck(model_name="watched", current_uri="cur.csv")
    summary, _ = DriftCheckHook(base_dir=str(data)).run(check, str(tmp_path / "reports"))
    assert summary["champion_version"] == "1"
    assert summary["reference_uri"] == str(data / "ref.csv")
    assert set(summary["columns"]) == {"x", "color"}
    assert summary["reference_changed_since_training"] is True


def test_no_champion_and_no_reference_skips(mlflow_store: Path, data: Path, tmp_path: Path):
    check = DriftCheck(model_name="nobody", current_uri="cur.csv")
    with pytest.raises(AirflowSkipException, match="'nobody' has no @champion version"):
        DriftCheckHook(base_dir=str(data)).run(check, str(tmp_path / "reports"))


def test_champion_without_its_training_data_fails(mlflow_store: Path, data: Path, tmp_path: Path):
    _champion({lineage.FEATURES: json.dumps(["x"])})
    check = DriftCheck(model_name="watched", current_uri="cur.csv")
    with pytest.raises(AirflowFailException, match="pass reference_uri"):
        DriftCheckHook(base_dir=str(data)).run(check, str(tmp_path / "reports"))


def test_reference_uri_and_columns_need_no_mlflow(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def unreachable(self, *args, **kwargs):  # fault injection: any registry call would fail
        raise AssertionError("the registry was asked")

    monkeypatch.setattr("mlops_provider.hooks.registry.MLflowRegistryHook.champion", unreachable)
    check = DriftCheck(model_name="m", current_uri="calm.csv", reference_uri="ref.csv", columns=COLUMNS)
    summary, _ = DriftCheckHook(base_dir=str(data)).run(check, str(tmp_path / "reports"))
    assert summary["status"] == "no_drift"
