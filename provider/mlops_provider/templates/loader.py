"""Load and check model configs: YAML -> ModelConfig, or a list of problems ``file: key: problem``.

Parse-time checks stay light: YAML and pydantic only, plus ``stat`` calls (no file reads, no heavy
imports, no network). :func:`deep_check` adds what needs imports or reads (the ``validate`` CLI).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlops_provider.core.data import is_local, local_path
from mlops_provider.templates.config_cache import load_yaml_cached
from mlops_provider.templates.safe_yaml import ConfigTooLargeError, read_config_text
from mlops_provider.templates.schema import ModelConfig, has_glob, is_templated

CONFIG_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in one config file."""

    file: str
    key: str
    message: str
    warning: bool = False  # data that has not arrived yet is not a config error

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {'warning: ' if self.warning else ''}{self.message}"


@dataclass
class LoadedConfig:
    """A config file and, when it is valid, its model config."""

    path: Path
    config: ModelConfig | None = None
    problems: list[ConfigProblem] = field(default_factory=list)
    raw: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.problems

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def model_name(self) -> str | None:
        if self.config is not None:
            return self.config.model.name
        model = (self.raw or {}).get("model")
        name = model.get("name") if isinstance(model, dict) else None
        return name if isinstance(name, str) else None

    def resolve(self, uri: str) -> str:
        """A path relative to the YAML's folder made absolute; URIs with a scheme unchanged."""
        if not is_local(uri):
            return uri
        path = local_path(uri)
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.base_dir, path))


def config_files(config_dir: str | os.PathLike[str]) -> list[Path]:
    folder = Path(config_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())


def _problems_from_validation(path: str, err: ValidationError) -> list[ConfigProblem]:
    problems = []
    for item in err.errors():
        loc = [str(part) for part in item["loc"]]
        key = ".".join(loc) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] in ("literal_error", "enum"):
            message = f"{message}, got {item.get('input')!r}"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if key == "(top level)":
            key, message = _named_key(message)
        problems.append(ConfigProblem(path, key, message))
    return problems


def _named_key(message: str) -> tuple[str, str]:
    """A rule across sections says ``"<key>: <problem>"``: report it under that key."""
    head, sep, rest = message.partition(": ")
    if sep and " " not in head and head.split(".")[0] in ModelConfig.model_fields:
        return head, rest
    return "(top level)", message


@functools.lru_cache(maxsize=256)  # many configs share an estimator; one parse is one process
def module_exists(dotted: str) -> bool:
    """Whether the module part of ``pkg.mod.Class`` can be found, without importing anything."""
    parts = dotted.split(".")
    return len(parts) > 1 and _find_module(parts[:-1])


def _find_module(parts: list[str]) -> bool:
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    locations = list(spec.submodule_search_locations or [])
    for i, part in enumerate(parts[1:], start=1):
        found = None
        for loc in locations:
            package = Path(loc) / part
            if (package / "__init__.py").is_file():
                found = [str(package)]
                break
            if (Path(loc) / f"{part}.py").is_file() or any(Path(loc).glob(f"{part}.*.so")):
                found = [] if i == len(parts) - 1 else None
                break
        if found is None:
            return False
        locations = found
    return True


def load_config(path: Path) -> LoadedConfig:
    """Parse and check one YAML file (light: no imports of heavy libraries, no file reads but this one)."""
    shown = str(path)
    loaded = LoadedConfig(path=path)
    try:
        raw = load_yaml_cached(path, read_config_text(path))
    except (OSError, UnicodeDecodeError) as err:
        loaded.problems.append(ConfigProblem(shown, "(file)", f"cannot read: {err}"))
        return loaded
    except ConfigTooLargeError as err:
        loaded.problems.append(ConfigProblem(shown, "(file)", f"refused: {err}"))
        return loaded
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        loaded.problems.append(ConfigProblem(shown, where, f"invalid YAML: {getattr(err, 'problem', err)}"))
        return loaded
    if not isinstance(raw, dict):
        loaded.problems.append(
            ConfigProblem(shown, "(top level)", "expected a mapping of sections (model, data, ...)")
        )
        return loaded
    loaded.raw = raw
    try:
        config = ModelConfig.model_validate(raw)
    except ValidationError as err:
        loaded.problems.extend(_problems_from_validation(shown, err))
        return loaded
    loaded.problems.extend(_light_checks(loaded, config))
    if not loaded.problems:
        loaded.config = config
    return loaded


def _light_checks(loaded: LoadedConfig, config: ModelConfig) -> list[ConfigProblem]:
    from mlops_provider.core.estimators import EstimatorError, parse_path

    shown = str(loaded.path)
    problems = []
    try:  # the text only: a module outside the allowed ones is never looked up, let alone imported
        estimator = parse_path(config.training.estimator, config.training.allowed_modules)
    except EstimatorError as err:
        problems.append(ConfigProblem(shown, "training.estimator", str(err)))
    else:
        if not module_exists(f"{estimator.module}.{estimator.attrs[0]}"):
            problems.append(
                ConfigProblem(
                    shown, "training.estimator", f"cannot find module for {config.training.estimator!r}"
                )
            )
    if config.validation is not None:
        suite = loaded.resolve(config.validation.suite)
        if is_local(suite) and not is_templated(suite) and not os.path.isfile(suite):
            problems.append(ConfigProblem(shown, "validation.suite", f"file not found: {suite}"))
    for key in ("train", "reference"):
        value = getattr(config.data, key)
        if value is None:
            continue
        resolved = loaded.resolve(value)
        if (
            is_local(resolved)
            and not is_templated(resolved)
            and not has_glob(resolved)
            and not os.path.exists(resolved)
        ):
            problems.append(ConfigProblem(shown, f"data.{key}", f"file not found: {resolved}"))
    return problems + _row_limit_problems(shown, config)


def _row_limit_problems(shown: str, config: ModelConfig) -> list[ConfigProblem]:
    """The row limits against the keys they depend on."""
    problems = []
    drift = config.drift
    if drift.max_rows is not None and drift.max_rows < drift.min_rows:
        problems.append(
            ConfigProblem(
                shown,
                "drift.max_rows",
                f"{drift.max_rows} is below drift.min_rows ({drift.min_rows}): a sample that small is never judged",
            )
        )
    if config.training.over_max_rows == "sample" and config.training.max_rows is None:
        problems.append(
            ConfigProblem(
                shown, "training.over_max_rows", "'sample' needs training.max_rows (the sample's size)"
            )
        )
    return problems


def _mentions(path: Path, text: str) -> bool:
    try:
        return text in read_config_text(path)
    except (OSError, UnicodeDecodeError, ConfigTooLargeError):
        return True  # load_config reports it


def load_configs(config_dir: str | os.PathLike[str], *, mentioning: str | None = None) -> list[LoadedConfig]:
    """
    Every config in a folder; duplicate model names are a problem of the later file.

    :param mentioning: parse only the files whose text contains this (a model name: a task process
        needs just its own model's config); every file when none does.
    """
    paths = config_files(config_dir)
    if mentioning:
        paths = [p for p in paths if _mentions(p, mentioning)] or paths
    loaded = [load_config(p) for p in paths]
    seen: dict[str, Path] = {}
    for item in loaded:
        name = item.model_name
        if item.config is None or name is None:
            continue
        if name in seen:
            item.problems.append(
                ConfigProblem(str(item.path), "model.name", f"{name!r} is already defined in {seen[name]}")
            )
            item.config = None
        else:
            seen[name] = item.path
    return loaded


def deep_check(item: LoadedConfig) -> list[ConfigProblem]:
    """Checks that import or read: the estimator and its params, the suite JSON, the data glob."""
    if item.config is None:
        return []
    config = item.config
    shown = str(item.path)
    problems: list[ConfigProblem] = []
    from mlops_provider.core.estimators import EstimatorError, check_estimator

    try:  # imports an allowed module; checks the class or factory and its params; calls nothing
        check_estimator(config.training.estimator, config.training.params, config.training.allowed_modules)
    except EstimatorError as err:
        problems.append(ConfigProblem(shown, err.key, str(err)))
    except Exception as err:  # the allowed module itself failed to import
        problems.append(ConfigProblem(shown, "training.estimator", f"{type(err).__name__}: {err}"))
    if config.validation is not None:
        suite = item.resolve(config.validation.suite)
        if is_local(suite) and not is_templated(suite) and os.path.isfile(suite):
            try:
                spec = json.loads(Path(suite).read_text(encoding="utf-8"))
                if not isinstance(spec, dict) or not isinstance(spec.get("expectations"), list):
                    raise ValueError("expected a JSON object with an 'expectations' list")
            except (ValueError, UnicodeDecodeError) as err:
                problems.append(ConfigProblem(shown, "validation.suite", f"{suite}: {err}"))
    train = item.resolve(config.data.train)
    if is_local(train) and not is_templated(train) and has_glob(train):
        import glob

        if not glob.glob(train):
            problems.append(ConfigProblem(shown, "data.train", f"no file matches {train} yet", warning=True))
    return problems + _metric_function_problems(item)


def metric_roots(item: LoadedConfig) -> tuple[str, ...]:
    """Where tasks find custom metric modules (:func:`~mlops_provider.hooks.metric_plan.metric_roots`),
    and the configs folder's parent."""
    from mlops_provider.hooks.metric_plan import metric_roots as task_roots

    parent = str(Path(item.path).resolve().parent.parent)
    return tuple(dict.fromkeys([*task_roots(), *([parent] if os.path.isdir(parent) else [])]))


def _metric_function_problems(item: LoadedConfig) -> list[ConfigProblem]:
    """Each custom metric's function imports from the DAGs folder, as a task would import it."""
    from mlops_provider.core.errors import InvalidInputError
    from mlops_provider.core.metric_plan import load_function

    assert item.config is not None
    problems: list[ConfigProblem] = []
    roots = tuple(Path(r).resolve() for r in metric_roots(item))
    for name, metric in item.config.evaluation.custom_metrics.items():
        key = f"evaluation.custom_metrics.{name}.function"
        try:
            load_function(metric.function, roots, name)
        except InvalidInputError as err:
            problems.append(ConfigProblem(str(item.path), key, str(err).removeprefix(f"{key}: ")))
    return problems
