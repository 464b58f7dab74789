"""Live performance in MLflow: the scored batches of a window, a version's holdout numbers, and the
alias moves the performance monitor makes (a rollback, a shadow challenger promoted or refused).

Every move goes through :class:`~mlops_provider.hooks.registry.MLflowRegistryHook`: under the registry
lock, only from the champion the monitor judged (else :class:`ChampionChangedError`), read back and
recorded in the alias history, with the decision on the version and as the model's last decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlops_provider.core.gate import CHALLENGER_ALIAS as CHALLENGER
from mlops_provider.core.gate import DECISION_PREFIX
from mlops_provider.core.monitoring import CHECK_TAG, LOGICAL_DATE_TAG, monitoring_experiment
from mlops_provider.core.performance import (
    OUTPUTS_TAG,
    SCORING_CHECK,
    SCORING_TS_METRIC,
    VERSIONS_TAG,
)
from mlops_provider.hooks.model_card import ModelCardHook
from mlops_provider.hooks.models import METRIC_PREFIX as HOLDOUT_PREFIX
from mlops_provider.hooks.monitoring import MonitoringHook

BATCHES_MAX = 10_000


@dataclass(frozen=True)
class ScoredBatch:
    """One scored batch of the window: its prediction files and the versions that scored it."""

    run_id: str
    scoring_date: str
    outputs: dict[str, str | None]
    versions: dict[str, str]

    @property
    def uris(self) -> list[str]:
        return [uri for uri in self.outputs.values() if uri]


def _json_dict(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class PerformanceHook(ModelCardHook):
    """What the performance monitor reads and moves in MLflow (see the module docstring)."""

    @property
    def monitoring(self) -> MonitoringHook:
        return MonitoringHook(mlflow_conn_id=self.mlflow_conn_id)

    def scored_batches(self, model_name: str, start: datetime, end: datetime) -> list[ScoredBatch]:
        """The batches whose scoring date is in ``(start, end]``, oldest first (none without any)."""
        with self.client(f"reading the scored batches of {model_name!r}") as client:
            experiment = client.get_experiment_by_name(monitoring_experiment(model_name))
            if experiment is None:
                return []
            query = (
                f"tags.`{CHECK_TAG}` = '{SCORING_CHECK}' AND metrics.{SCORING_TS_METRIC} > {start.timestamp()}"
                f" AND metrics.{SCORING_TS_METRIC} <= {end.timestamp()}"
            )
            runs = client.search_runs([experiment.experiment_id], query, max_results=BATCHES_MAX)
        if len(runs) >= BATCHES_MAX:
            self.log.warning(
                "More than %d scored batches in the window: only %d are read", BATCHES_MAX, BATCHES_MAX
            )
        batches = [
            ScoredBatch(
                run_id=run.info.run_id,
                scoring_date=str(run.data.tags.get(LOGICAL_DATE_TAG, "")),
                outputs=_json_dict(run.data.tags.get(OUTPUTS_TAG)),
                versions={str(k): str(v) for k, v in _json_dict(run.data.tags.get(VERSIONS_TAG)).items()},
            )
            for run in runs
        ]
        return sorted(batches, key=lambda b: (b.scoring_date, b.run_id))

    def holdout_metrics(self, model_name: str, version: str) -> dict[str, float]:
        """The holdout metrics the version's training run logged (``holdout_<metric>``)."""
        run_id = self.model_version(model_name, version).run_id
        if not run_id:
            return {}
        metrics = self.get_run(run_id).data.metrics
        return {
            k.removeprefix(HOLDOUT_PREFIX): float(v)
            for k, v in metrics.items()
            if k.startswith(HOLDOUT_PREFIX)
        }

    def passed_gate(self, model_name: str, version: str) -> bool:
        """Whether the gate sent ``version`` into shadow (a @challenger set by hand never did)."""
        tags = self.model_version(model_name, version).tags
        return bool(tags.get(f"{DECISION_PREFIX}decision") == "shadow")

    def promote_challenger(self, summary: Mapping[str, Any], alias: str, lock_owner: str) -> None:
        """Move ``alias`` from the judged champion to the challenger, drop ``@challenger``, record it."""
        name, version = summary["model_name"], str(summary["new_version"])
        self.move_alias(
            model_name=name,
            alias=alias,
            expected_old=summary["old_version"],
            new_version=version,
            why=str(summary["reason"]),
            who=str(summary["decided_by"]),
            action="promote",
            lock_owner=lock_owner,
        )
        self.drop_challenger(name, version)
        self.record_with_card(dict(summary), str(summary["decided_by"]))

    def refuse_challenger(self, summary: Mapping[str, Any]) -> None:
        """Record the refusal on the challenger version (and its card); stop scoring it in shadow."""
        self.record_with_card(dict(summary), str(summary["decided_by"]))
        self.drop_challenger(summary["model_name"], str(summary["new_version"]))

    def rollback_on_labels(
        self, name: str, alias: str, to_version: Any, reason: str, who: str, **kw: Any
    ) -> None:
        """:meth:`rollback` (``request_key``, ``expected``: as there), then the cards and the description."""
        self.cards_after_rollback(name, alias, self.rollback(name, alias, to_version, reason, who, **kw))

    def drop_challenger(self, model_name: str, version: str) -> None:
        """Delete ``@challenger`` if it still points at ``version`` (a newer challenger keeps it)."""
        if self.alias_version(model_name, CHALLENGER) != version:
            return
        with self.client(f"deleting {model_name}@{CHALLENGER}") as client:
            client.delete_registered_model_alias(model_name, CHALLENGER)
