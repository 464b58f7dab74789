"""The provider registers itself: every class path in get_provider_info() imports, entry points resolve."""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points

from mlops_provider import __version__
from mlops_provider.get_provider_info import get_provider_info


def _import(path: str) -> object:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_every_listed_module_and_class_imports():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-mlops"
    assert info["versions"] == [__version__]
    modules = [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for g in info[kind]
        for m in g["python-modules"]
    ]
    assert "mlops_provider.hooks.mlflow" in modules
    for module in modules:
        importlib.import_module(module)
    for link in info["extra-links"]:
        assert inspect.isclass(_import(link))
    for conn in info["connection-types"]:
        hook = _import(conn["hook-class-name"])
        assert hook.conn_type == conn["connection-type"]
        assert hook.default_conn_name == "mlflow_default"
    for plugin in info["plugins"]:
        assert _import(plugin["plugin-class"]).name == plugin["name"]


def test_operator_modules_are_listed():
    """Each operator/sensor/trigger module in the package is registered."""
    import pkgutil

    import mlops_provider

    info = get_provider_info()
    for kind in ("operators", "sensors", "triggers"):
        listed = {m for g in info[kind] for m in g["python-modules"]}
        package = importlib.import_module(f"mlops_provider.{kind}")
        present = {f"mlops_provider.{kind}.{m.name}" for m in pkgutil.iter_modules(package.__path__)}
        assert present == listed, kind
    assert mlops_provider.__version__


def test_entry_points_resolve():
    providers = {ep.value for ep in entry_points(group="apache_airflow_provider")}
    assert "mlops_provider.get_provider_info:get_provider_info" in providers
    plugins = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "mlops"]
    assert plugins
    assert plugins[0].load().name == "mlops"


def test_airflow_sees_provider_and_connection_type():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["airflow-provider-mlops"].version == __version__
    assert "mlflow" in manager.hooks
    assert manager.hooks["mlflow"].hook_class_name == "mlops_provider.hooks.mlflow.MLflowHook"
    widgets = manager.connection_form_widgets
    assert "extra__mlflow__registry_uri" in widgets
    assert widgets["extra__mlflow__token"].is_sensitive
    assert manager.field_behaviours["mlflow"]["relabeling"]["host"] == "Tracking URI"
