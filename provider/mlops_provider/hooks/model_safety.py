"""What may be loaded from MLflow, and how: the load policy, the provider's skops allowlist and the
model artifact's sha256.

Loading a model can run code the artifact carries. MLflow 3.17 leaves pickle deserialization on by
default and trusts the skops types the model's own MLmodel lists, so the provider never calls
``mlflow.sklearn.load_model``. It downloads the model directory itself and, before anything is
deserialised:

1. compares the sha256 of the model (``MLmodel`` and the serialised file it names, see
   :func:`model_digest`) with the one recorded at log time (run tag ``mlops.model_sha256``, copied to
   the registered version). A mismatch refuses; a missing record refuses unless the policy allows
   unverified models (versions logged before the provider recorded the hash);
2. for skops files, lists the types skops does not trust by itself and refuses any outside the
   provider's allowlist (:data:`TRUSTED_PREFIXES`: scikit-learn, numpy, scipy, minus
   :data:`DENIED_PREFIXES`; the exact types of the XGBoost and LightGBM wrappers,
   :data:`LIBRARY_TYPES`; plus ``extra_trusted_types``); then loads with exactly that list. A library
   booster's own bytes (XGBoost's binary model, LightGBM's model text) are parsed by its C++ code: a
   crafted one can crash the worker, so the sha256 check and write access to the registry matter;
3. refuses pickle and cloudpickle files unless the policy allows pickle.

Every refusal is an :class:`~mlops_provider.exceptions.InvalidInputError` (not retried) naming the
model and what was found.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_provider.core.scoring import ColumnSpec
from mlops_provider.exceptions import InvalidInputError

SHA256_TAG = "mlops.model_sha256"
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
# Exactly what a fitted XGBoost / LightGBM scikit-learn wrapper holds (nothing else of those packages:
# their callbacks write files). LightGBM's booster keeps best_score as defaultdict(OrderedDict).
LIBRARY_TYPES = frozenset(
    {
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "collections.OrderedDict",
    }
)
# Callables under the trusted packages that read files, compile or execute code: never trusted by prefix
# (skops can call a trusted callable with arguments from the file), only when named exactly in extras.
DENIED_PREFIXES = (
    "numpy.testing",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.ctypeslib",
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "numpy.lib.format",
    "numpy.lib._format_impl",
    "numpy.load",
    "numpy.save",
    "numpy.fromfile",
    "numpy.memmap",
    "numpy.genfromtxt",
    "scipy.io",
    "scipy._lib",
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._testing",
)
SKOPS, PICKLE, CLOUDPICKLE = "skops", "pickle", "cloudpickle"
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
_RUN_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+)$")


@dataclass(frozen=True)
class ModelLoadPolicy:
    """
    What a load may do. The defaults are the secure ones.

    :param allow_pickle: load pickle/cloudpickle model files (they can run arbitrary code).
    :param extra_trusted_types: skops types trusted besides the provider's allowlist: exact names
        (``my_pkg.models.MyEstimator``) or prefixes ending in ``.`` (``my_pkg.``).
    :param allow_cloudpickle_fallback: when logging, save a model skops cannot serialise with
        cloudpickle (loading it then needs ``allow_pickle``); otherwise such a model fails the task.
    :param allow_unverified: load a model that has no recorded sha256 (logged by older code).
    """

    allow_pickle: bool = False
    extra_trusted_types: tuple[str, ...] = field(default_factory=tuple)
    allow_cloudpickle_fallback: bool = False
    allow_unverified: bool = False

    @classmethod
    def from_args(
        cls,
        *,
        allow_pickle: Any = False,
        extra_trusted_types: Any = None,
        allow_cloudpickle_fallback: Any = False,
        allow_unverified: Any = False,
    ) -> ModelLoadPolicy:
        """A policy from operator arguments (rendered templates); a wrong type fails naming the argument."""
        flags = {
            "allow_pickle": allow_pickle,
            "allow_cloudpickle_fallback": allow_cloudpickle_fallback,
            "allow_unverified": allow_unverified,
        }
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise InvalidInputError(f"{name} must be true or false, got {value!r}")
        extras = extra_trusted_types or ()
        if isinstance(extras, str) or not all(isinstance(t, str) and t.strip() for t in extras):
            raise InvalidInputError(
                f"extra_trusted_types must be a list of type names, got {extra_trusted_types!r}"
            )
        return cls(
            allow_pickle=allow_pickle,
            extra_trusted_types=tuple(t.strip() for t in extras),
            allow_cloudpickle_fallback=allow_cloudpickle_fallback,
            allow_unverified=allow_unverified,
        )

    def is_trusted(self, type_name: str) -> bool:
        """Whether a type skops reports as untrusted is on the provider's allowlist (or the extras)."""
        for extra in self.extra_trusted_types:
            if type_name == extra or (extra.endswith(".") and type_name.startswith(extra)):
                return True
        if type_name in LIBRARY_TYPES:
            return True
        if type_name.startswith(DENIED_PREFIXES):
            return False
        return type_name.startswith(TRUSTED_PREFIXES)

    def refused_types(self, type_names: Iterable[str]) -> list[str]:
        return sorted({t for t in type_names if not self.is_trusted(t)})


@dataclass(frozen=True)
class ModelArtifact:
    """A downloaded sklearn model directory: its serialisation format, data file and digest."""

    directory: Path
    serialization_format: str
    data_file: Path
    digest: str


def _file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def read_artifact(directory: str | os.PathLike[str], what: str) -> ModelArtifact:
    """
    The sklearn flavor of the model in ``directory`` (nothing deserialised). Its digest is the sha256
    of the lines ``<name>\\0<sha256 of the file>\\n`` for ``MLmodel`` and the serialised model file.
    """
    root = Path(directory).resolve()
    if (found := _sklearn_flavor(root / "MLmodel")) is None:
        raise InvalidInputError(
            f"{what}: the artifact is not a scikit-learn model logged by MLflow (no readable sklearn "
            "flavor in its MLmodel); refusing to load it"
        )
    flavor, relative = found
    data_file = (root / relative).resolve()
    if root not in data_file.parents or not data_file.is_file():
        raise InvalidInputError(f"{what}: MLmodel names the model file {relative!r}, not a file of the model")
    fmt = str(flavor.get("serialization_format") or PICKLE)
    if fmt not in (SKOPS, PICKLE, CLOUDPICKLE):
        raise InvalidInputError(f"{what}: unknown serialization format {fmt!r}")
    sha = hashlib.sha256()
    for name, path in (("MLmodel", root / "MLmodel"), (relative, data_file)):
        sha.update(f"{name}\0{_file_sha256(path)}\n".encode())
    return ModelArtifact(root, fmt, data_file, sha.hexdigest())


def model_digest(directory: str | os.PathLike[str]) -> str:
    """The sha256 recorded for a logged model directory (see :func:`read_artifact`)."""
    return read_artifact(directory, f"model at {directory}").digest


def parse_model_uri(model_uri: str) -> tuple[str, str, str]:
    """``("run", run_id, path)`` or ``("version", name, version)``; other URIs are refused."""
    if m := _RUN_URI.match(model_uri):
        return "run", m["run_id"], m["path"]
    if m := _VERSION_URI.match(model_uri):
        return "version", m["name"], m["version"]
    raise InvalidInputError(
        f"{model_uri!r}: the provider loads only runs:/<run_id>/<path> and models:/<name>/<version> URIs "
        "(their sha256 is recorded)"
    )


def check_digest(artifact: ModelArtifact, expected: str | None, policy: ModelLoadPolicy, what: str) -> None:
    """Refuse unless the artifact's digest is the recorded one (or none is and the policy allows that)."""
    if expected is None:
        if policy.allow_unverified:
            return
        raise InvalidInputError(
            f"{what} has no recorded sha256 (tag {SHA256_TAG!r}): it was logged before the provider "
            f"recorded one, or not by TrainModelOperator; its artifact (sha256 {artifact.digest}) cannot "
            "be verified. Retrain and register it, or opt in with allow_unverified_models=True"
        )
    if expected != artifact.digest:
        raise InvalidInputError(
            f"{what}: the model artifact was changed after it was logged: expected sha256 {expected}, "
            f"found {artifact.digest}; refusing to load it"
        )


def check_loadable(artifact: ModelArtifact, policy: ModelLoadPolicy, what: str) -> list[str]:
    """The skops types to pass as trusted; refuses what the policy does not allow (nothing is loaded)."""
    if artifact.serialization_format != SKOPS:
        if policy.allow_pickle:
            return []
        raise InvalidInputError(
            f"{what} is serialised with {artifact.serialization_format}, which can run arbitrary code when "
            "loaded; refusing it (opt in with allow_pickle=True only for a trusted registry)"
        )
    import skops.io as sio

    try:
        untrusted = list(sio.get_untrusted_types(file=artifact.data_file))
    except Exception as err:  # a corrupt or foreign file: skops' own error text says what
        raise InvalidInputError(f"{what}: cannot read the skops file ({type(err).__name__}: {err})") from None
    refused = policy.refused_types(untrusted)
    if refused:
        raise InvalidInputError(
            f"{what}: the skops file holds type(s) outside the provider's allowlist (scikit-learn, numpy, "
            f"scipy, the XGBoost/LightGBM wrappers and extra_trusted_types): {', '.join(refused)}; "
            "refusing to load it"
        )
    return untrusted


def deserialize(artifact: ModelArtifact, trusted: Sequence[str], policy: ModelLoadPolicy, what: str) -> Any:
    """Load a checked artifact (:func:`check_digest` and :func:`check_loadable` first)."""
    if artifact.serialization_format == SKOPS:
        import skops.io as sio

        try:
            return sio.load(artifact.data_file, trusted=list(trusted))
        except Exception as err:  # a trusted type refusing its state (e.g. a booster's corrupt bytes)
            raise InvalidInputError(
                f"{what}: the skops file does not load ({type(err).__name__}: {str(err)[:500]})"
            ) from None
    if not policy.allow_pickle:  # check_loadable refused already; never reach pickle by mistake
        raise InvalidInputError(f"{what}: pickle deserialization is not allowed")
    with open(artifact.data_file, "rb") as f:
        if artifact.serialization_format == CLOUDPICKLE:
            import cloudpickle

            return cloudpickle.load(f)
        return pickle.load(f)


def skops_options(model: Any, policy: ModelLoadPolicy) -> dict[str, Any]:
    """
    ``mlflow.sklearn.log_model`` options: skops, refusing a model the provider could not load back
    (a type outside the allowlist); cloudpickle only when skops cannot serialise it and the policy opts in.
    """
    import skops.io as sio

    try:
        untrusted = list(sio.get_untrusted_types(data=sio.dumps(model)))
    except Exception as err:  # skops refuses some estimators
        if policy.allow_cloudpickle_fallback:
            return {"serialization_format": CLOUDPICKLE}
        raise InvalidInputError(
            f"skops cannot serialise the {type(model).__name__} model ({type(err).__name__}: {err}); "
            "cloudpickle (which runs code at load) is used only with allow_cloudpickle=True"
        ) from None
    refused = policy.refused_types(untrusted)
    if refused:
        raise InvalidInputError(
            f"the {type(model).__name__} model holds type(s) outside the provider's skops allowlist: "
            f"{', '.join(refused)}; it could not be loaded back. Name them in extra_trusted_types"
        )
    return {"serialization_format": SKOPS, "skops_trusted_types": untrusted}


def download_model(model_uri: str, dst: str) -> str:
    """
    The logged model at ``model_uri`` downloaded into ``dst`` (inside the caller's session). For a
    registered version only what loading reads is fetched, ``MLmodel`` and the serialised model (not
    MLflow's environment files and examples); a ``runs:/`` URI is left to MLflow's own resolution.
    """
    import mlflow

    if parse_model_uri(model_uri)[0] != "version":
        return str(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst))
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo: Any = get_artifact_repository(model_uri)
    repo.download_artifacts("MLmodel", dst)
    if (relative := _model_file(Path(dst) / "MLmodel")) is not None:
        repo.download_artifacts(relative, dst)
    return dst


def _sklearn_flavor(mlmodel: Path) -> tuple[Any, str] | None:
    """The sklearn flavor in an ``MLmodel`` file and the model file it names; None when unreadable."""
    import yaml

    try:
        flavor = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))["flavors"]["sklearn"]
        return flavor, str(flavor["pickled_model"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return None


def _model_file(mlmodel: Path) -> str | None:
    """The model file ``mlmodel`` names when it is a plain relative path, else None (:func:`read_artifact`
    then says what is wrong)."""
    relative = (_sklearn_flavor(mlmodel) or (None, ""))[1]
    parts = Path(relative).parts
    plain = bool(parts) and not relative.startswith(("/", "\\")) and ".." not in parts and ":" not in relative
    return relative if plain else None


def logged_digest(model_uri: str) -> str:
    """The sha256 of the model just logged, as stored (inside the caller's session)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        return model_digest(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))


def signature_inputs(artifact: ModelArtifact) -> list[ColumnSpec] | None:
    """The logged input signature's columns (``None`` when the model has no column signature)."""
    from mlflow.models import Model

    signature = Model.load(str(artifact.directory / "MLmodel")).signature
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return None
    return [
        ColumnSpec(str(spec.name), str(getattr(spec.type, "name", spec.type)), bool(spec.required))
        for spec in signature.inputs.inputs
    ]


# Distributions a logged sklearn model needs at load time; versions are read from this environment.
_PIP_DISTRIBUTIONS = ("scikit-learn", "pandas", "numpy", "scipy", "skops", "cloudpickle")
# A model holding one of these libraries' estimators needs the first of its distributions installed.
_LIBRARY_DISTRIBUTIONS = {"xgboost": ("xgboost", "xgboost-cpu"), "lightgbm": ("lightgbm",)}


def _libraries_in(model: Any) -> set[str]:
    members = [model]
    if callable(getattr(model, "get_params", None)):
        members += list(model.get_params(deep=True).values())
    return {type(m).__module__.split(".")[0] for m in members} & set(_LIBRARY_DISTRIBUTIONS)


def pip_requirements(model: Any = None) -> list[str]:
    """
    Pinned requirements of a logged sklearn model (never inferred by MLflow: that costs seconds), with
    XGBoost's or LightGBM's distribution when ``model`` holds one of their estimators.
    """
    from importlib.metadata import PackageNotFoundError, version

    libraries = sorted(_libraries_in(model)) if model is not None else []
    pins = []
    for choices in (*((d,) for d in _PIP_DISTRIBUTIONS), *(_LIBRARY_DISTRIBUTIONS[lib] for lib in libraries)):
        for dist in choices:  # the first one installed (xgboost or xgboost-cpu)
            try:
                pins.append(f"{dist}=={version(dist)}")
                break
            except PackageNotFoundError:
                continue
    return pins


@contextmanager
def quiet_serialization() -> Iterator[None]:
    """
    skops looks functions up by scanning every loaded module; Airflow's deprecated-attribute shims
    answer with a warning each (over 1000 lines per model in a task log). Silence them for the block.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
