"""Operator extra links: names and XCom keys, persist(), a get_link() that never breaks the UI, no hooks."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import BaseOperatorLink
from airflow.sdk.types import TaskInstanceKey
from support import context

import mlops_provider.links
from mlops_provider.get_provider_info import get_provider_info

# The names are what users see on the task page; the keys are what operators push.
EXPECTED = {
    "MLflowRunLink": ("MLflow run", "mlflow_run_url"),
    "MLflowModelVersionLink": ("MLflow model version", "mlflow_model_version_url"),
    "ValidationReportLink": ("Validation report", "validation_report_url"),
    "DriftReportLink": ("Drift report", "drift_report_url"),
    "ModelCardLink": ("Model card", "model_card_url"),
}
TI_KEY = TaskInstanceKey(dag_id="links_test", task_id="task", run_id="manual__1", try_number=1)
LINK_MODULES = sorted(
    f"{mlops_provider.links.__name__}.{m.name}" for m in pkgutil.iter_modules(mlops_provider.links.__path__)
)


def _defined_links() -> dict[str, type[BaseOperatorLink]]:
    """Every concrete link class defined in a module of mlops_provider.links."""
    found: dict[str, type[BaseOperatorLink]] = {}
    for name in LINK_MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseOperatorLink)
                and obj.__module__ == name
                and not inspect.isabstract(obj)
            ):
                found[f"{name}.{obj.__qualname__}"] = obj
    return found


def _registered_links() -> dict[str, type[BaseOperatorLink]]:
    links: dict[str, type[BaseOperatorLink]] = {}
    for path in get_provider_info()["extra-links"]:  # type: ignore[union-attr]
        module, _, cls = str(path).rpartition(".")
        links[str(path)] = getattr(importlib.import_module(module), cls)
    return links


LINKS = _registered_links()
LINK_IDS = [cls.__name__ for cls in LINKS.values()]


def test_every_link_class_is_registered() -> None:
    assert set(_defined_links()) == set(LINKS), (
        "get_provider_info()['extra-links'] must list every link class"
    )
    assert sorted(cls.__name__ for cls in LINKS.values()) == sorted(EXPECTED)


@pytest.mark.parametrize("link_cls", LINKS.values(), ids=LINK_IDS)
def test_name_and_key(link_cls: type[Any]) -> None:
    link = link_cls()
    assert (link.name, link_cls.key) == EXPECTED[link_cls.__name__]


def test_names_and_keys_are_unique() -> None:
    assert len({cls.name for cls in LINKS.values()}) == len(LINKS)
    assert len({cls.key for cls in LINKS.values()}) == len(LINKS)


@pytest.mark.parametrize("link_cls", LINKS.values(), ids=LINK_IDS)
def test_persist_pushes_the_url_under_its_key(link_cls: type[Any]) -> None:
    ctx = context()
    link_cls.persist(ctx, "http://mlflow.example:5000/#/x")
    assert ctx["ti"].pushed == {link_cls.key: "http://mlflow.example:5000/#/x"}


@pytest.mark.parametrize("url", [None, ""])
@pytest.mark.parametrize("link_cls", LINKS.values(), ids=LINK_IDS)
def test_persist_pushes_nothing_without_a_url(link_cls: type[Any], url: str | None) -> None:
    ctx = context()
    link_cls.persist(ctx, url)
    assert ctx["ti"].pushed == {}


@pytest.mark.parametrize("link_cls", LINKS.values(), ids=LINK_IDS)
def test_get_link_is_empty_outside_a_task(link_cls: type[Any]) -> None:
    """No task runner here, so the real XCom lookup fails: the link is "", not an exception."""
    assert link_cls().get_link(None, ti_key=TI_KEY) == ""


@pytest.mark.parametrize("link_cls", LINKS.values(), ids=LINK_IDS)
def test_get_link_reads_its_key_and_survives_lookup_errors(
    link_cls: type[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.execution_time.xcom import XCom

    asked: list[tuple[str, TaskInstanceKey]] = []
    answer: dict[str, Any] = {}

    def get_value(cls: type[Any], *, key: str, ti_key: TaskInstanceKey, **_: Any) -> Any:
        asked.append((key, ti_key))
        if isinstance(answer["value"], Exception):
            raise answer["value"]
        return answer["value"]

    monkeypatch.setattr(XCom, "get_value", classmethod(get_value))
    link = link_cls()

    answer["value"] = "http://mlflow.example:5000/#/models/m/versions/3"
    assert link.get_link(None, ti_key=TI_KEY) == answer["value"]
    assert asked == [(link_cls.key, TI_KEY)]

    for failure in (RuntimeError("API server unreachable"), KeyError("no such XCom"), ValueError("bad JSON")):
        answer["value"] = failure
        assert link.get_link(None, ti_key=TI_KEY) == "", f"{failure!r} must not break the UI"

    for not_a_url in (None, 42, {"url": "x"}):
        answer["value"] = not_a_url
        assert link.get_link(None, ti_key=TI_KEY) == ""


def test_links_do_not_load_hooks_at_runtime() -> None:
    """Importing every links module (in a fresh interpreter) loads no mlops_provider.hooks module."""
    probe = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mlops_provider.hooks'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *LINK_MODULES], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing {LINK_MODULES} loaded hooks: {loaded}"


def test_links_modules_have_no_hooks_import_at_all() -> None:
    """Not even under ``if TYPE_CHECKING:`` (the import contract counts those too)."""
    offenders = []
    for name in LINK_MODULES:
        path = Path(importlib.import_module(name).__file__ or "")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            if any(t == "mlops_provider.hooks" or t.startswith("mlops_provider.hooks.") for t in targets):
                offenders.append(f"{name}:{node.lineno}")
    assert not offenders, f"links import hooks: {offenders}"
