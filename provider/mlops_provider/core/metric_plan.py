"""The metrics one model is judged on: the built-in ones of its task plus the config's own. No Airflow.

* ``custom_metrics: {name: {function: "module:attr", greater_is_better: bool}}``: a plain Python
  function ``(y_true, y_pred, y_proba, X) -> float`` from a module inside the allowed folders (the
  DAGs folder); ``y_proba`` is None without ``predict_proba``, ``X`` may be None (live rows).
* ``cost_matrix: {actual_class: {predicted_class: cost}}`` (classification): the metric
  ``expected_cost``, the mean cost per scored row (lower is better); a missing cell costs 0.

A function that raises, or returns anything but a finite number, gives no value: its name and the
error are kept (``MetricPlan.values`` returns them) and every gate that reads it fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import numbers
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_provider.core.errors import InvalidInputError
from mlops_provider.core.feedback_join import _text as class_text  # one text form of a class, live too
from mlops_provider.core.metrics import LOWER_IS_BETTER, TASK_TYPES, is_finite_number, metric_names

EXPECTED_COST = "expected_cost"
CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FUNCTION_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
MAX_CUSTOM_METRICS = 20
MAX_ERROR_CHARS = 300
WHOLE_NUMBER = re.compile(r"^-?\d+(\.0+)?$")
PRIVATE_PREFIX = "mlops_metrics_"  # a module loaded from its file, beside one of the same name


@dataclass(frozen=True)
class CustomMetric:
    name: str
    function: str
    greater_is_better: bool = True


def _custom(name: Any, spec: Any) -> CustomMetric:
    where = f"evaluation.custom_metrics.{name}"
    if not isinstance(name, str) or not CUSTOM_NAME.match(name):
        raise InvalidInputError(
            f"evaluation.custom_metrics: the name {name!r} must be lower case letters, digits and _"
        )
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"{where} must be {{function: 'module:function', greater_is_better: bool}}")
    unknown = set(spec) - {"function", "greater_is_better"}
    if unknown:
        raise InvalidInputError(f"{where}: unknown key(s) {sorted(map(str, unknown))}")
    function, better = spec.get("function"), spec.get("greater_is_better", True)
    if not isinstance(function, str) or not FUNCTION_PATH.match(function):
        raise InvalidInputError(
            f"{where}.function must look like 'my_metrics:expected_profit', got {function!r}"
        )
    if not isinstance(better, bool):
        raise InvalidInputError(f"{where}.greater_is_better must be true or false, got {better!r}")
    return CustomMetric(name, function, better)


def _cost_matrix(raw: Any) -> dict[str, dict[str, float]]:
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInputError(
            f"evaluation.cost_matrix must be {{actual_class: {{predicted_class: cost}}}}, got {raw!r}"
        )
    matrix: dict[str, dict[str, float]] = {}
    for actual, row in raw.items():
        if not isinstance(row, Mapping) or not row:
            raise InvalidInputError(f"evaluation.cost_matrix.{actual} must map predicted classes to costs")
        for predicted, cost in row.items():
            if not is_finite_number(cost):
                raise InvalidInputError(
                    f"evaluation.cost_matrix.{actual}.{predicted} must be a finite number, got {cost!r}"
                )
            matrix.setdefault(_class_key(actual), {})[_class_key(predicted)] = float(cost)
    return matrix


def _class_key(key: Any) -> str:
    """A matrix key as the text a class has (``"1.0"`` and ``1`` -> ``"1"``, as labels read live)."""
    text = str(key)
    return text.split(".")[0] if WHOLE_NUMBER.match(text) else text


@dataclass(frozen=True)
class MetricPlan:
    """Built-in metrics of ``task_type`` plus custom metrics and the cost matrix; see the module doc."""

    task_type: str
    custom: tuple[CustomMetric, ...] = ()
    cost_matrix: Mapping[str, Mapping[str, float]] | None = None
    roots: tuple[Path, ...] = ()
    _functions: dict[str, Callable[..., Any]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls, task_type: str, custom_metrics: Any = None, cost_matrix: Any = None, roots: Iterable[Any] = ()
    ) -> MetricPlan:
        """The plan for a config's values; an InvalidInputError names the key at fault."""
        if task_type not in TASK_TYPES:
            raise InvalidInputError(f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
        custom_metrics = custom_metrics or {}
        if not isinstance(custom_metrics, Mapping):
            raise InvalidInputError(f"evaluation.custom_metrics must be a mapping, got {custom_metrics!r}")
        if len(custom_metrics) > MAX_CUSTOM_METRICS:
            raise InvalidInputError(f"evaluation.custom_metrics: at most {MAX_CUSTOM_METRICS} metrics")
        custom = tuple(_custom(name, spec) for name, spec in custom_metrics.items())
        taken = set(metric_names("classification")) | set(metric_names("regression")) | {EXPECTED_COST}
        for metric in custom:
            if metric.name in taken:
                raise InvalidInputError(
                    f"evaluation.custom_metrics.{metric.name}: a built-in metric has that name"
                )
        matrix = None
        if cost_matrix is not None:
            if task_type != "classification":
                raise InvalidInputError("evaluation.cost_matrix: only for classification models")
            matrix = _cost_matrix(cost_matrix)
        return cls(task_type, custom, matrix, tuple(Path(r).resolve() for r in roots))

    @property
    def extra_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.custom) + ((EXPECTED_COST,) if self.cost_matrix else ())

    @property
    def names(self) -> tuple[str, ...]:
        return metric_names(self.task_type) + self.extra_names

    def greater_is_better(self, metric: str) -> bool:
        for custom in self.custom:
            if custom.name == metric:
                return custom.greater_is_better
        return metric != EXPECTED_COST and metric not in LOWER_IS_BETTER

    @property
    def directions(self) -> dict[str, bool]:
        """``{metric: greater_is_better}`` for every metric of the plan."""
        return {name: self.greater_is_better(name) for name in self.names}

    def check_classes(self, classes: Iterable[Any] | None) -> list[str]:
        """
        The classes the cost matrix names that the model does not know (absent from this training
        data: their cells never match); an error naming the key when it names none of them (a typo).
        """
        if not self.cost_matrix or classes is None:
            return []
        known = {class_text(c) for c in classes}
        named = set(self.cost_matrix) | {p for row in self.cost_matrix.values() for p in row}
        if not named & known:
            first = next(iter(self.cost_matrix))
            raise InvalidInputError(
                f"evaluation.cost_matrix.{first}: no class the matrix names is a class of the model "
                f"({', '.join(sorted(known))})"
            )
        return sorted(named - known)

    def values(
        self, y_true: Any, y_pred: Any, y_proba: Any = None, X: Any = None
    ) -> tuple[dict[str, float | None], dict[str, str]]:
        """The extra metrics' values (None when not a finite number) and, by name, why one has none."""
        values: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        if self.cost_matrix:
            values[EXPECTED_COST] = expected_cost(self.cost_matrix, y_true, y_pred)
        for metric in self.custom:
            values[metric.name], error = self._call(metric, y_true, y_pred, y_proba, X)
            if error:
                errors[metric.name] = error
        return values, errors

    def _call(
        self, metric: CustomMetric, y_true: Any, y_pred: Any, y_proba: Any, X: Any
    ) -> tuple[float | None, str]:
        try:
            function = self.function(metric)
            result = function(*_copies(y_true, y_pred, y_proba, X))  # the caller's data stays as it was
        except InvalidInputError as err:
            return None, str(err)
        except Exception as err:  # the user's code: any failure refuses, with its name and error
            return None, f"{metric.function} raised {type(err).__name__}: {str(err)[:MAX_ERROR_CHARS]}"
        number = _as_number(result)
        if number is None:
            return None, f"{metric.function} returned {_brief(result)}, not a finite number"
        return number, ""

    def function(self, metric: CustomMetric) -> Callable[..., Any]:
        if metric.name not in self._functions:
            self._functions[metric.name] = load_function(metric.function, self.roots, metric.name)
        return self._functions[metric.name]


def _copies(*values: Any) -> list[Any]:
    return [value.copy() if hasattr(value, "copy") else value for value in values]


def _as_number(result: Any) -> float | None:
    """A real number (numpy's too) as a finite float; a bool, text or anything else is None."""
    if isinstance(result, bool) or not isinstance(result, numbers.Real):
        return None
    try:
        number = float(result)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if is_finite_number(number) else None


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}..."


def expected_cost(matrix: Mapping[str, Mapping[str, float]], y_true: Any, y_pred: Any) -> float | None:
    """The mean cost per row; None for no rows."""
    import numpy as np

    actual = np.asarray([class_text(v) for v in np.asarray(y_true, dtype=object)], dtype=object)
    predicted = np.asarray([class_text(v) for v in np.asarray(y_pred, dtype=object)], dtype=object)
    if len(actual) == 0:
        return None
    costs = np.zeros(len(actual), dtype=float)
    for true_class, row in matrix.items():
        is_true = actual == true_class
        for predicted_class, cost in row.items():
            costs[is_true & (predicted == predicted_class)] = cost
    return float(costs.mean())


def _inside(path: str | None, roots: tuple[Path, ...]) -> bool:
    if not path:
        return False
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(root) for root in roots)


def load_function(path: str, roots: tuple[Path, ...], name: str = "") -> Callable[..., Any]:
    """
    The function ``module:attr`` from a module whose file lies inside ``roots`` (the DAGs folder):
    never a built-in, a library's or the standard library's function.
    """
    where = f"evaluation.custom_metrics.{name}.function" if name else "function"
    if not FUNCTION_PATH.match(path):
        raise InvalidInputError(f"{where} must look like 'my_metrics:expected_profit', got {path!r}")
    if not roots:
        raise InvalidInputError(f"{where}: no folder to load metric functions from (the DAGs folder)")
    module_name, attr = path.split(":")
    module = _module_inside(module_name, roots, where)
    function = getattr(module, attr, None)
    if not isinstance(function, types.FunctionType) or function.__module__ != module.__name__:
        raise InvalidInputError(f"{where}: {path!r} is not a function defined in {module_name}")
    if len(inspect.signature(function).parameters) < 4 and not _takes_varargs(function):
        raise InvalidInputError(f"{where}: {path} must take (y_true, y_pred, y_proba, X)")
    return function


def _takes_varargs(function: types.FunctionType) -> bool:
    kinds = {p.kind for p in inspect.signature(function).parameters.values()}
    return inspect.Parameter.VAR_POSITIONAL in kinds


def _module_file(module_name: str, roots: tuple[Path, ...], where: str) -> Path:
    relative = Path(*module_name.split("."))
    for root in roots:
        for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
            if candidate.is_file() and _inside(str(candidate), roots):
                return candidate.resolve()
    raise InvalidInputError(
        f"{where}: no module {module_name!r} in {', '.join(map(str, roots))} "
        f"(looked for {relative.with_suffix('.py')})"
    )


def _module_inside(module_name: str, roots: tuple[Path, ...], where: str) -> types.ModuleType:
    """
    The module of that file: the one imported already, else imported now. A module of the same name
    from elsewhere (another DAG bundle version, a library) is not used: the file is loaded on its own.
    """
    file = _module_file(module_name, roots, where)
    loaded = sys.modules.get(module_name)
    loaded_file = getattr(loaded, "__file__", None)
    if loaded is not None and loaded_file and Path(loaded_file).resolve() == file:
        return loaded
    try:
        if loaded is None:
            return _import_with_roots(module_name, roots, file)
        spec = importlib.util.spec_from_file_location(f"{PRIVATE_PREFIX}{module_name}", file)
        if spec is None or spec.loader is None:
            raise InvalidInputError(f"{where}: {file} cannot be loaded as a module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except InvalidInputError:
        raise
    except Exception as err:
        raise InvalidInputError(
            f"{where}: importing {module_name!r} failed: {type(err).__name__}: {err}"
        ) from None


def _import_with_roots(module_name: str, roots: tuple[Path, ...], file: Path) -> types.ModuleType:
    added = [str(root) for root in roots if str(root) not in sys.path]
    sys.path[:0] = added
    try:
        module = importlib.import_module(module_name)
    finally:
        for entry in added:
            sys.path.remove(entry)
    if Path(getattr(module, "__file__", "") or "/").resolve() != file:
        raise InvalidInputError(f"module {module_name!r} resolved to {module.__file__}, not {file}")
    return module
