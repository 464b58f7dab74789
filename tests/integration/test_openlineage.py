"""OpenLineage for data catalogs, end to end: real Airflow runs (``dag.test()``) with the OpenLineage
provider's ``file`` transport, the events read back from the file.

One DAG runs validate -> train -> evaluate -> register -> promote -> score and drift on the breast-cancer
data set, in a subprocess: the OpenLineage provider decides once per process, when its plugin loads,
whether its listener exists (``[openlineage] transport`` set or not), so the events come from a process
configured like a worker would be. The training data and the predictions are named with ``file://`` URIs
that carry a user and a secret (the reader opens the path and ignores them): no event may show the
secret. A second DAG's task reads ``http://user:secret@...`` and fails: its FAIL event is checked too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import mlflow_connection

MODEL = "cancer_ol"
SECRETS = ("SeCrEt-train", "SeCrEt-out", "SeCrEt-http")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DAG_FILE = """
from datetime import datetime

from airflow.sdk import DAG

from mlops_provider.operators.drift import DriftCheckOperator
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator
from mlops_provider.operators.scoring import BatchScoreOperator
from mlops_provider.operators.training import TrainModelOperator
from mlops_provider.operators.validation import ValidateDataOperator

BASE = {base!r}
RUN_ID = "{{{{ ti.xcom_pull(task_ids='train_model')['run_id'] }}}}"
SUITE = {{"name": "cancer", "expectations": [
    {{"type": "expect_column_values_to_not_be_null", "kwargs": {{"column": "mean radius"}}}},
]}}

with DAG("lineage_loop", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    validate = ValidateDataOperator(task_id="validate_data", data_uri="data/train/*.csv", suite=SUITE, base_dir=BASE)
    train = TrainModelOperator(
        task_id="train_model", model_name="{model}", data_uri={train_uri!r}, target="target",
        estimator="sklearn.linear_model.LogisticRegression", estimator_params={{"max_iter": 2000}},
    )
    evaluate = EvaluateModelOperator(task_id="evaluate_model", run_id=RUN_ID, compute_importance=False)
    register = RegisterModelOperator(task_id="register_model", model_name="{model}", run_id=RUN_ID)
    promote = PromoteModelOperator(
        task_id="promote_model", model_name="{model}", thresholds={{"accuracy": {{"min": 0.5}}}},
        version="{{{{ ti.xcom_pull(task_ids='register_model')['version'] }}}}",
    )
    score = BatchScoreOperator(
        task_id="score_batch", model_name="{model}", data_uri="batches/batch.csv", base_dir=BASE,
        output_uri={output_uri!r}, id_columns=["patient_id"],
    )
    drift = DriftCheckOperator(
        task_id="check_drift", model_name="{model}", current_uri="batches/batch.csv", base_dir=BASE,
        min_rows=50, emit_asset=False,
    )
    validate >> train >> evaluate >> register >> promote >> [score, drift]

with DAG("lineage_hostile", schedule=None, start_date=datetime(2024, 1, 1)) as hostile:
    ValidateDataOperator(task_id="validate_remote", data_uri={http_uri!r}, suite=SUITE, retries=0)
"""

RUNNER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("lineage_dags", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
states = {}
for dag in (module.dag, module.hostile):
    run = dag.test()
    states[dag.dag_id] = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("STATES " + json.dumps(states))
"""


def _data(base: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
    (base / "data" / "train").mkdir(parents=True)
    (base / "batches").mkdir()
    frame.to_csv(base / "data" / "train" / "cancer.csv", index=False)
    batch = frame.drop(columns=["target"]).sample(n=200, random_state=7).reset_index(drop=True)
    batch.insert(0, "patient_id", range(1, len(batch) + 1))
    batch.to_csv(base / "batches" / "batch.csv", index=False)


def run_dags(root: Path, airflow_home: Path, transport: bool = True) -> tuple[dict[str, Any], list[dict]]:
    """Write data and DAGs under ``root``, run both DAGs in a subprocess; (task states, events)."""
    base, dags, events = root / "configs", root / "dags", root / "events.jsonl"
    dags.mkdir(parents=True)
    _data(base)
    text = DAG_FILE.format(
        base=str(base),
        model=MODEL,
        train_uri=f"file://lineage:SeCrEt-train@localhost{base}/data/train/*.csv",
        output_uri=f"file://lineage:SeCrEt-out@localhost{base}/predictions/batch.csv",
        http_uri="http://lineage:SeCrEt-http@127.0.0.1:9/data.csv?token=SeCrEt-http",
    )
    (dags / "lineage_dags.py").write_text(text)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_CONN_MLFLOW_DEFAULT": mlflow_connection(root),
        "MLOPS_HOME": str(root),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlops-test",
    }
    if transport:
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        )
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, str(dags / "lineage_dags.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("STATES ")]
    assert lines, out.stdout[-3000:] + out.stderr[-5000:]
    found = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    return json.loads(lines[-1].removeprefix("STATES ")), found


@pytest.fixture(scope="module")
def lineage(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("lineage")
    states, events = run_dags(root, airflow_db)
    return {"root": root, "states": states, "events": events, "base": root / "configs"}


def task_event(events: list[dict], task_id: str, kind: str = "COMPLETE") -> dict:
    found = [e for e in events if e["eventType"] == kind and e["job"]["name"].endswith(f".{task_id}")]
    assert len(found) == 1, [(e["eventType"], e["job"]["name"]) for e in events]
    return found[0]


def datasets(event: dict, side: str) -> dict[tuple[str, str], dict]:
    return {(d["namespace"], d["name"]): d for d in event[side]}


def mlflow_namespace(lineage: dict[str, Any]) -> str:
    """The embedded MLflow store's URI: the namespace of runs' models and registered versions."""
    return f"sqlite:///{lineage['root'] / 'mlflow' / 'mlflow.db'}"


def test_the_loop_ran(lineage):
    assert set(lineage["states"]["lineage_loop"].values()) == {"success"}, lineage["states"]
    assert lineage["states"]["lineage_hostile"] == {"validate_remote": "failed"}


def test_training_reports_its_data_fingerprint_schema_and_the_logged_model(lineage):
    train_folder = ("file", str(lineage["base"] / "data" / "train"))
    event = task_event(lineage["events"], "train_model")
    data = datasets(event, "inputs")[train_folder]
    facet = data["facets"]["mlops_data"]
    assert facet["role"] == "training_data"
    assert facet["uri"] == f"file://{lineage['base']}/data/train/*.csv"  # no user, no secret
    assert facet["fingerprint"].startswith("sha256:")
    assert data["facets"]["version"]["datasetVersion"] == facet["fingerprint"]
    columns = {f["name"]: f.get("type") for f in data["facets"]["schema"]["fields"]}
    assert columns["target"] == "object"
    assert columns["mean radius"] == "float64"
    assert data["inputFacets"]["inputStatistics"]["rowCount"] == 569
    run_id = event["run"]["facets"]["mlops_run"]["mlflowRunId"]
    model = datasets(event, "outputs")[(mlflow_namespace(lineage), f"runs/{run_id}/model")]["facets"]
    assert model["datasetType"]["datasetType"] == "MODEL"
    assert model["mlops_model"]["trainingDataFingerprint"] == facet["fingerprint"]
    holdout = [d for d in event["outputs"] if d["facets"].get("mlops_data", {}).get("role") == "holdout"]
    assert len(holdout) == 1
    assert holdout[0]["name"].endswith(f"/{run_id}/artifacts/holdout/holdout.parquet")
    assert holdout[0]["outputFacets"]["outputStatistics"]["rowCount"] > 0
    start = task_event(lineage["events"], "train_model", "START")
    assert list(datasets(start, "inputs")) == [train_folder]  # named before the task read anything


def test_the_registered_version_is_an_output_with_run_id_and_fingerprint(lineage):
    train = task_event(lineage["events"], "train_model")
    run_id = train["run"]["facets"]["mlops_run"]["mlflowRunId"]
    fingerprint = train["inputs"][0]["facets"]["mlops_data"]["fingerprint"]
    namespace = mlflow_namespace(lineage)
    event = task_event(lineage["events"], "register_model")
    assert list(datasets(event, "inputs")) == [(namespace, f"runs/{run_id}/model")]
    version = datasets(event, "outputs")[(namespace, f"models/{MODEL}/1")]["facets"]
    assert version["mlops_model"]["mlflowRunId"] == run_id
    assert version["mlops_model"]["trainingDataFingerprint"] == fingerprint
    assert version["mlops_model"]["trainingDataUri"] == f"file://{lineage['base']}/data/train/*.csv"
    assert version["mlops_model"]["modelUri"] == f"models:/{MODEL}/1"
    assert version["version"]["datasetVersion"] == "1"
    assert version["datasetType"] == {**version["datasetType"], "datasetType": "MODEL", "subType": "MLflow"}
    assert "mean radius" in {f["name"] for f in version["schema"]["fields"]}
    assert event["run"]["facets"]["mlops_run"]["modelVersion"] == "1"
    promote = task_event(lineage["events"], "promote_model")  # the gate read the same version
    assert list(datasets(promote, "inputs")) == [(namespace, f"models/{MODEL}/1")]


def test_scoring_reads_the_batch_and_the_version_and_writes_predictions(lineage):
    batch, predictions = (
        ("file", str(lineage["base"] / p)) for p in ("batches/batch.csv", "predictions/batch.csv")
    )
    event = task_event(lineage["events"], "score_batch")
    inputs = datasets(event, "inputs")
    assert list(inputs) == [batch, (mlflow_namespace(lineage), f"models/{MODEL}/1")]
    assert inputs[batch]["inputFacets"]["inputStatistics"]["rowCount"] == 200
    written = datasets(event, "outputs")[predictions]
    assert written["facets"]["mlops_data"]["role"] == "predictions"
    assert written["facets"]["mlops_data"]["uri"] == f"file://{predictions[1]}"
    assert written["outputFacets"]["outputStatistics"]["rowCount"] == 200
    run = event["run"]["facets"]["mlops_run"]
    assert (run["modelName"], run["modelVersion"], run["alias"]) == (MODEL, "1", "champion")
    start = task_event(lineage["events"], "score_batch", "START")
    assert (list(datasets(start, "inputs")), list(datasets(start, "outputs"))) == ([batch], [predictions])


def test_validation_evaluation_and_drift_report_their_datasets(lineage):
    base = lineage["base"]
    validate = task_event(lineage["events"], "validate_data")
    assert list(datasets(validate, "inputs")) == [("file", str(base / "data" / "train"))]
    assert validate["inputs"][0]["inputFacets"]["inputStatistics"]["rowCount"] == 569
    outputs = {d["facets"]["mlops_data"]["role"]: d["name"] for d in validate["outputs"]}
    assert outputs["validation_result"].endswith("/validate_data/validation_result.json")
    assert outputs["validation_report"].endswith("/validate_data/validation_report.html")
    assert validate["run"]["facets"]["mlops_run"]["status"] == "passed"
    train_run = task_event(lineage["events"], "train_model")["run"]["facets"]["mlops_run"]["mlflowRunId"]
    evaluate = task_event(lineage["events"], "evaluate_model")
    assert list(datasets(evaluate, "inputs")) == [(mlflow_namespace(lineage), f"runs/{train_run}/model")]
    drift = task_event(lineage["events"], "check_drift")
    assert list(datasets(drift, "inputs")) == [
        ("file", str(base / "batches" / "batch.csv")),
        ("file", str(base / "data" / "train")),  # the champion's training data, found through MLflow
        (mlflow_namespace(lineage), f"models/{MODEL}/1"),
    ]
    assert {d["facets"]["mlops_data"]["role"] for d in drift["outputs"]} == {"drift_report", "drift_summary"}
    run = drift["run"]["facets"]["mlops_run"]
    assert run["status"] in ("drift", "no_drift")
    assert run["modelVersion"] == "1"


def test_no_event_shows_a_secret(lineage):
    assert len(lineage["events"]) >= 16
    text = json.dumps(lineage["events"])
    for secret in SECRETS:
        assert secret not in text
    assert "lineage:" not in text  # the user name before the secret neither
    failed = task_event(lineage["events"], "validate_remote", "FAIL")
    assert list(datasets(failed, "inputs")) == [("http://127.0.0.1:9", "/data.csv")]
    assert failed["inputs"][0]["facets"]["mlops_data"]["uri"] == "http://127.0.0.1:9/data.csv"
