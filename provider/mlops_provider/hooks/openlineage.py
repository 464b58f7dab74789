"""OpenLineage lineage of the provider's operators, for data catalogs (Marquez, DataHub, OpenMetadata...).

Airflow's OpenLineage provider calls ``get_openlineage_facets_on_start/complete/failure`` and sends what
they return with its run events; its listener exists only when OpenLineage is configured (a transport),
else nothing here runs. OpenLineage is imported inside functions only (DAG parsing imports none of it).
Names (https://openlineage.io/docs/spec/naming): local files ``file`` + absolute path, object stores
``s3://bucket`` + key; a glob or folder is one dataset, the folder before its first pattern segment (as
Spark names file data). A run's logged model is (tracking URI, ``runs/<run_id>/model``), a registered
version (registry URI, ``models/<name>/<version>``): MLflow's ``models:/<name>/<version>`` as a path, so
versions group under ``models/<name>/`` and the namespace says which registry. No credentials, query or
fragment of a URI is ever reported. Facets: ``schema``, ``version`` (data fingerprint; model version),
``datasetType``, ``input/outputStatistics``; ``mlops_data``/``mlops_model`` and ``mlops_run`` (custom).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from mlops_provider.core import lineage as tags
from mlops_provider.core.data import GLOB_CHARS

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    Reported = OperatorLineage[Any, Any]

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_URI_CHARS, MAX_TEXT_CHARS, MAX_ITEMS = 4096, 1000, 50
OBJECT_STORES = frozenset({"s3", "s3a", "s3n", "gs", "gcs", "abfs", "abfss", "az", "adl", "wasb", "wasbs"})
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1"})
FACET_SCHEMA = "https://pypi.org/project/airflow-provider-mlops/#{name}"
DATA_FACET, MODEL_FACET, RUN_FACET = "mlops_data", "mlops_model", "mlops_run"
DATA_FIELDS: tuple[str, ...] = ("role", "uri", "fingerprint", "modelName", "modelVersion", "modelUri")
DATA_FIELDS += ("mlflowRunId", "trainingDataUri", "trainingDataFingerprint")
RUN_FIELDS = ("operator", "mlflowRunId", "modelName", "modelVersion", "alias", "status", "details")


def _text(value: Any, limit: int = MAX_URI_CHARS) -> str | None:
    """A usable string (no control characters, no unrendered template), else None."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text or len(text) > limit or "{{" in text or "{%" in text:
        return None
    return None if any(ord(c) < 32 or ord(c) == 127 for c in text) else text


def _split(text: str | None) -> Any:
    try:
        return urlsplit(text) if text else None
    except ValueError:  # a bad IPv6 host
        return None


def _location(uri: Any, base_dir: Any = None) -> tuple[str, str] | None:
    """(namespace, path with any pattern) of a data URI; user info, query and fragment dropped."""
    text = _text(uri) if isinstance(uri, str) else None
    parts = _split(text)
    if text is None or parts is None:
        return None
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path (or a Windows drive letter)
        host = (parts.hostname or "") if scheme == "file" else ""
        path = parts.path if scheme == "file" else text
        if not os.path.isabs(path):
            path = os.path.join(_text(base_dir) or os.getcwd(), path)
        namespace = "file" if host in LOCAL_HOSTS else f"file://{host}"
        return namespace, os.path.normpath(path)
    host = parts.netloc.rpartition("@")[2]
    if not host and scheme in OBJECT_STORES:
        return None
    return f"{scheme}://{host}", parts.path or "/"


def dataset_id(uri: Any, base_dir: Any = None) -> tuple[str, str, str] | None:
    """(namespace, name) of the data at ``uri``, and ``uri`` with no credentials, query or fragment."""
    found = _location(uri, base_dir)
    if found is None:
        return None
    (namespace, path), segments = found, found[1].split("/")
    glob_at = next((i for i, s in enumerate(segments) if GLOB_CHARS & set(s)), len(segments))
    name = "/".join(segments[:glob_at]) or "/"
    if namespace.split("://")[0] in OBJECT_STORES:
        name = name.lstrip("/") or "/"
    return namespace, name, f"file://{path}" if namespace == "file" else f"{namespace}{path}"


def mlflow_namespace(uri: Any) -> str | None:
    """An MLflow tracking or registry URI as a namespace: scheme, host and path, never credentials."""
    text = _text(uri)
    if text is None or "://" not in text:  # a bare word: "databricks", "databricks-uc"
        return text if text and text.replace("-", "").replace("_", "").isalnum() else None
    parts = _split(text)
    host = parts.netloc.rpartition("@")[2] if parts else ""
    return f"{parts.scheme.lower()}://{host}{parts.path.rstrip('/')}" if parts and parts.scheme else None


class DatasetRef:  # plain classes: a dataclass costs ~0.5 ms at import, i.e. at every DAG parse
    """A dataset: its id, its ``mlops_data``/``mlops_model`` facet fields, the standard facets' values."""

    def __init__(self, namespace: str, name: str, facet: dict[str, Any], model: bool = False, **values: Any):
        self.namespace, self.name, self.facet, self.model = namespace, name, facet, model
        self.version: str | None = values.get("version")
        self.rows: int | None = values.get("rows")
        self.schema: list[tuple[str, str | None]] = values.get("schema") or []


class Lineage:
    """What a task run reports: datasets in and out, and the ``mlops_run`` facet's fields."""

    def __init__(self, inputs: Iterable[Ref] = (), outputs: Iterable[Ref] = (), run: Any = None) -> None:
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.run: dict[str, Any] = dict(run or {})


Ref = DatasetRef | None


def data_ref(uri: Any, role: str, base_dir: Any = None, rows: Any = None) -> DatasetRef | None:
    """A data dataset playing ``role`` (``training_data``, ``predictions``...)."""
    found = dataset_id(uri, base_dir)
    if found is None:
        return None
    count = rows if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0 else None
    return DatasetRef(found[0], found[1], {"role": role, "uri": found[2]}, rows=count)


def logged_model_ref(tracking_uri: Any, run_id: Any) -> DatasetRef | None:
    """The model an MLflow run logged: (tracking URI, ``runs/<run_id>/model``)."""
    namespace, run = mlflow_namespace(tracking_uri), _text(run_id, MAX_TEXT_CHARS)
    if namespace is None or run is None:
        return None
    facet = {"role": "logged_model", "modelUri": f"runs:/{run}/model", "mlflowRunId": run}
    return DatasetRef(namespace, f"runs/{run}/model", facet, model=True)


def model_version_ref(registry_uri: Any, model_name: Any, version: Any, **facts: Any) -> DatasetRef | None:
    """A registered model version: (registry URI, ``models/<name>/<version>``); ``features`` its schema."""
    namespace = mlflow_namespace(registry_uri)
    name, number = _text(model_name, MAX_TEXT_CHARS), _text(version, MAX_TEXT_CHARS)
    if namespace is None or name is None or number is None:
        return None
    schema: list[tuple[str, str | None]] = [(str(f), None) for f in facts.pop("features", None) or []]
    facet = {"role": "model_version", "modelName": name, "modelVersion": number, **facts}
    facet["modelUri"] = f"models:/{name}/{number}"
    return DatasetRef(namespace, f"models/{name}/{number}", facet, True, version=number, schema=schema)


def version_facts(version_tags: Mapping[str, Any]) -> dict[str, Any]:
    """The ``mlops_model`` fields a version's lineage tags give (training run, data, features)."""
    try:
        features = json.loads(version_tags.get(tags.FEATURES) or "[]")
    except ValueError:
        features = []
    return {
        "mlflowRunId": _text(version_tags.get(tags.TRAINING_RUN_ID), MAX_TEXT_CHARS),
        "trainingDataFingerprint": _text(version_tags.get(tags.TRAINING_DATA_FINGERPRINT), MAX_TEXT_CHARS),
        "trainingDataUri": (dataset_id(version_tags.get(tags.TRAINING_DATA_URI)) or (None,) * 3)[2],
        "features": [f for f in features if isinstance(f, str)][:1000] if isinstance(features, list) else [],
    }


@functools.cache
def _facet_types() -> tuple[type[Any], type[Any]]:
    import attr
    from openlineage.client.generated.base import DatasetFacet, RunFacet

    def make(name: str, base: type[Any], fields: tuple[str, ...]) -> type[Any]:
        body = {"_get_schema": staticmethod(lambda: FACET_SCHEMA.format(name=name))}
        attrs: dict[str, Any] = {f: attr.ib(default=None) for f in fields}
        return attr.make_class(name, attrs, (base,), class_body=body)

    return make("MLOpsDatasetFacet", DatasetFacet, DATA_FIELDS), make("MLOpsRunFacet", RunFacet, RUN_FIELDS)


def _dataset(ref: DatasetRef, output: bool) -> Any:
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import dataset_type_dataset, dataset_version_dataset, schema_dataset
    from openlineage.client.facet_v2 import input_statistics_input_dataset as ins
    from openlineage.client.facet_v2 import output_statistics_output_dataset as outs

    fields = {k: v for k, v in ref.facet.items() if v is not None}
    facets: dict[str, Any] = {MODEL_FACET if ref.model else DATA_FACET: _facet_types()[0](**fields)}
    if ref.version:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=ref.version)
    if ref.schema:
        columns = [schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in ref.schema]
        facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=columns)
    if ref.model:
        facets["datasetType"] = dataset_type_dataset.DatasetTypeDatasetFacet("MODEL", subType="MLflow")
    stats: dict[str, Any] = {}
    if ref.rows is not None and output:
        stats["outputStatistics"] = outs.OutputStatisticsOutputDatasetFacet(rowCount=ref.rows)
    elif ref.rows is not None:
        stats["inputStatistics"] = ins.InputStatisticsInputDatasetFacet(rowCount=ref.rows)
    if output:
        return OutputDataset(ref.namespace, ref.name, facets=facets, outputFacets=stats)
    return InputDataset(ref.namespace, ref.name, facets=facets, inputFacets=stats)


def to_operator_lineage(found: Lineage, operator: str) -> Reported:
    """``found`` as the OpenLineage provider's ``OperatorLineage`` (each dataset once)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    def unique(refs: list[Ref]) -> list[DatasetRef]:  # the first of each (namespace, name)
        seen: dict[tuple[str, str], DatasetRef] = {}
        return [seen.setdefault(k, r) for r in refs if r and (k := (r.namespace, r.name)) not in seen]

    run = {k: _text(v, MAX_TEXT_CHARS) for k, v in found.run.items() if k != "details"}
    details = {
        k: v[:MAX_ITEMS] if isinstance(v, list) else v
        for k, v in (found.run.get("details") or {}).items()
        if v not in (None, {})
    }
    return OperatorLineage(
        inputs=[_dataset(r, output=False) for r in unique(found.inputs)],
        outputs=[_dataset(r, output=True) for r in unique(found.outputs)],
        run_facets={RUN_FACET: _facet_types()[1](operator=operator, details=details or None, **run)},
    )


class OpenLineageMixin:
    """The methods Airflow's OpenLineage provider calls. A subclass below goes among an operator's bases
    (before ``BaseOperator``); ``execute`` returns ``self.keep_for_lineage(summary)``. The specs name keys
    of the kept summary, else the operator's (rendered) arguments: ``(role, uri key, rows key)``."""

    lineage_inputs: tuple[tuple[str, str, str | None], ...] = ()  # (role, URI key, rows key)
    lineage_outputs: tuple[tuple[str, str, str | None], ...] = ()
    lineage_model: tuple[str, str] | None = None  # (model name, version): a model version read
    lineage_details: tuple[str, ...] = ()  # summary keys copied into mlops_run.details
    _lineage_summary: Mapping[str, Any] = {}  # what execute returned (replaced, never changed)
    _lineage_extra: Mapping[str, Any] = {}

    def keep_for_lineage(self, summary: T, **extra: Any) -> T:
        """Keep ``summary`` (and small ``extra`` facts) for the end events; returns ``summary``."""
        self._lineage_summary = summary if isinstance(summary, Mapping) else {}
        self._lineage_extra = extra
        return summary

    def get_openlineage_facets_on_start(self) -> Reported | None:
        return self._openlineage("start")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Reported | None:
        return self._openlineage("complete")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Reported | None:
        return self._openlineage("failure")

    def _openlineage(self, phase: str) -> Reported | None:
        try:
            return to_operator_lineage(self.lineage(phase), type(self).__name__)
        except ImportError:  # no OpenLineage provider
            return None
        except Exception:  # lineage never fails a task, nor hides the rest of its event
            log.warning("No OpenLineage datasets for %s (%s)", type(self).__name__, phase, exc_info=True)
            return None

    def lineage(self, phase: str) -> Lineage:
        """What to report at ``phase`` (``start``, ``complete``, ``failure``); only ``complete`` may read."""
        kept, ins, outs = self._lineage_summary, self.lineage_inputs, self.lineage_outputs
        found = Lineage([self._ref(phase, *s) for s in ins], [self._ref(phase, *s) for s in outs])
        found.run.update(mlflowRunId=_text(self._pick("run_id"), MAX_TEXT_CHARS), status=kept.get("status"))
        found.run["modelName"] = _text(self._pick("model_name"))
        found.run["details"] = {k: kept.get(k) for k in self.lineage_details}
        if self.lineage_model:
            name, version = (self._pick(n) for n in self.lineage_model)
            found.inputs.append(self._version_ref(name, version, phase))
            found.run.update(modelVersion=_text(version), alias=_text(getattr(self, "alias", None)))
        return found

    def _pick(self, names: str) -> Any:
        """The first of ``names`` (``a|b``) set in the kept summary, else among the (rendered) arguments."""
        keys = names.split("|")
        found = [self._lineage_summary.get(n) for n in keys] + [getattr(self, n, None) for n in keys]
        return next((value for value in found if value not in (None, "")), None)

    def _ref(self, phase: str, role: str, names: str, rows: str | None = None) -> DatasetRef | None:
        if role == "logged_model":
            return logged_model_ref(self._mlflow_uri("tracking_uri", phase), self._pick(names))
        count = self._lineage_summary.get(rows) if rows else None
        return data_ref(self._pick(names), role, getattr(self, "base_dir", None), count)

    def _mlflow_uri(self, which: str, phase: str) -> str | None:
        """The tracking/registry URI the task used (its hook's settings); resolved again only at the end."""
        hook = self.__dict__.get("hook")
        inner = getattr(hook, "__dict__", {})
        cached = [getattr(h, "_settings", None) for h in (hook, *map(inner.get, ("registry", "monitoring")))]
        settings = next((found for found in cached if found is not None), None)
        if settings is None and phase == "complete":
            from mlops_provider.hooks.mlflow import MLflowHook

            conn_id = getattr(self, "mlflow_conn_id", None) or MLflowHook.default_conn_name
            settings = MLflowHook(mlflow_conn_id=conn_id).settings
        return getattr(settings, which, None)

    def _version_ref(self, model_name: Any, version: Any, phase: str, **facts: Any) -> DatasetRef | None:
        registry = self._mlflow_uri("registry_uri", phase) if version not in (None, "") else None
        return model_version_ref(registry, model_name, version, **facts)


class ValidationLineageMixin(OpenLineageMixin):
    lineage_inputs = (("validated_data", "data_uri", "rows"),)
    lineage_outputs = (("validation_result", "result_uri", None), ("validation_report", "report_uri", None))
    lineage_details = ("evaluated", "failed", "rows")


class ScoringLineageMixin(OpenLineageMixin):
    lineage_inputs = (("scoring_batch", "data_uri", "rows"),)
    lineage_outputs = (
        ("predictions", "output_uri", "rows"),
        ("shadow_predictions", "shadow_output_uri", None),
    )
    lineage_model = ("model_name", "version")
    lineage_details = ("monitoring_run_id", "shadow")


class DriftLineageMixin(OpenLineageMixin):
    lineage_inputs = (("current", "current_uri", "n_current"), ("reference", "reference_uri", "n_reference"))
    lineage_outputs = (("drift_report", "report_uri", None), ("drift_summary", "summary_uri", None))
    lineage_model = ("model_name", "champion_version")
    lineage_details = ("drift_share", "threshold_share", "drifted_columns", "monitoring_run_id")


class PerformanceLineageMixin(OpenLineageMixin):
    lineage_inputs = (("labels", "labels_uri", None),)
    lineage_model = ("model_name", "champion_version")
    lineage_details = ("action", "labels", "monitoring_run_id")


class PromotionLineageMixin(OpenLineageMixin):
    lineage_model = ("model_name", "version")


class EvaluationLineageMixin(OpenLineageMixin):
    lineage_inputs = (("logged_model", "run_id", None),)


class TrainingLineageMixin(OpenLineageMixin):
    """In: the training data (fingerprint, schema, rows). Out: the logged model and its holdout."""

    lineage_inputs = (("training_data", "training_data_uri|data_uri", None),)
    lineage_outputs = (("logged_model", "run_id", None), ("holdout", "holdout_uri", "n_holdout"))
    lineage_details = ("experiment_id",)

    def lineage(self, phase: str) -> Lineage:
        found, kept, extra = super().lineage(phase), self._lineage_summary, self._lineage_extra
        (data, model), dtypes = (found.inputs[0], found.outputs[0]), extra.get("dtypes")
        fingerprint = _text(kept.get("training_data_fingerprint"), MAX_TEXT_CHARS)
        if data is not None:
            data.version = data.facet["fingerprint"] = fingerprint
            data.rows = extra.get("rows")
            data.schema = [(str(c), _text(str(t))) for c, t in getattr(dtypes, "items", dict)()][:1000]
        if model is not None:
            model.facet["trainingDataFingerprint"] = fingerprint
            model.facet["trainingDataUri"] = data and data.facet["uri"]
        trigger = kept.get("trigger")
        found.run["details"]["trigger"] = trigger.get("cause") if isinstance(trigger, Mapping) else None
        return found


class RegistrationLineageMixin(OpenLineageMixin):
    """In: the logged model. Out: the registered version (MLflow run id, training-data fingerprint)."""

    lineage_inputs = (("logged_model", "run_id", None),)

    def lineage(self, phase: str) -> Lineage:
        found = super().lineage(phase)
        name, run_id = found.run["modelName"], found.run["mlflowRunId"]
        version = self._registered(name, run_id) if phase == "complete" and name and run_id else None
        if version is not None:
            facts = version_facts(dict(version.tags or {}))
            found.outputs.append(self._version_ref(name, version.version, phase, **facts))
            found.run["modelVersion"] = str(version.version)
        return found

    def _registered(self, name: str, run_id: str) -> Any:
        """The version registered for ``run_id``: one MLflow search, once the task succeeded."""
        hook = self.__dict__.get("hook")
        if hook is None or "'" in name + run_id:
            return None
        query = f"name = '{name}' and tags.`{tags.TRAINING_RUN_ID}` = '{run_id}'"
        try:
            with hook.client(f"reading the version of run {run_id} for lineage") as client:
                versions = sorted(client.search_model_versions(query), key=lambda v: int(v.version))
        except Exception as err:  # the event still reports the run's model
            log.warning("OpenLineage: the version registered for run %s not read: %s", run_id, err)
            return None
        return versions[0] if versions else None
