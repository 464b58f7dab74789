"""The retrain DAG's trigger form: same Params as ever, validated as ever, cheaper to build."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import jsonschema
import pytest
from airflow.sdk import DAG, CronTriggerTimetable
from airflow.sdk.definitions.param import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from mlops_provider.templates import build_dags
from mlops_provider.templates.params import cached_schema_checks, retrain_params

ROOT = Path(__file__).resolve().parents[3]
EXPECTED = {
    "training_data": (
        None,
        {"type": ["null", "string"], "title": "Training data override"},
        "Path, glob or URI to train on instead of data.train (leave empty for the config's). Accepted only "
        "inside the config's data.allowed_training_prefixes; none listed: no override.",
    ),
    "skip_vs_champion": (
        False,
        {"type": "boolean", "title": "Skip the champion comparison"},
        "Forced retrain: only where the config sets promotion.allow_forced: true. The absolute gates still "
        "apply; a reason is required and recorded with who triggered the run.",
    ),
    "force_reason": (
        "",
        {"type": "string", "title": "Reason for a forced retrain"},
        "Recorded on the model version, with who triggered the run, when the champion comparison is skipped.",
    ),
    "approval": (
        "manual",
        {"enum": ["auto", "manual"], "title": "Approval"},
        "auto: the gate decides; manual: a person approves in the Airflow UI. A trigger can only make the "
        "gate stricter: auto is refused when the config's promotion.approval is manual.",
    ),
}


def scheduled_dag(dag_id: str, params: dict) -> DAG:
    """A DAG with a time schedule: Airflow validates its Params' defaults when it is built."""
    return DAG(
        dag_id,
        schedule=CronTriggerTimetable("0 2 * * *", timezone="UTC"),
        start_date=datetime(2024, 1, 1),
        params=params,
    )


def test_params_are_the_trigger_form() -> None:
    params = retrain_params("manual")
    assert list(params) == list(EXPECTED)
    for name, (default, schema, description) in EXPECTED.items():
        param = params[name]
        assert type(param).__module__ + "." + type(param).__name__ == "airflow.sdk.definitions.param.Param"
        assert (param.value, param.schema, param.description) == (default, schema, description), name


def test_the_block_restores_jsonschema_and_nests() -> None:
    original = jsonschema.validate
    with cached_schema_checks():
        assert jsonschema.validate is not original
        with cached_schema_checks():
            pass
        assert jsonschema.validate is not original
    assert jsonschema.validate is original
    with pytest.raises(RuntimeError), cached_schema_checks():
        raise RuntimeError("boom")
    assert jsonschema.validate is original


def test_wrong_values_are_still_refused_inside_the_block() -> None:
    with cached_schema_checks():
        for _ in range(2):  # the second time comes from the cache
            params = ParamsDict(retrain_params("auto"))
            assert params.validate()["approval"] == "auto"
            for name, bad in (("skip_vs_champion", "yes"), ("approval", "sometimes"), ("force_reason", 3)):
                with pytest.raises(ParamValidationError, match=name):
                    ParamsDict(retrain_params("auto")).update({name: bad})
        with pytest.raises(ValueError, match="not allowed to define a Schedule"):
            scheduled_dag("bad_default", retrain_params("sometimes"))


def test_a_bad_schema_fails_every_time_and_odd_calls_fall_through() -> None:
    with cached_schema_checks():
        for _ in range(2):
            with pytest.raises(jsonschema.SchemaError):
                jsonschema.validate(1, {"type": "no-such-type"})
        # a custom validator class or arguments bypass the cache, with the library's behaviour
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate("x", {"type": "integer"}, cls=jsonschema.Draft7Validator)
        jsonschema.validate(3, {"type": "integer"}, format_checker=None)


def test_factory_dags_keep_the_params_and_a_wrong_trigger_is_refused() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    original = jsonschema.validate
    dags = {dag.dag_id: dag for dag in build_dags(ROOT / "dags" / "configs", only_dag_id=None)}
    assert jsonschema.validate is original
    retrain = next(dag for dag_id, dag in dags.items() if dag_id.endswith("_retrain"))
    assert list(retrain.params) == list(EXPECTED)
    served = DagSerialization.from_dict(DagSerialization.to_dict(retrain))  # what the API server holds
    assert served.params.deep_merge({"skip_vs_champion": True, "force_reason": "hotfix"}).validate()
    with pytest.raises(ParamValidationError, match="skip_vs_champion"):
        served.params.deep_merge({"skip_vs_champion": "yes"}).validate()
    from airflow.sdk.definitions.param import process_params

    for task in retrain.tasks:  # what each task sees at run time: the DAG's Params, with the trigger's conf
        seen = process_params(retrain, task, {"approval": "manual"}, suppress_exception=False)
        assert list(seen) == list(EXPECTED)
        assert seen["approval"] == "manual"
        with pytest.raises(ParamValidationError, match="approval"):
            process_params(retrain, task, {"approval": "yolo"}, suppress_exception=False)
