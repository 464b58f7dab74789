"""Model configs: each class of error is named as `file: key: problem`; good configs still load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_provider.templates.__main__ import main as cli
from mlops_provider.templates.__main__ import reference_table
from mlops_provider.templates.builder import (
    INVALID_TAG,
    InvalidModelConfigError,
    build_dags,
    placeholder_dag_id,
    safe_template,
)
from mlops_provider.templates.loader import load_configs, module_exists

ROOT = Path(__file__).resolve().parents[3]


def good_config(name: str = "wine") -> dict:
    return {
        "model": {"name": name, "task": "classification"},
        "data": {"train": "data/train.csv", "current": "data/batch_{{ ds }}.csv", "target": "target"},
        "validation": {"suite": "suite.json"},
        "training": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
        "evaluation": {"primary_metric": "f1_macro", "thresholds": {"f1_macro": {"min": 0.5}}},
    }


def write(folder: Path, name: str, config: dict | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "train.csv").write_text("a,target\n1,0\n")
    (folder / "suite.json").write_text('{"name": "s", "expectations": []}')
    path = folder / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def problems_of(folder: Path) -> list[str]:
    return [str(p) for item in load_configs(folder) for p in item.problems]


def mutate(**changes: object) -> dict:
    config = good_config()
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            node.pop(leaf)
        else:
            node[leaf] = value
    return config


DELETE = object()


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"training__estimatr": "x"}, "training.estimatr", "unknown key"),
        ({"training__test_size": "a fifth"}, "training.test_size", "valid number"),
        ({"schedule": "0 2 * *"}, "schedule", "not a valid cron expression"),
        ({"drift__schedule": "every day"}, "drift.schedule", "not a valid cron expression"),
        ({"tags": ["team-a", "model:secret"]}, "tags", "set by the DAG factory"),
        ({"tags": ["mlops"]}, "tags", "set by the DAG factory"),
        ({"tags": ["retrain"]}, "tags", "set by the DAG factory"),
        (
            {"training__estimator": "sklearn.ensembel.RandomForestClassifier"},
            "training.estimator",
            "cannot find module",
        ),
        ({"validation__suite": "missing.json"}, "validation.suite", "file not found"),
        ({"data__train": "data/nope.csv"}, "data.train", "file not found"),
        ({"data__target": DELETE}, "data.target", "required key is missing"),
        ({"model__task": "ranking"}, "model.task", "'ranking'"),
        (
            {"evaluation__primary_metric": "rmse"},
            "evaluation.primary_metric",
            "does not apply to classification",
        ),
        ({"model__name": "bad name!"}, "model.name", "pattern"),
        (
            {"evaluation__thresholds": {"f1_macro": {"min": 0.9, "max": 0.1}}},
            "evaluation.thresholds.f1_macro",
            "above max",
        ),
    ],
)
def test_each_error_class_names_file_key_and_problem(tmp_path, changes, key, fragment):
    path = write(tmp_path, "bad.yaml", mutate(**changes))
    problems = problems_of(tmp_path)
    assert problems, "a bad config must not pass"
    assert any(p.startswith(f"{path}: {key}: ") and fragment in p for p in problems), problems


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "model: {name: x\n  task: [")
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{path}: line ")
    assert "invalid YAML" in problem


def test_duplicate_model_name_is_a_problem_of_the_later_file(tmp_path):
    write(tmp_path, "a.yaml", good_config("same"))
    second = write(tmp_path, "b.yaml", good_config("same"))
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(f"{second}: model.name: 'same' is already defined in")


def test_good_config_loads_with_paths_relative_to_yaml(tmp_path):
    write(tmp_path, "wine.yaml", good_config())
    (item,) = load_configs(tmp_path)
    assert item.ok, item.problems
    assert item.resolve("data/train.csv") == str(tmp_path / "data" / "train.csv")
    assert item.resolve("s3://bucket/x.csv") == "s3://bucket/x.csv"


def test_a_task_process_parses_only_the_configs_naming_its_model(tmp_path, monkeypatch):
    from mlops_provider.templates import loader

    write(tmp_path, "wine.yaml", good_config("wine"))
    write(tmp_path, "iris.yaml", good_config("iris"))
    write(tmp_path, "broken.yaml", "model: [unclosed")
    parsed: list[str] = []
    real = loader.load_config
    monkeypatch.setattr(loader, "load_config", lambda path: parsed.append(path.name) or real(path))

    (dag,) = build_dags(tmp_path, only_dag_id="iris_retrain")
    assert dag.dag_id == "iris_retrain"
    assert parsed == ["iris.yaml"]

    # a placeholder DAG (or a name no file spells out) falls back to parsing every file
    parsed.clear()
    (placeholder,) = build_dags(tmp_path, only_dag_id="invalid_config__broken.yaml")
    assert placeholder.dag_id == "invalid_config__broken.yaml"
    assert sorted(parsed) == ["broken.yaml", "iris.yaml", "wine.yaml"]


def test_module_exists_does_not_import():
    assert module_exists("sklearn.ensemble.HistGradientBoostingClassifier")
    assert not module_exists("sklearn.ensembel.HistGradientBoostingClassifier")
    assert not module_exists("nosuchpkg.Thing")
    probe = "import sys; from mlops_provider.templates.loader import module_exists as m; "
    probe += "assert m('sklearn.ensemble.HistGradientBoostingClassifier'); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_config_becomes_placeholder_dag_and_strict_raises(tmp_path, caplog):
    path = write(tmp_path, "broken.yaml", mutate(schedule="not cron"))
    with caplog.at_level("ERROR"):
        (dag,) = build_dags(tmp_path)
    assert dag.dag_id == placeholder_dag_id(path) == "invalid_config__broken.yaml"
    assert INVALID_TAG in dag.tags
    assert str(path) in dag.description
    assert "schedule" in dag.description
    assert "not a valid cron expression" in dag.description
    assert [t.task_id for t in dag.tasks] == ["report_config_error"]
    assert any("schedule" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    with pytest.raises(InvalidModelConfigError, match="broken.yaml: schedule"):
        build_dags(tmp_path, strict=True)


def test_placeholder_task_fails_with_the_message(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    write(tmp_path, "broken.yaml", mutate(training__estimatr="x"))
    (dag,) = build_dags(tmp_path)
    with pytest.raises(AirflowFailException, match="training.estimatr: unknown key"):
        dag.tasks[0].execute({})


def test_cli_validate_prints_every_problem_and_exits_non_zero(tmp_path, capsys):
    bad = write(tmp_path, "bad.yaml", mutate(schedule="0 2 * *", training__estimatr="x"))
    write(tmp_path, "good.yaml", good_config("good"))
    assert cli(["validate", str(tmp_path), "--light"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        f"{bad}: schedule: '0 2 * *' is not a valid cron expression (5 fields, e.g. '0 2 * * *') or preset"
        in out
    )
    assert f"{bad}: training.estimatr: unknown key" in out
    assert all(line.startswith(str(bad)) for line in out)


def test_cli_validate_passes_the_shipped_configs():
    result = subprocess.run(
        [sys.executable, "-m", "mlops_provider.templates", "validate", str(ROOT / "dags" / "configs")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_validate_imports_custom_metric_functions_like_a_task(tmp_path, capsys, monkeypatch):
    """``validate`` finds the metric module in the configs folder's parent (the DAGs folder), and names
    the key of a function that is missing, not a function, or outside that folder."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (tmp_path / "team_kpis.py").write_text("def margin(y_true, y_pred, y_proba, X):\n    return 1.0\n")
    monkeypatch.delitem(sys.modules, "team_kpis", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "elsewhere"))
    functions = {"good": "team_kpis:margin", "absent": "team_kpis:nope", "stdlib": "os:getcwd"}
    for name, function in functions.items():
        custom = {"kpi": {"function": function}}
        write(configs, f"{name}.yaml", mutate(evaluation__custom_metrics=custom, model__name=name))
    assert cli(["validate", str(configs)]) == 1
    out = [line for line in capsys.readouterr().out.splitlines() if "warning" not in line]
    key = "evaluation.custom_metrics.kpi.function"
    assert out == [
        f"{configs / 'absent.yaml'}: {key}: 'team_kpis:nope' is not a function defined in team_kpis",
        f"{configs / 'stdlib.yaml'}: {key}: no module 'os' in {tmp_path.resolve()} (looked for os.py)",
    ]


def test_safe_template_rewrites_ds_only_inside_expressions():
    assert safe_template("batches/{{ ds }}.csv") == "batches/{{ mlops_ds() }}.csv"
    assert safe_template("b/{{ds_nodash}}/ds.csv") == "b/{{mlops_ds_nodash()}}/ds.csv"
    assert safe_template("{{ params.ds }}") == "{{ params.ds }}"
    assert safe_template("plain/ds.csv") == "plain/ds.csv"


def test_readme_reference_table_is_current():
    readme = (ROOT / "README.md").read_text()
    assert reference_table() in readme, "regenerate with: python -m mlops_provider.templates reference"


# -- Step 8 hardening: the keys that bound what a trigger and the estimator path may do ---------------
@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"data__allowed_training_prefixes": ["data/*"]}, "data.allowed_training_prefixes", "no glob"),
        ({"data__allowed_training_prefixes": ["{{ ds }}"]}, "data.allowed_training_prefixes", "no Jinja"),
        ({"data__allowed_training_prefixes": ["/"]}, "data.allowed_training_prefixes", "filesystem root"),
        ({"data__allowed_training_prefixes": ["s3://"]}, "data.allowed_training_prefixes", "scheme://bucket"),
        ({"training__allowed_modules": ["os"]}, "training.allowed_modules", "standard library"),
        (
            {"training__allowed_modules": ["sklearn"]},
            "training.allowed_modules",
            "cannot hold estimator factories",
        ),
        ({"training__estimator": "os.system"}, "training.estimator", "outside the allowed modules"),
        ({"training__estimator": "sklearn.utils._testing.Thing"}, "training.estimator", "start with '_'"),
        ({"promotion": {"allow_forced": "sometimes"}}, "promotion.allow_forced", "boolean"),
    ],
)
def test_hardening_keys_name_file_key_and_problem(tmp_path, changes, key, fragment):
    path = write(tmp_path, "bad.yaml", mutate(**changes))
    problems = problems_of(tmp_path)
    assert any(p.startswith(f"{path}: {key}: ") and fragment in p for p in problems), problems


def test_the_generated_tasks_carry_the_config_floor_and_prefixes(tmp_path):
    config = mutate(
        promotion={"approval": "manual", "allow_forced": True},
        data__allowed_training_prefixes=["data/extra", "s3://bucket/weather"],
        training__allowed_modules=["my_models"],
    )
    write(tmp_path, "wine.yaml", config)
    (dag,) = build_dags(tmp_path, only_dag_id="wine_retrain")
    promote = dag.get_task("promote_model")
    assert (promote.approval_floor, promote.allow_forced) == ("manual", True)
    assert promote.approval == "{{ params.approval }}"
    train = dag.get_task("train_model")
    assert train.allowed_data_prefixes == [str(tmp_path / "data" / "extra"), "s3://bucket/weather"]
    assert train.default_data_uri == str(tmp_path / "data" / "train.csv")
    assert train.estimator_modules == ["my_models"]
    assert "mlops_training_data(params.training_data)" in train.data_uri
    assert dag.get_task("validate_data").data_uri == train.data_uri
    write(tmp_path, "wine.yaml", good_config())
    (dag,) = build_dags(tmp_path, only_dag_id="wine_retrain")
    promote, train = dag.get_task("promote_model"), dag.get_task("train_model")
    assert (promote.approval_floor, promote.allow_forced, train.allowed_data_prefixes) == ("auto", False, [])
