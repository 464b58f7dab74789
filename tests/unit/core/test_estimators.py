"""training.estimator resolves only to a scikit-learn-compatible estimator class, or a factory from a
module the config lists; nothing else is imported or called at parse or validate time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mlops_provider.core import estimators
from mlops_provider.core.estimators import EstimatorError, build_estimator, check_estimator, parse_path
from mlops_provider.templates.loader import deep_check, load_configs

ROOT = Path(__file__).resolve().parents[3]

REFUSED = [
    "os.system",
    "builtins.eval",
    "subprocess.Popen",
    "sklearn.utils._testing.assert_allclose",  # a private module of an allowed library
    "sklearn.utils._testing.MinimalClassifier",  # an estimator-shaped class in it
    "sklearn.pipeline.Pipeline",  # needs steps: not buildable from a config
    "sklearn.ensemble.VotingClassifier",
    "sklearn.pipeline.make_pipeline",  # a library function is never a factory
    "sklearn.datasets.dump_svmlight_file",  # ... this one writes files
    "sklearn.base.clone",
    "sklearn:os.system",  # a module attribute chain out of the library
    "sklearn.__builtins__.eval",
    "sklearn.base.BaseEstimator",  # no fit/predict
    "sklearn.preprocessing.StandardScaler",  # a transformer, no predict
    "sklearnx.Model",  # a prefix of a name is not the name
    "sklearn_extra.cluster.KMedoids",
    "no_such_package.Model",
    "sklearn.tree.DecisionTreeClassifier.fit",  # a method, not a class
    "sklearn.tree DecisionTreeClassifier",
    "",
]


@pytest.mark.parametrize("path", REFUSED)
def test_refused_paths_name_the_config_key_and_are_never_called(path):
    with pytest.raises(EstimatorError, match=r"training\.estimator") as err:
        build_estimator(path, {})
    assert err.value.key == "training.estimator"
    with pytest.raises(EstimatorError, match=r"training\.estimator"):
        check_estimator(path, {})


@pytest.mark.parametrize(
    "path", ["os.system", "builtins.eval", "subprocess.Popen", "sklearnx.Model", "sklearn.utils._testing.x"]
)
def test_the_parse_time_check_refuses_on_the_text_alone(path):
    with pytest.raises(EstimatorError, match=r"training\.estimator"):
        parse_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.tree:DecisionTreeClassifier",
        "sklearn.linear_model.LogisticRegression",
        "sklearn.ensemble.HistGradientBoostingRegressor",
    ],
)
def test_library_estimator_classes_build(path):
    model = build_estimator(path, {})
    assert estimators.is_estimator(model)


def test_params_are_checked_against_the_signature_without_building():
    with pytest.raises(EstimatorError, match="unknown param.*'n_trees'") as err:
        check_estimator("sklearn.ensemble.RandomForestClassifier", {"n_trees": 3})
    assert err.value.key == "training.params"
    model = build_estimator("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 3})
    assert model.get_params()["n_estimators"] == 3


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """Modules in a folder on sys.path (like the DAGs folder): each writes a marker when imported/called."""
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "evil_estimators_h6.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            Path({str(markers / "imported")!r}).write_text("top-level code ran")

            class Model:
                def fit(self, X, y): return self
                def predict(self, X): return X
                def get_params(self, deep=True): return {{}}
            """
        )
    )
    (tmp_path / "my_factories_h6.py").write_text(
        textwrap.dedent(
            f"""
            from os import system  # imported, not defined here: never a factory
            from pathlib import Path

            def make_tree(max_depth=3):
                Path({str(markers / "called")!r}).write_text("factory called")
                from sklearn.tree import DecisionTreeClassifier
                return DecisionTreeClassifier(max_depth=max_depth)

            def not_a_model():
                return "a string"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("evil_estimators_h6", "my_factories_h6"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return markers


def test_a_module_outside_the_allowed_ones_is_never_imported(user_modules):
    with pytest.raises(EstimatorError, match="module 'evil_estimators_h6' is outside the allowed modules"):
        build_estimator("evil_estimators_h6.Model", {})
    assert not (user_modules / "imported").exists()
    assert "evil_estimators_h6" not in sys.modules


def test_a_factory_from_an_allowed_module_is_checked_without_a_call_and_built_on_execute(user_modules):
    allowed = ["my_factories_h6"]
    check_estimator("my_factories_h6.make_tree", {"max_depth": 2}, allowed)
    assert not (user_modules / "called").exists()  # validate: the signature only
    with pytest.raises(EstimatorError, match="rejected") as err:
        check_estimator("my_factories_h6.make_tree", {"depth": 2}, allowed)
    assert err.value.key == "training.params"
    assert not (user_modules / "called").exists()
    tree = build_estimator("my_factories_h6.make_tree", {"max_depth": 2}, allowed)
    assert tree.get_params()["max_depth"] == 2
    assert (user_modules / "called").exists()
    with pytest.raises(EstimatorError, match="returned str, not a scikit-learn estimator"):
        build_estimator("my_factories_h6.not_a_model", {}, allowed)
    with pytest.raises(EstimatorError, match="names a function"):  # os.system, re-exported
        build_estimator("my_factories_h6.system", {"command": "true"}, allowed)
    with pytest.raises(EstimatorError, match="outside the allowed modules"):  # not listed: refused
        build_estimator("my_factories_h6.make_tree", {})


@pytest.mark.parametrize(
    "entry", ["os", "subprocess", "builtins", "sklearn", "sklearn.datasets", "airflow", "_hidden", "a-b", 3]
)
def test_allowed_modules_cannot_open_the_stdlib_or_the_libraries(entry):
    with pytest.raises(EstimatorError) as err:
        estimators.check_allowed_modules([entry])
    assert err.value.key == "training.allowed_modules"


def write_config(folder: Path, estimator: str, **training: object) -> Path:
    (folder / "train.csv").write_text("a,target\n1,0\n")
    config = {
        "model": {"name": "est", "task": "classification"},
        "data": {"train": "train.csv", "target": "target"},
        "training": {"estimator": estimator, **training},
        "evaluation": {"primary_metric": "f1_macro"},
    }
    path = folder / "est.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    "estimator", ["os.system", "builtins.eval", "subprocess.Popen", "evil_estimators_h6.Model"]
)
def test_parse_time_and_validate_refuse_naming_the_key_and_run_nothing(tmp_path, user_modules, estimator):
    configs = tmp_path / "configs"
    configs.mkdir()
    path = write_config(configs, estimator)
    (item,) = load_configs(configs)
    assert [str(p) for p in item.problems if p.key == "training.estimator"], item.problems
    assert str(item.problems[0]).startswith(f"{path}: training.estimator: ")
    assert not (user_modules / "imported").exists()


def test_validate_command_refuses_os_system_and_runs_nothing(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    marker = tmp_path / "ran"
    path = write_config(configs, "os.system", params={"command": f"touch {marker}"})
    result = subprocess.run(
        [sys.executable, "-m", "mlops_provider.templates", "validate", str(configs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert f"{path}: training.estimator: " in result.stdout
    assert not marker.exists()


def test_validate_deep_check_of_an_allowed_factory_does_not_call_it(tmp_path, user_modules):
    configs = tmp_path / "configs"
    configs.mkdir()
    write_config(
        configs, "my_factories_h6.make_tree", params={"max_depth": 2}, allowed_modules=["my_factories_h6"]
    )
    (item,) = load_configs(configs)
    assert item.ok, item.problems
    assert deep_check(item) == []
    assert not (user_modules / "called").exists()
    write_config(
        configs, "my_factories_h6.make_tree", params={"depth": 2}, allowed_modules=["my_factories_h6"]
    )
    (item,) = load_configs(configs)
    (problem,) = deep_check(item)
    assert problem.key == "training.params"
    assert not (user_modules / "called").exists()
