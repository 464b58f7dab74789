"""TrainModelOperator: argument checks in execute(), and a real training run (sklearn, MLflow on
SQLite) with its lineage tags, holdout, run link and retry reuse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.core import lineage
from mlops_provider.exceptions import DataError
from mlops_provider.hooks.data import DataHook
from mlops_provider.hooks.models import MLflowModelHook
from mlops_provider.operators.training import TrainModelOperator

UI = "http://mlflow.example"
TREE = "sklearn.tree.DecisionTreeClassifier"


def operator(**kwargs) -> TrainModelOperator:
    options = {
        "task_id": "train",
        "model_name": "cancer",
        "data_uri": "cancer.csv",
        "target": "target",
        "estimator": TREE,
        "estimator_params": {"max_depth": 2},
    }
    options.update(kwargs)
    return TrainModelOperator(**options)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("training")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp, ui_url=UI))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        ctx = context("train", run_id="scheduled__2026-12-01")
        op = operator(base_dir=str(tmp), validation_result={"status": "passed"}, config_hash="sha256:abc")
        result = op.execute(ctx)
        yield SimpleNamespace(tmp=tmp, data=data, ctx=ctx, result=result)


def run_tags(run_id: str) -> dict[str, str]:
    return MLflowModelHook().get_run(run_id).data.tags


def test_constructing_with_nonsense_does_not_raise():
    operator(model_name="", validation_result="sideways", test_size="lots", estimator="no.such.Thing")


@pytest.mark.parametrize("model_name", ["", "   ", None])
def test_empty_model_name_fails_naming_it(mlflow_store, tmp_path, model_name):
    with pytest.raises(AirflowFailException, match="model_name"):
        operator(model_name=model_name, base_dir=str(tmp_path)).execute(context())


@pytest.mark.parametrize("value", ["sideways", {"rows": 3}, "{'status': 'meh'}"])
def test_bad_validation_result_fails_naming_it_before_any_run(mlflow_store, tmp_path, value):
    cancer_csv(tmp_path)
    with pytest.raises(AirflowFailException, match="validation_result"):
        operator(validation_result=value, base_dir=str(tmp_path)).execute(context())
    with MLflowModelHook().session() as client:
        assert client.get_experiment_by_name("cancer") is None


def test_missing_data_fails_naming_the_path(mlflow_store, tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "missing.csv")):
        operator(data_uri="missing.csv", base_dir=str(tmp_path)).execute(context())


def test_unknown_target_fails_naming_it(mlflow_store, tmp_path):
    cancer_csv(tmp_path)
    with pytest.raises(AirflowFailException, match="no_such_column"):
        operator(target="no_such_column", base_dir=str(tmp_path)).execute(context())


def test_returns_what_downstream_tasks_need(trained):
    result = trained.result
    assert result["model_uri"] == f"runs:/{result['run_id']}/model"
    assert result["training_data_uri"] == str(trained.data)
    assert result["n_train"] + result["n_holdout"] == 569
    assert result["holdout_uri"].endswith("holdout/holdout.parquet")
    assert result["task_type"] == "classification"
    assert result["trigger"]["cause"] == "manual"


def test_training_writes_lineage_tags(trained):
    tags = run_tags(trained.result["run_id"])
    frame = pd.read_csv(trained.data)
    assert tags[lineage.TRAINING_DATA_URI] == str(trained.data)
    assert tags[lineage.TRAINING_DATA_FINGERPRINT] == DataHook.fingerprint(frame)
    assert tags[lineage.TRAINING_DATA_FINGERPRINT] == trained.result["training_data_fingerprint"]
    assert tags[lineage.TRAINING_DATA_ROWS] == "569"
    assert json.loads(tags[lineage.FEATURES]) == [c for c in frame.columns if c != "target"]
    assert tags[lineage.TARGET] == "target"
    assert tags[lineage.TASK_TYPE] == "classification"
    assert tags[lineage.VALIDATION_RESULT] == "passed"
    assert tags[lineage.CONFIG_HASH] == "sha256:abc"
    assert tags[lineage.CODE_VERSION]
    assert (tags[lineage.DAG_ID], tags[lineage.RUN_ID], tags[lineage.TASK_ID], tags[lineage.TRY_NUMBER]) == (
        "lifecycle_test",
        "scheduled__2026-12-01",
        "train",
        "1",
    )
    assert tags["mlops.complete"] == "true"
    assert tags[lineage.TRIGGER_CAUSE] == "manual"


def test_training_persists_the_run_link(trained):
    result = trained.result
    expected = f"{UI}/#/experiments/{result['experiment_id']}/runs/{result['run_id']}"
    assert trained.ctx["ti"].pushed["mlflow_run_url"] == expected


def test_training_logs_holdout_metrics_and_a_loadable_model(trained):
    hook = MLflowModelHook()
    holdout = hook.load_holdout(trained.result["run_id"])
    assert len(holdout) == trained.result["n_holdout"]
    run = hook.get_run(trained.result["run_id"])
    assert run.info.status == "FINISHED"
    assert 0.5 < run.data.metrics["train_f1_macro"] <= 1.0
    assert run.data.params["estimator"] == TREE
    model = hook.load_model(trained.result["model_uri"])
    predictions = model.predict(holdout.drop(columns=["target"]))
    assert set(predictions) <= {"malignant", "benign"}


def test_a_retry_reuses_the_finished_run(trained):
    ctx = context("train", run_id="scheduled__2026-12-01", try_number=2)
    op = operator(base_dir=str(trained.tmp), validation_result={"status": "passed"}, config_hash="sha256:abc")
    again = op.execute(ctx)
    assert again["run_id"] == trained.result["run_id"]


def test_other_params_make_a_new_run_with_chosen_features(trained):
    features = ["mean radius", "mean texture", "worst area"]
    op = operator(base_dir=str(trained.tmp), features=features, estimator_params={"max_depth": 1})
    other = op.execute(context("train", run_id="scheduled__2026-12-01"))
    assert other["run_id"] != trained.result["run_id"]
    assert json.loads(run_tags(other["run_id"])[lineage.FEATURES]) == features
    assert run_tags(other["run_id"])[lineage.VALIDATION_RESULT] == "not_run"


# -- Step 8 hardening: a trigger's training-data override stays inside the config's prefixes --------
@pytest.fixture
def data_scope(tmp_path):
    """base_dir (the config folder), an allowed folder, a sibling, an outside folder and a symlink out."""
    base = tmp_path / "configs"
    (base / "data" / "train").mkdir(parents=True)
    (tmp_path / "allowed" / "sub").mkdir(parents=True)
    (tmp_path / "allowed_evil").mkdir()
    (tmp_path / "outside").mkdir()
    secret = cancer_csv(tmp_path / "outside")  # readable data: only the scope check stands in the way
    (tmp_path / "allowed" / "link").symlink_to(tmp_path / "outside")
    return SimpleNamespace(tmp=tmp_path, base=base, allowed=tmp_path / "allowed", secret=secret)


def scoped(scope, data_uri: str) -> TrainModelOperator:
    return operator(
        data_uri=data_uri,
        base_dir=str(scope.base),
        allowed_data_prefixes=[str(scope.allowed), "s3://ml-data/weather/"],
        default_data_uri="data/train/*.csv",
    )


HOSTILE = [
    "{tmp}/outside/cancer.csv",
    "{tmp}/allowed/../outside/cancer.csv",
    "{tmp}/allowed/sub/../../outside/cancer.csv",
    "../outside/cancer.csv",
    "data/train/../../../outside/cancer.csv",
    "file://{tmp}/outside/cancer.csv",
    "file://localhost{tmp}/allowed/../outside/cancer.csv",
    "FILE://{tmp}/allowed/cancer.csv",  # not a file URI to the reader: a relative path under base_dir
    "{tmp}/allowed_evil/cancer.csv",  # a sibling whose name starts with the prefix
    "{tmp}/allowed2/cancer.csv",
    "{tmp}/allowed/link/cancer.csv",  # a symlink out of the prefix
    "{tmp}/allowed*/cancer.csv",
    "/etc/passwd",
    "s3://ml-data/weather2/x.csv",
    "s3://ml-data-evil/weather/x.csv",
    "s3://evil/ml-data/weather/x.csv",
    "s3://ml-data@evil/weather/x.csv",
    "s3://ml-data/weather/../secrets/x.csv",
    "s3://ml-data/weather/%2e%2e/secrets/x.csv",
    "s3://ml-data//weather/x.csv",
    "s3a://ml-data/weather/x.csv",
    "gs://ml-data/weather/x.csv",
    "{tmp}/allowed/x.csv\n",
]


@pytest.mark.parametrize("uri", HOSTILE)
def test_a_data_override_outside_the_prefixes_is_refused_naming_the_param(mlflow_store, data_scope, uri):
    from mlops_provider.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"Param 'training_data'.*data\.allowed_training_prefixes"):
        scoped(data_scope, uri.format(tmp=data_scope.tmp)).execute(context())
    assert not (mlflow_store / "mlflow.db").exists()  # refused before MLflow was touched


@pytest.mark.parametrize(
    "uri",
    [
        "{tmp}/allowed/cancer.csv",
        "{tmp}/allowed/",
        "file://{tmp}/allowed/sub/cancer.csv",
        "{tmp}/allowed/sub/../cancer.csv",
        "{tmp}/allowed/*.csv",
        "{tmp}/allowed/**/*.parquet",
        "data/train/*.csv",  # the configured data
        "{tmp}/configs/data/train/*.csv",
    ],
)
def test_a_data_override_inside_a_prefix_gets_to_the_reader(mlflow_store, data_scope, uri):
    # nothing is there, so the reader says so: the scope check let it through
    with pytest.raises(DataError):
        scoped(data_scope, uri.format(tmp=data_scope.tmp)).execute(context())


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("s3://ml-data/weather/x.csv", True),
        ("S3://ml-data/weather/2024/*.csv", True),
        ("s3://ml-data/weather", True),
        ("s3://ml-data/weather2/x.csv", False),
        ("s3://ml-data/x.csv", False),
    ],
)
def test_remote_prefixes_compare_by_whole_segments(uri, ok):
    from mlops_provider.core.data_scope import DataScopeError, check_training_data

    def check() -> None:
        check_training_data(uri, default=None, prefixes=["s3://ml-data/weather/"], base_dir="/srv")

    if ok:
        check()
    else:
        with pytest.raises(DataScopeError, match="Param 'training_data'"):
            check()


def test_no_prefixes_means_no_override(mlflow_store, data_scope):
    from mlops_provider.exceptions import InvalidInputError

    op = operator(
        data_uri=str(data_scope.allowed / "cancer.csv"),
        base_dir=str(data_scope.base),
        allowed_data_prefixes=[],
        default_data_uri="data/train/*.csv",
    )
    with pytest.raises(InvalidInputError, match="none listed, so no override is allowed"):
        op.execute(context())


def test_the_estimator_must_be_an_allowed_estimator_and_nothing_else_runs(mlflow_store, tmp_path):
    from mlops_provider.exceptions import InvalidInputError

    cancer_csv(tmp_path)
    marker = tmp_path / "ran"
    op = operator(
        base_dir=str(tmp_path), estimator="os.system", estimator_params={"command": f"touch {marker}"}
    )
    with pytest.raises(InvalidInputError, match=r"training\.estimator"):
        op.execute(context())
    assert not marker.exists()
