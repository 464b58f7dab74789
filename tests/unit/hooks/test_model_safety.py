"""The load policy, the provider's skops allowlist and the model sha256: pure checks, then
MLflowModelHook on a real MLflow store (SQLite) with a real sklearn model, tampered on disk."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.exceptions import InvalidInputError
from mlops_provider.hooks.model_safety import (
    SHA256_TAG,
    ModelLoadPolicy,
    model_digest,
    parse_model_uri,
    read_artifact,
    skops_options,
)
from mlops_provider.hooks.models import MLflowModelHook, serialization_options
from mlops_provider.operators.training import TrainModelOperator


# -- the policy ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["sklearn.tree._tree.Tree", "numpy.dtype", "numpy.random._pcg64.PCG64", "scipy.sparse._csr.csr_matrix"],
)
def test_provider_allowlist_trusts_sklearn_numpy_scipy(name):
    assert ModelLoadPolicy().is_trusted(name)


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "builtins.exec",
        "os.system",
        "subprocess.Popen",
        "my_pkg.models.Custom",
        "numpy.load",
        "numpy.testing._private.utils.runstring",
        "numpy.lib._npyio_impl.load",
        "scipy.io.loadmat",
        "sklearn.utils._testing.assert_run_python_script_without_output",
        "sklearnx.evil",
    ],
)
def test_everything_else_is_refused(name):
    assert ModelLoadPolicy().refused_types([name, "numpy.dtype"]) == [name]


def test_extras_trust_exact_names_and_dotted_prefixes():
    policy = ModelLoadPolicy(extra_trusted_types=("my_pkg.models.Custom", "other."))
    assert policy.is_trusted("my_pkg.models.Custom")
    assert not policy.is_trusted("my_pkg.models.CustomEvil")
    assert policy.is_trusted("other.thing.Estimator")
    assert not policy.is_trusted("otherwise.Thing")


def test_policy_defaults_are_the_secure_ones():
    policy = ModelLoadPolicy()
    assert (policy.allow_pickle, policy.allow_cloudpickle_fallback, policy.allow_unverified) == (
        False,
        False,
        False,
    )
    assert MLflowModelHook().load_policy == policy


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"allow_pickle": "true"}, "allow_pickle"),
        ({"allow_unverified": 1}, "allow_unverified"),
        ({"extra_trusted_types": "my_pkg.X"}, "extra_trusted_types"),
        ({"extra_trusted_types": ["ok.X", ""]}, "extra_trusted_types"),
    ],
)
def test_policy_from_bad_args_fails_naming_the_argument(kwargs, named):
    with pytest.raises(InvalidInputError, match=named):
        ModelLoadPolicy.from_args(**kwargs)


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("runs:/abc123/model", ("run", "abc123", "model")),
        ("models:/cancer/12", ("version", "cancer", "12")),
    ],
)
def test_model_uris_the_provider_loads(uri, parsed):
    assert parse_model_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri", ["models:/cancer@champion", "models:/m-123", "s3://bucket/model", "file:///x"]
)
def test_other_model_uris_are_refused(uri):
    with pytest.raises(InvalidInputError, match="runs:/"):
        parse_model_uri(uri)


# -- the artifact ----------------------------------------------------------------------------------
def write_model_dir(
    folder: Path, *, pickled: str = "model.skops", fmt: str = "skops", data: bytes = b"x"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    flavor = {"pickled_model": pickled, "serialization_format": fmt}
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": flavor}}))
    (folder / "model.skops").write_bytes(data)
    return folder


def test_digest_covers_the_model_file_and_mlmodel(tmp_path):
    base = model_digest(write_model_dir(tmp_path / "a"))
    assert base == model_digest(write_model_dir(tmp_path / "b"))
    assert base != model_digest(write_model_dir(tmp_path / "c", data=b"y"))
    assert base != model_digest(write_model_dir(tmp_path / "d", fmt="pickle"))


def test_mlmodel_naming_a_file_outside_the_model_is_refused(tmp_path):
    (tmp_path / "secret").write_text("s")
    folder = write_model_dir(tmp_path / "m", pickled="../secret")
    with pytest.raises(InvalidInputError, match="not a file of the model"):
        read_artifact(folder, "crafted")


def test_a_directory_without_an_sklearn_flavor_is_refused(tmp_path):
    (tmp_path / "MLmodel").write_text(
        yaml.safe_dump({"flavors": {"python_function": {"loader_module": "x"}}})
    )
    with pytest.raises(InvalidInputError, match="not a scikit-learn model"):
        read_artifact(tmp_path, "crafted")


# -- logging ------------------------------------------------------------------------------------------
def _identity(x):
    return x


def test_logging_refuses_a_model_with_types_outside_the_allowlist():
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(func=_identity).fit([[1.0]])
    with pytest.raises(InvalidInputError, match=r"test_model_safety\._identity.*extra_trusted_types"):
        serialization_options(model)
    trusted = ModelLoadPolicy(extra_trusted_types=(f"{_identity.__module__}._identity",))
    assert serialization_options(model, trusted)["serialization_format"] == "skops"


def test_cloudpickle_fallback_only_when_opted_in():
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier().fit([[1], [2]], [0, 1])
    model.cache = (i for i in range(3))  # skops cannot serialise a generator
    with pytest.raises(InvalidInputError, match="allow_cloudpickle"):
        skops_options(model, ModelLoadPolicy())
    opted = skops_options(model, ModelLoadPolicy(allow_cloudpickle_fallback=True))
    assert opted == {"serialization_format": "cloudpickle"}


# -- the hook on a real store --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("model-safety")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
        mp.setenv("MLOPS_HOME", str(tmp))
        yield SimpleNamespace(tmp=tmp, data=cancer_csv(tmp))


def train(store: SimpleNamespace) -> str:
    op = TrainModelOperator(
        task_id="train",
        model_name="safe",
        data_uri=str(store.data),
        target="target",
        estimator="sklearn.tree.DecisionTreeClassifier",
        estimator_params={"max_depth": 2},
    )
    return op.execute(context("train", run_id=uuid.uuid4().hex))["run_id"]


def stored_model_dir(run_id: str) -> Path:
    """Where the artifact store keeps the run's logged model (a local folder in these tests)."""
    from mlflow.utils.file_utils import local_file_uri_to_path

    with MLflowModelHook().session() as client:
        run = client.get_run(run_id)
        found = client.search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
    return Path(local_file_uri_to_path(found[0].artifact_location))


def test_logging_records_the_sha256_of_what_is_stored(store):
    run_id = train(store)
    hook = MLflowModelHook()
    recorded = hook.get_run(run_id).data.tags[SHA256_TAG]
    assert recorded == model_digest(stored_model_dir(run_id))
    assert hook.verify_model(f"runs:/{run_id}/model") == recorded
    loaded = hook.load_verified(f"runs:/{run_id}/model")
    assert loaded.digest == recorded
    assert type(loaded.model).__name__ == "DecisionTreeClassifier"
    assert loaded.inputs is not None
    assert {c.type for c in loaded.inputs} == {"double"}


def test_a_model_changed_after_logging_is_refused(store):
    run_id = train(store)
    stored = stored_model_dir(run_id) / "model.skops"
    stored.write_bytes(stored.read_bytes() + b"\0")
    with pytest.raises(InvalidInputError, match=r"changed after it was logged: expected sha256 [0-9a-f]{64}"):
        MLflowModelHook().load_model(f"runs:/{run_id}/model")
    with pytest.raises(InvalidInputError, match="changed after it was logged"):
        MLflowModelHook().verify_model(f"runs:/{run_id}/model")


def test_a_model_without_a_recorded_sha256_needs_the_opt_in(store):
    run_id = train(store)
    with MLflowModelHook().session() as client:
        client.delete_tag(run_id, SHA256_TAG)
    with pytest.raises(InvalidInputError, match="no recorded sha256.*allow_unverified_models"):
        MLflowModelHook().load_model(f"runs:/{run_id}/model")
    opted = MLflowModelHook(load_policy=ModelLoadPolicy(allow_unverified=True))
    assert type(opted.load_model(f"runs:/{run_id}/model")).__name__ == "DecisionTreeClassifier"


def test_a_version_that_is_not_ready_is_refused(store):
    run_id = train(store)
    import mlflow
    from mlflow import MlflowClient

    with MLflowModelHook().session():
        mlflow.register_model(f"runs:/{run_id}/model", "pending")  # not register_run: no version tags
    real = MlflowClient.get_model_version

    def pending(self, name, version):
        mv = real(self, name, version)
        return SimpleNamespace(status="PENDING_REGISTRATION", tags=mv.tags, run_id=mv.run_id)

    with (
        mock.patch.object(MlflowClient, "get_model_version", pending),
        pytest.raises(InvalidInputError, match="pending version 1 is PENDING_REGISTRATION, not READY"),
    ):
        MLflowModelHook().load_model("models:/pending/1")
    # the same version once READY, verified through its run's recorded sha256 (no version tag)
    assert type(MLflowModelHook().load_model("models:/pending/1")).__name__ == "DecisionTreeClassifier"
