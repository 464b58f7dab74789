"""hooks.openlineage: dataset names by OpenLineage's naming rules, no credential ever reported, the
operators' lineage before and after execute, and nothing happening (nothing imported, no listener)
while OpenLineage is not configured. Real OpenLineage classes and their serializer; the events of real
runs are in tests/integration/test_openlineage.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.serde import Serde

from mlops_provider.hooks import openlineage as ol
from mlops_provider.operators.drift import DriftCheckOperator
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.performance import PerformanceMonitorOperator
from mlops_provider.operators.scoring import BatchScoreOperator
from mlops_provider.operators.training import TrainModelOperator
from mlops_provider.operators.validation import ValidateDataOperator

SECRET = "s3cr3t-Pa55"
HOSTILE_URIS = [
    f"s3://AKIAKEY:{SECRET}@bucket/data/train.csv",
    f"s3://AKIAKEY:se@{SECRET}@bucket/data/*.parquet",  # an unencoded @ in the secret
    f"s3://AKIAKEY:{SECRET}@bucket:9000/data/x.csv?X-Amz-Signature={SECRET}#{SECRET}",
    f"http://user:{SECRET}@host:8080/data.csv?token={SECRET}",
    f"https://{SECRET}@host/data.csv",
    f"file://user:{SECRET}@localhost/tmp/data/*.csv",
    f"gs://key:{SECRET}@bucket/x.csv",
    f"abfs://user:{SECRET}@container/x.csv",
    f"hdfs://user:{SECRET}@namenode:8020/warehouse/t",
    f"s3://AKIAKEY%3A{SECRET}@bucket/x.csv",
]
HOSTILE_MLFLOW = [
    f"http://user:{SECRET}@mlflow:5000",
    f"https://user:{SECRET}@mlflow.example/prefix/?token={SECRET}",
    f"postgresql+psycopg2://mlflow:{SECRET}@db:5432/mlflow?sslmode=require",
    f"mysql://root:p@{SECRET}@db/mlflow",
    f"databricks://profile:{SECRET}@workspace",
]


@pytest.mark.parametrize(
    ("uri", "base", "expected"),
    [
        ("data/train/*.csv", "/cfg", ("file", "/cfg/data/train", "file:///cfg/data/train/*.csv")),
        ("/abs/batches/2024-01-01.csv", None, ("file", "/abs/batches/2024-01-01.csv", None)),
        ("file:///abs/x.parquet", "/cfg", ("file", "/abs/x.parquet", "file:///abs/x.parquet")),
        (
            "file://otherhost/abs/x.csv",
            None,
            ("file://otherhost", "/abs/x.csv", "file://otherhost/abs/x.csv"),
        ),
        ("/abs/folder", None, ("file", "/abs/folder", None)),
        ("/abs/a/../b/./c.csv", None, ("file", "/abs/b/c.csv", None)),
        ("/abs/**/part-?.csv", None, ("file", "/abs", "file:///abs/**/part-?.csv")),
        ("/abs/file[12].csv", None, ("file", "/abs", None)),
        ("s3://bucket/key/part.parquet", None, ("s3://bucket", "key/part.parquet", None)),
        ("s3://bucket/batches/*.csv", None, ("s3://bucket", "batches", "s3://bucket/batches/*.csv")),
        ("s3://bucket/*.csv", None, ("s3://bucket", "/", None)),
        ("gs://bucket/a.csv", None, ("gs://bucket", "a.csv", None)),
        ("hdfs://nn:8020/warehouse/t", None, ("hdfs://nn:8020", "/warehouse/t", None)),
        ("/abs/wh#at?.csv", None, ("file", "/abs", "file:///abs/wh#at?.csv")),  # a path: no query here
    ],
)
def test_dataset_names_follow_openlineage_naming(uri: str, base: str | None, expected: tuple) -> None:
    namespace, name, safe = expected
    found = ol.dataset_id(uri, base)
    assert found is not None
    assert found[:2] == (namespace, name)
    if safe is not None:
        assert found[2] == safe


def test_a_relative_path_without_base_dir_is_under_the_working_directory() -> None:
    assert ol.dataset_id("x.csv") == (
        "file",
        os.path.join(os.getcwd(), "x.csv"),
        f"file://{os.getcwd()}/x.csv",
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        5.5,
        float("nan"),
        True,
        b"/x.csv",
        ["/x.csv"],
        {"uri": "/x.csv"},
        "/x\x00.csv",
        "/x\n.csv",
        "data/{{ ds }}.csv",
        "s3:///no-bucket.csv",
        "s3://@/x.csv",
        "http://[::1/x.csv",
        "/" + "a" * 5000,
    ],
)
def test_what_names_nothing_gives_no_dataset(value: Any) -> None:
    assert ol.dataset_id(value, "/cfg") is None
    assert ol.data_ref(value, "training_data", "/cfg") is None


@pytest.mark.parametrize("uri", HOSTILE_URIS)
def test_no_credential_query_or_fragment_leaves_a_data_uri(uri: str) -> None:
    found = ol.dataset_id(uri)
    assert found is not None
    assert SECRET not in json.dumps(found)
    assert "@" not in found[0]
    lineage = ol.to_operator_lineage(ol.Lineage([ol.data_ref(uri, "scoring_batch", rows=3)]), "Op")
    assert SECRET not in Serde.to_json(lineage.inputs[0])


@pytest.mark.parametrize("uri", HOSTILE_MLFLOW)
def test_no_credential_leaves_an_mlflow_uri(uri: str) -> None:
    namespace = ol.mlflow_namespace(uri)
    assert namespace is not None
    assert SECRET not in namespace
    refs = [ol.model_version_ref(uri, "m", 3, features=["a"]), ol.logged_model_ref(uri, "abc123")]
    lineage = ol.to_operator_lineage(ol.Lineage(refs[:1], refs[1:]), "Op")
    text = Serde.to_json(lineage.inputs[0]) + Serde.to_json(lineage.outputs[0])
    assert SECRET not in text


def test_mlflow_namespaces() -> None:
    assert ol.mlflow_namespace("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    assert ol.mlflow_namespace("http://mlflow:5000/") == "http://mlflow:5000"
    assert ol.mlflow_namespace("postgresql://u:p@db:5432/mlflow") == "postgresql://db:5432/mlflow"
    assert ol.mlflow_namespace("databricks-uc") == "databricks-uc"
    for bad in (None, "", "not a uri", "http://[::1", 3.5, "sqlite:///x\x00"):
        assert ol.mlflow_namespace(bad) is None


def test_a_model_version_dataset_carries_run_id_fingerprint_and_features() -> None:
    tags = {
        "mlops.training_run_id": "r1",
        "mlops.training_data_fingerprint": "sha256:abc",
        "mlops.training_data_uri": f"s3://k:{SECRET}@bucket/train/*.csv",
        "mlops.features": json.dumps(["a", "b", 3]),
    }
    ref = ol.model_version_ref("sqlite:////m.db", "churn", "4", **ol.version_facts(tags))
    out = json.loads(Serde.to_json(ol.to_operator_lineage(ol.Lineage([], [ref]), "Op").outputs[0]))
    assert (out["namespace"], out["name"]) == ("sqlite:////m.db", "models/churn/4")
    facet = out["facets"]["mlops_model"]
    assert facet["mlflowRunId"] == "r1"
    assert facet["trainingDataFingerprint"] == "sha256:abc"
    assert facet["trainingDataUri"] == "s3://bucket/train/*.csv"
    assert facet["modelUri"] == "models:/churn/4"
    assert facet["_schemaURL"].endswith("#MLOpsDatasetFacet")
    assert out["facets"]["version"]["datasetVersion"] == "4"
    assert out["facets"]["datasetType"]["datasetType"] == "MODEL"
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["a", "b"]
    bad = ol.version_facts({"mlops.features": "{not json", "mlops.training_run_id": ["x"]})
    assert bad["features"] == []
    assert bad["mlflowRunId"] is None


def test_each_dataset_once_and_details_bounded() -> None:
    ref = ol.data_ref("/a.csv", "current", rows=0)
    found = ol.Lineage([ref, ol.data_ref("/a.csv", "reference"), None], [], {"status": "x" * 5000})
    found.run["details"] = {"drifted_columns": [f"c{i}" for i in range(500)], "gone": None, "empty": {}}
    lineage = ol.to_operator_lineage(found, "DriftCheckOperator")
    assert len(lineage.inputs) == 1
    assert lineage.inputs[0].inputFacets["inputStatistics"].rowCount == 0
    run = json.loads(Serde.to_json(lineage.run_facets["mlops_run"]))
    assert "status" not in run  # too long to be a status
    assert run["details"] == {"drifted_columns": [f"c{i}" for i in range(50)]}


def test_before_execute_the_rendered_arguments_name_the_data() -> None:
    score = BatchScoreOperator(
        task_id="score",
        model_name="m",
        data_uri="batches/b.csv",
        output_uri=f"s3://k:{SECRET}@bk/p/b.csv",
        base_dir="/cfg",
    )
    start = score.get_openlineage_facets_on_start()
    assert [(d.namespace, d.name) for d in start.inputs] == [("file", "/cfg/batches/b.csv")]
    assert [(d.namespace, d.name) for d in start.outputs] == [("s3://bk", "p/b.csv")]
    assert SECRET not in Serde.to_json(start.outputs[0])
    assert start.run_facets["mlops_run"].operator == "BatchScoreOperator"
    train = TrainModelOperator(task_id="t", model_name="m", data_uri="d/*.csv", target="y", estimator="x")
    assert [d.name for d in train.get_openlineage_facets_on_start().inputs] == [
        os.path.join(os.getcwd(), "d")
    ]
    assert EvaluateModelOperator(task_id="e", run_id="abc").get_openlineage_facets_on_start().inputs == []


def test_after_execute_the_kept_summary_is_reported(tmp_path: Path) -> None:
    drift = DriftCheckOperator(task_id="d", model_name="m", current_uri="c.csv", base_dir=str(tmp_path))
    summary = {
        "status": "drift",
        "drift_share": 0.5,
        "drifted_columns": ["x"],
        "n_current": 10,
        "n_reference": 20,
        "current_uri": str(tmp_path / "c.csv"),
        "reference_uri": "s3://b/train/*.csv",
        "report_uri": str(tmp_path / "r.html"),
        "summary_uri": str(tmp_path / "s.json"),
        "champion_version": "2",
        "monitoring_run_id": "mr",
    }
    assert drift.keep_for_lineage(summary) is summary
    done = drift.get_openlineage_facets_on_failure(None)  # no MLflow read outside "complete"
    assert [(d.name, d.inputFacets["inputStatistics"].rowCount) for d in done.inputs] == [
        (str(tmp_path / "c.csv"), 10),
        ("train", 20),
    ]
    assert {d.facets["mlops_data"].role for d in done.outputs} == {"drift_report", "drift_summary"}
    run = done.run_facets["mlops_run"]
    assert (run.status, run.modelVersion, run.details["drift_share"]) == ("drift", "2", 0.5)
    validate = ValidateDataOperator(task_id="v", data_uri="x.csv", suite={})
    validate.keep_for_lineage({"data_uri": "/d/x.csv", "rows": 7, "status": "failed", "failed": 2})
    failed = validate.get_openlineage_facets_on_failure(None)
    assert failed.inputs[0].inputFacets["inputStatistics"].rowCount == 7
    assert failed.run_facets["mlops_run"].status == "failed"


@pytest.mark.parametrize("value", [123, {"a": 1}, ["x"], float("nan"), "{{ unrendered }}", "\x00"])
def test_hostile_arguments_and_summaries_never_raise(value: Any) -> None:
    monitor = PerformanceMonitorOperator(
        task_id="p",
        model_name="m",
        labels_uri="l/*.csv",
        id_column="id",
        label_column="y",
        task_type="classification",
        primary_metric="accuracy",
    )
    monitor.labels_uri = value
    monitor.keep_for_lineage({"champion_version": value, "status": value, "labels": value})
    found = monitor.get_openlineage_facets_on_failure(None)
    assert found is not None
    assert found.inputs == []
    monitor.keep_for_lineage(value)  # not a mapping: nothing kept
    assert monitor.get_openlineage_facets_on_start() is not None


def test_a_failing_lineage_is_logged_and_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(ol.OpenLineageMixin):
        def lineage(self, phase: str) -> ol.Lineage:
            raise RuntimeError("boom")

    assert Broken().get_openlineage_facets_on_complete(None) is None
    assert "No OpenLineage datasets for Broken (complete)" in caplog.text


def test_without_the_openlineage_provider_the_methods_return_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)  # not installed
    score = BatchScoreOperator(task_id="s", model_name="m", data_uri="/a.csv", output_uri="/p.csv")
    assert score.get_openlineage_facets_on_start() is None


def test_registration_without_its_registry_still_reports_the_logged_model(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mlops_provider.hooks.registry import MLflowRegistryHook

    down = {"conn_type": "mlflow", "host": "http://127.0.0.1:9", "extra": {"max_retries": 0, "timeout": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(down))  # nothing listens on port 9

    class Register(ol.RegistrationLineageMixin):
        model_name, run_id, mlflow_conn_id = "churn", "abc123", "mlflow_default"

    task = Register()
    task.hook = MLflowRegistryHook()  # as execute leaves it
    assert task.get_openlineage_facets_on_failure(None).outputs == []  # no read outside "complete"
    done = task.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in done.inputs] == [("http://127.0.0.1:9", "runs/abc123/model")]
    assert done.outputs == []
    assert "the version registered for run abc123 not read" in caplog.text


PROBE = """
import json, sys
import airflow.sdk  # Airflow's provider discovery reads every provider's metadata
before = set(sys.modules)
import mlops_provider.operators.drift, mlops_provider.operators.evaluation, mlops_provider.operators.performance
import mlops_provider.operators.registry, mlops_provider.operators.scoring, mlops_provider.operators.training
import mlops_provider.operators.validation
loaded = sorted(m for m in set(sys.modules) - before if m.startswith(("openlineage", "airflow.providers.openl")))
from airflow.providers.openlineage import conf
from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin
print(json.dumps({"loaded": loaded, "disabled": conf.is_disabled(),
                  "listeners": len(OpenLineageProviderPlugin.listeners)}))
"""


def _probe(**env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if "OPENLINEAGE" not in k}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env={**clean, **env}, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_nothing_runs_without_an_openlineage_transport(tmp_path: Path) -> None:
    off = _probe()
    assert off["loaded"] == []  # importing the operators imports no OpenLineage
    assert off["disabled"] is True
    assert off["listeners"] == 0  # no listener: the methods are never called, no time is added
    transport = json.dumps({"type": "file", "log_file_path": str(tmp_path / "events.jsonl")})
    on = _probe(AIRFLOW__OPENLINEAGE__TRANSPORT=transport)
    assert on["disabled"] is False
    assert on["listeners"] == 1
