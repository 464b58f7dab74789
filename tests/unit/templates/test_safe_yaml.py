"""Alias bombs and oversize configs are refused fast, naming the file; configs with a few anchors load."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from mlops_provider.templates import safe_yaml
from mlops_provider.templates.builder import INVALID_TAG, build_dags
from mlops_provider.templates.loader import load_configs


def good_config(name: str) -> dict:
    return {
        "model": {"name": name, "task": "classification"},
        "data": {"train": "data/train.csv", "current": "data/batch_{{ ds }}.csv", "target": "target"},
        "validation": {"suite": "suite.json"},
        "training": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "evaluation": {"primary_metric": "f1_macro", "thresholds": {"f1_macro": {"min": 0.5}}},
    }


def write(folder: Path, name: str, config: dict | str) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "train.csv").write_text("a,target\n1,0\n")
    (folder / "suite.json").write_text('{"name": "s", "expectations": []}')
    path = folder / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def bomb(levels: int, fan_out: int = 10) -> str:
    """
    A valid config whose ``training.params`` hold the billion-laughs shape: each level a list of
    ``fan_out`` aliases of the level below, so ``10**(levels + 1)`` values once expanded (the config
    hash, the schema, the builder all walk them).
    """
    lines = [
        "model: {name: bomb, task: classification}",
        "data: {train: data/train.csv, target: target}",
        "evaluation: {primary_metric: f1_macro}",
        "training:",
        "  estimator: sklearn.linear_model.LogisticRegression",
        "  params:",
        "    a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    ]
    for i in range(1, levels + 1):
        lines.append(f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan_out) + "]")
    return "\n".join(lines) + "\n"


def problems(folder: Path) -> list[str]:
    return [str(p) for item in load_configs(folder) for p in item.problems]


@pytest.mark.parametrize("levels", [5, 9, 30])
def test_an_alias_bomb_is_refused_fast_naming_the_file(tmp_path, levels):
    text = bomb(levels)
    assert len(text) < 3000  # a few hundred bytes ...
    path = write(tmp_path, "bomb.yaml", text)  # ... that expand to 10**(levels + 1) values
    start = time.perf_counter()
    (problem,) = problems(tmp_path)
    assert time.perf_counter() - start < 0.5
    assert problem.startswith(f"{path}: (file): refused: ")
    assert "alias" in problem


def test_a_bomb_next_to_a_good_config_hides_nothing(tmp_path):
    write(tmp_path, "good.yaml", good_config("good"))
    write(tmp_path, "bomb.yaml", bomb(9))
    start = time.perf_counter()
    dags = {d.dag_id: d for d in build_dags(tmp_path, only_dag_id=None)}
    assert time.perf_counter() - start < 5
    assert {"good_retrain", "good_drift_monitor", "good_batch_score"} <= set(dags)
    (placeholder,) = [d for d in dags.values() if INVALID_TAG in d.tags]
    assert "bomb.yaml" in placeholder.description
    assert "alias" in placeholder.description


def test_too_many_aliases_are_refused(tmp_path):
    refs = ", ".join(["*x"] * (safe_yaml.MAX_ALIASES + 1))
    path = write(tmp_path, "many.yaml", f"x: &x 1\ny: [{refs}]\n")
    (problem,) = problems(tmp_path)
    assert problem.startswith(f"{path}: (file): refused: more than {safe_yaml.MAX_ALIASES} alias")


def test_a_recursive_alias_is_refused(tmp_path):
    path = write(tmp_path, "loop.yaml", "a: &a [1, *a]\n")
    (problem,) = problems(tmp_path)
    assert problem == f"{path}: (file): refused: recursive alias: a node contains itself"


def test_deep_nesting_is_refused(tmp_path):
    depth = safe_yaml.MAX_DEPTH + 5
    path = write(tmp_path, "deep.yaml", "a: " + "[" * depth + "]" * depth + "\n")
    (problem,) = problems(tmp_path)
    assert problem.startswith(f"{path}: (file): refused: nesting deeper than")


def test_an_oversize_file_is_refused_before_parsing(tmp_path):
    # Not even valid YAML: the size check comes first, so the problem is the size, not the syntax.
    path = write(tmp_path, "huge.yaml", "model: {name: x\n" + "#" * (safe_yaml.MAX_CONFIG_BYTES + 10))
    (problem,) = problems(tmp_path)
    assert problem.startswith(f"{path}: (file): refused: file is larger than 256 KiB")


ANCHORED = """
model: {name: anchored, task: classification}
data: {train: data/train.csv, target: target}
validation: {suite: suite.json}
training:
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: &iters 200, intercept_scaling: *iters}
evaluation:
  primary_metric: f1_macro
  thresholds:
    f1_macro: &bound {min: 0.5}
    accuracy: {<<: *bound, max: 1.0}
tags: [&t nightly, *t]
"""


def test_a_config_with_a_few_anchors_and_a_merge_key_loads(tmp_path):
    write(tmp_path, "anchored.yaml", ANCHORED)
    (item,) = load_configs(tmp_path)
    assert item.ok, item.problems
    assert item.config.training.params == {"max_iter": 200, "intercept_scaling": 200}
    thresholds = {m: b.model_dump(exclude_none=True) for m, b in item.config.evaluation.thresholds.items()}
    assert thresholds == {"f1_macro": {"min": 0.5}, "accuracy": {"min": 0.5, "max": 1.0}}


def test_a_config_exactly_at_the_size_limit_loads(tmp_path):
    padding = safe_yaml.MAX_CONFIG_BYTES - len(ANCHORED.encode()) - 2
    path = write(tmp_path, "padded.yaml", ANCHORED + "#" + "x" * padding + "\n")
    assert path.stat().st_size == safe_yaml.MAX_CONFIG_BYTES
    (item,) = load_configs(tmp_path)
    assert item.ok, item.problems
    path.write_text(ANCHORED + "#" + "x" * (padding + 1) + "\n")
    (item,) = load_configs(tmp_path)
    assert not item.ok


def test_expansion_count_is_exact_for_shared_nodes():
    node = yaml.compose("a: &a [1, 2]\nb: [*a, *a]\n", Loader=yaml.SafeLoader)
    # mapping 1 + key a 1 + list 3 + key b 1 + list (1 + 3 + 3) = 13
    assert safe_yaml.check_expansion(node) == 13


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("a: 1\na: 2\n", "a", 1),
        ("scoring:\n  id_column: x\nfeedback: {labels: l}\nscoring:\n  id_column: y\n", "scoring", 1),
        ("b:\n  x: 1\n  y: 2\n  x: 3\n", "x", 2),
        ("'q': 1\nq: 2\n", "q", 1),  # quoting does not make it another key
    ],
)
def test_a_duplicate_key_is_refused_naming_it_and_its_first_line(text: str, key: str, line: int) -> None:
    with pytest.raises(yaml.YAMLError, match=f"duplicate key '{key}' \\(first at line {line}\\)"):
        safe_yaml.load_yaml(text)


def test_merge_keys_and_equal_keys_in_different_mappings_are_fine() -> None:
    text = "base: &b {p: 1}\none:\n  <<: *b\n  q: 2\ntwo:\n  <<: *b\n  q: 3\n"
    assert safe_yaml.load_yaml(text) == {"base": {"p": 1}, "one": {"p": 1, "q": 2}, "two": {"p": 1, "q": 3}}
