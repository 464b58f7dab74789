"""Why a run started (trigger_summary), with the run types a real task context carries."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from airflow.sdk.api.datamodels._generated import DagRunType

from mlops_provider.core.lineage import asset_kind, trigger_summary


@dataclass(frozen=True)
class AssetKey:  # what triggering_asset_events is keyed by: a hashable name and uri
    name: str
    uri: str


def event(uri: str, name: str) -> tuple[AssetKey, list[SimpleNamespace]]:
    asset = AssetKey(name=name, uri=uri)
    return asset, [SimpleNamespace(id=1, timestamp="t", source_dag_id="d", source_run_id="r", extra={})]


@pytest.mark.parametrize(
    ("run_type", "cause"),
    [
        (DagRunType.SCHEDULED, "schedule"),  # the Task SDK's enum: str() of it is "DagRunType.SCHEDULED"
        (DagRunType.MANUAL, "manual"),
        (DagRunType.ASSET_TRIGGERED, "asset"),
        ("scheduled", "schedule"),
        (None, "manual"),
    ],
)
def test_the_run_type_decides_without_asset_events(run_type: object, cause: str) -> None:
    summary = trigger_summary({"dag_run": SimpleNamespace(run_type=run_type)})
    assert summary["cause"] == cause
    assert "DagRunType." not in summary["run_type"]


def test_a_performance_event_wins_over_drift_and_each_event_says_its_kind() -> None:
    drift = event("x-mlops://drift/m", "m_drift")
    performance = event("x-mlops://performance/m", "m_performance")
    other = event("s3://bucket/table", "table")
    context = {
        "dag_run": SimpleNamespace(run_type=DagRunType.ASSET_TRIGGERED),
        "triggering_asset_events": dict([drift, performance, other]),
    }
    summary = trigger_summary(context)
    assert summary["cause"] == "performance"
    assert [e["kind"] for e in summary["drift_events"]] == ["drift", "performance", "asset"]
    only_drift = trigger_summary({**context, "triggering_asset_events": dict([drift])})
    assert only_drift["cause"] == "drift"
    only_other = trigger_summary({**context, "triggering_asset_events": dict([other])})
    assert only_other["cause"] == "asset"


def test_asset_kind_reads_only_the_providers_own_prefixes() -> None:
    assert asset_kind("x-mlops://performance/m") == "performance"
    assert asset_kind("x-mlops://drift/m") == "drift"
    assert asset_kind("x-mlops://performancex") == "asset"
    assert asset_kind(None) == "asset"
