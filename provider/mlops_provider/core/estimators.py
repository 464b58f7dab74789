"""Resolve ``training.estimator`` to a scikit-learn-compatible estimator, importing and calling nothing else.

The path is ``package.module.Name`` or ``package.module:Name``. In order, each refusal naming the path
and the config key ``training.estimator``:

1. **Shape** (:func:`parse_path`, text only: the parse-time check): ASCII identifiers, no segment
   starting with ``_`` (private modules and names, dunders).
2. **Module** (text only): inside one of :data:`LIBRARY_PREFIXES` (``sklearn``, ``xgboost``,
   ``lightgbm``) or a module listed in ``training.allowed_modules`` (your factories, e.g. a module in the
   DAGs folder). Nothing outside them is ever imported, so its top-level code never runs.
3. **Object** (:func:`resolve`, imports the allowed module: the ``validate`` command and ``execute()``):
   either a class with ``fit``, ``predict`` and ``get_params`` (a scikit-learn ``BaseEstimator`` subclass,
   or duck-typed like XGBoost's) defined in an allowed module, whose constructor needs no argument
   (scikit-learn's convention; meta-estimators that need ``steps``/``estimators``, like ``Pipeline``,
   belong in a factory); or a plain Python function defined in a module of ``training.allowed_modules``
   (a factory). Library functions are never factories: ``sklearn.datasets.dump_svmlight_file`` writes
   files, ``fetch_openml`` downloads.
4. **Params** (:func:`check_params`): bound to the constructor's or factory's signature, without a call.
5. **Build** (:func:`build_estimator`, ``execute()`` only): the class is instantiated or the factory
   called; a factory must return an estimator.

XGBoost and LightGBM are optional (the provider's ``xgboost``/``lightgbm`` extras): a path into one that
is not installed fails naming the key and the extra. Their estimators get what scikit-learn's own have
by default (:func:`library_defaults`, :func:`encode_labels`): ``n_jobs`` left unset is 1 (theirs means
every core, and the thread count changes the fitted model), LightGBM's log is quiet unless ``verbose``
is given, and an XGBoost classifier fits on the labels' codes 0..n-1 inside a one-member soft
``VotingClassifier`` (scikit-learn's own label encoding: ``predict`` gives the original labels and
``classes_`` lists them; ``predict_proba`` is XGBoost's own).
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_provider.core.errors import InvalidInputError

LIBRARY_PREFIXES = ("sklearn", "xgboost", "lightgbm")
# The optional libraries and the provider extra that installs each.
OPTIONAL_LIBRARIES = {"xgboost": "xgboost", "lightgbm": "lightgbm"}
# Libraries whose n_jobs=None means every core (scikit-learn's means one job).
ALL_CORES_BY_DEFAULT = ("xgboost", "lightgbm")
# Classifiers from these modules fit only labels 0..n-1 (XGBoost's): trained through encode_labels.
CODED_LABEL_MODULES = ("xgboost",)
CONFIG_KEY = "training.estimator"
ALLOWED_MODULES_KEY = "training.allowed_modules"
# Never factory modules: the standard library, the estimator libraries, the orchestration stack.
FORBIDDEN_FACTORY_MODULES = frozenset({*LIBRARY_PREFIXES, "airflow", "mlops_provider", "mlflow"})
_SEGMENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class TrainingInputError(InvalidInputError):
    """The training input (data, estimator, params) is unusable; a retry cannot change that."""


class EstimatorError(TrainingInputError):
    """``training.estimator`` (or its params: ``key``) names something that is not an allowed estimator."""

    def __init__(self, message: str, key: str = CONFIG_KEY) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class EstimatorPath:
    text: str
    module: str
    attrs: tuple[str, ...]
    user_module: bool  # inside training.allowed_modules: factories allowed


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def check_allowed_modules(modules: Iterable[Any] | None) -> tuple[str, ...]:
    """``training.allowed_modules`` checked: dotted public names, none in the stdlib or the stack."""
    checked = []
    for entry in modules or ():
        if not isinstance(entry, str) or not all(_SEGMENT.fullmatch(p) for p in entry.split(".")):
            raise EstimatorError(
                f"{ALLOWED_MODULES_KEY}: {entry!r} is not a dotted module name (public segments only)",
                key=ALLOWED_MODULES_KEY,
            )
        top = entry.split(".")[0]
        if top in sys.stdlib_module_names or top in FORBIDDEN_FACTORY_MODULES:
            raise EstimatorError(
                f"{ALLOWED_MODULES_KEY}: {entry!r} cannot hold estimator factories (standard library or "
                f"{', '.join(sorted(FORBIDDEN_FACTORY_MODULES))}); list your own module",
                key=ALLOWED_MODULES_KEY,
            )
        checked.append(entry)
    return tuple(checked)


def parse_path(path: Any, allowed_modules: Iterable[str] | None = ()) -> EstimatorPath:
    """Shape and module prefix of an estimator path, from its text alone (imports nothing)."""
    where = f"estimator {path!r} ({CONFIG_KEY})"
    if not isinstance(path, str) or not path.strip():
        raise EstimatorError(
            f"{where} must be an import path string like 'sklearn.ensemble.RandomForestClassifier'"
        )
    text = path.strip()
    module, sep, attr = text.partition(":")
    if not sep:
        module, _, attr = text.rpartition(".")
    parts = module.split(".") + attr.split(".")
    if not module or not attr or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise EstimatorError(
            f"{where} is not an import path like 'package.module.Name' of public names "
            "(letters, digits, '_'; no segment may start with '_')"
        )
    user = check_allowed_modules(allowed_modules)
    user_module = any(_under(module, prefix) for prefix in user)
    if not user_module and not any(_under(module, prefix) for prefix in LIBRARY_PREFIXES):
        raise EstimatorError(
            f"{where}: module {module!r} is outside the allowed modules ({', '.join(LIBRARY_PREFIXES)}"
            f"{''.join(', ' + u for u in user)}); list your factory's module in {ALLOWED_MODULES_KEY}"
        )
    return EstimatorPath(text, module, tuple(attr.split(".")), user_module)


def _import(spec: EstimatorPath) -> Any:
    try:
        obj: Any = importlib.import_module(spec.module)
    except (ImportError, OSError) as err:  # OSError: a library whose native part cannot load (libgomp)
        top = spec.module.split(".")[0]
        failed = str(getattr(err, "name", "") or "")  # the module that did not import
        if top in OPTIONAL_LIBRARIES and (isinstance(err, OSError) or _under(failed, top)):
            raise EstimatorError(
                f"estimator {spec.text!r} ({CONFIG_KEY}) needs {top}, which is not installed or does not "
                f"load here ({err}); install it on every worker: "
                f"pip install 'airflow-provider-mlops[{OPTIONAL_LIBRARIES[top]}]'"
            ) from None
        raise EstimatorError(
            f"estimator {spec.text!r} ({CONFIG_KEY}): module {spec.module!r} does not import ({err})"
        ) from None
    for part in spec.attrs:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise EstimatorError(
                f"estimator {spec.text!r} ({CONFIG_KEY}): {spec.module!r} has no attribute "
                f"{'.'.join(spec.attrs)!r}"
            ) from None
    return obj


def is_estimator(obj: Any) -> bool:
    return all(callable(getattr(obj, name, None)) for name in ("fit", "predict", "get_params"))


def _required_arguments(cls: type) -> list[str]:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def resolve(path: Any, allowed_modules: Iterable[str] | None = ()) -> Any:
    """The estimator class or factory function ``path`` names (imported, never called)."""
    spec = parse_path(path, allowed_modules)
    obj = _import(spec)
    user = check_allowed_modules(allowed_modules)
    defined_in = str(getattr(obj, "__module__", "") or "")
    where = f"estimator {spec.text!r} ({CONFIG_KEY})"
    if inspect.isclass(obj):
        if not is_estimator(obj):
            raise EstimatorError(
                f"{where} is a class but not a scikit-learn estimator (needs fit/predict/get_params)"
            )
        if not any(_under(defined_in, p) for p in (*LIBRARY_PREFIXES, *user)):
            raise EstimatorError(
                f"{where}: the class is defined in {defined_in!r}, outside the allowed modules"
            )
        required = _required_arguments(obj)
        if required:
            raise EstimatorError(
                f"{where}: the class needs argument(s) {', '.join(required)} that a config cannot give "
                f"(a meta-estimator?); build it in a factory function in {ALLOWED_MODULES_KEY}"
            )
        return obj
    if inspect.isfunction(obj) and spec.user_module and any(_under(defined_in, p) for p in user):
        return obj
    kind = "function" if callable(obj) else type(obj).__name__
    raise EstimatorError(
        f"{where} names a {kind}, not an estimator class; factory functions are accepted only from "
        f"modules in {ALLOWED_MODULES_KEY} (your own code), never from libraries"
    )


def check_params(obj: Any, path: str, params: Mapping[str, Any] | None) -> None:
    """``params`` fit the class's constructor or the factory's signature (nothing is called); none is NaN."""
    params = dict(params or {})
    not_numbers = sorted(k for k, v in params.items() if isinstance(v, float) and math.isnan(v))
    if not_numbers:  # XGBoost would train with a NaN learning_rate and predict NaN
        raise EstimatorError(
            f"estimator {path!r}: param(s) {', '.join(map(repr, not_numbers))} are NaN", key="training.params"
        )
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # no signature available: the call will judge
        return
    kinds = {p.kind for p in signature.parameters.values()}
    if inspect.isclass(obj) and inspect.Parameter.VAR_KEYWORD not in kinds:
        valid = {n for n, p in signature.parameters.items() if p.kind is not p.VAR_POSITIONAL}
        unknown = sorted(set(params) - valid)
        if unknown:
            raise EstimatorError(
                f"estimator {path!r}: unknown param(s) {', '.join(map(repr, unknown))}; "
                f"valid: {', '.join(sorted(valid))}",
                key="training.params",
            )
        return
    try:
        signature.bind(**params)
    except TypeError as err:
        raise EstimatorError(
            f"estimator {path!r}: params {sorted(params)} rejected: {err}", key="training.params"
        ) from None


def check_estimator(
    path: Any, params: Mapping[str, Any] | None, allowed_modules: Iterable[str] | None = ()
) -> Any:
    """Resolve and check params without building (the ``validate`` command); returns the class/factory."""
    obj = resolve(path, allowed_modules)
    check_params(obj, str(path).strip(), params)
    return obj


def build_estimator(
    path: Any, params: Mapping[str, Any] | None, allowed_modules: Iterable[str] | None = ()
) -> Any:
    """An unfitted estimator: the class built with ``params``, or the factory called with them."""
    obj = check_estimator(path, params, allowed_modules)
    path = str(path).strip()
    params = dict(params or {})
    try:
        built = obj(**params)
    except (TypeError, ValueError) as err:
        raise EstimatorError(f"estimator {path!r}: cannot build with params {params}: {err}") from None
    if not is_estimator(built):
        raise EstimatorError(
            f"estimator factory {path!r} returned {type(built).__name__}, not a scikit-learn estimator"
        )
    return built


def import_object(path: Any, allowed_modules: Iterable[str] | None = ()) -> Any:
    """The object ``path`` names, imported only from an allowed module (see :func:`parse_path`)."""
    return _import(parse_path(path, allowed_modules))


def _library_of(obj: Any, libraries: Iterable[str]) -> bool:
    return any(_under(type(obj).__module__, lib) for lib in libraries)


def _estimators_in(estimator: Any) -> list[Any]:
    """``estimator`` and every estimator among its nested params (Pipeline steps, ensemble members)."""
    found = [estimator]
    get_params = getattr(estimator, "get_params", None)
    if callable(get_params):
        found += [v for v in get_params(deep=True).values() if is_estimator(v) and not inspect.isclass(v)]
    return found


def library_defaults(estimator: Any) -> dict[str, Any]:
    """
    XGBoost/LightGBM estimators (also nested) with ``n_jobs`` left unset get ``n_jobs=1``, scikit-learn's
    default (theirs is every core: a worker running several tasks is oversubscribed, and the thread count
    changes the model, so a retry on another machine would fit a different one); LightGBM's, without
    ``verbose``/``verbosity``, ``verbose=-1`` (else it writes a line per tree that cannot split). Returns
    what was set, by class name.
    """
    applied: dict[str, Any] = {}
    for member in _estimators_in(estimator):
        if not _library_of(member, ALL_CORES_BY_DEFAULT):
            continue
        params = member.get_params(deep=False)
        changes: dict[str, Any] = {}
        if "n_jobs" in params and params["n_jobs"] is None:
            changes["n_jobs"] = 1
        if _library_of(member, ("lightgbm",)) and not {"verbose", "verbosity"} & set(params):
            changes["verbose"] = -1
        if changes:
            member.set_params(**changes)
            applied[type(member).__name__] = changes
    return applied


def needs_coded_labels(estimator: Any) -> bool:
    """A classifier that fits only labels 0..n-1 (XGBoost's), not yet wrapped."""
    from sklearn.base import is_classifier

    return _library_of(estimator, CODED_LABEL_MODULES) and is_classifier(estimator)


def encode_labels(estimator: Any) -> Any:
    """
    ``estimator`` able to fit any labels: an XGBoost classifier (or a Pipeline ending in one) has it
    wrapped in a one-member soft ``VotingClassifier``, which fits it on the labels' codes and answers
    with the original labels (``classes_``, ``predict``); its probabilities are the member's own. Any
    other estimator is returned as it is.
    """
    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline) and estimator.steps:
        name, last = estimator.steps[-1]
        wrapped = encode_labels(last)
        if wrapped is not last:
            estimator.set_params(**{name: wrapped})
        return estimator
    if not needs_coded_labels(estimator):
        return estimator
    return VotingClassifier([(type(estimator).__name__.lower(), estimator)], voting="soft")


def is_library_error(err: BaseException) -> bool:
    """An error XGBoost or LightGBM raises for its input (bad params, data it refuses)."""
    return _library_of(err, ALL_CORES_BY_DEFAULT)
