"""Model cards in MLflow: gather a version's card from the registry and write it as artifacts of its
training run; point the registered model's description at the champion's card; and the registry
operators' decision steps, which rewrite cards as they record (moved here from the operators).

Where a card lives: ``model_card/model_card.md``, ``model_card/model_card.html`` and
``model_card/card.json`` (the config section it was registered with and its decisions) in the version's
training run; the version tag ``mlops.model_card.written_at`` says when it was last written. The plugin
serves it at ``/mlops/cards/<model>/<version>/model_card.html`` (:func:`read_card`) to users who may
read the model's DAGs. Rendering is :mod:`mlops_provider.core.model_card` (no MLflow there).

When: at registration (no decision yet); at every decision (pending approval, promoted, in shadow,
refused, an approval's answer); after a rollback. When the alias moves, the card of the version it left
is rewritten too, and the registered model's description then points at the new holder's card.

Failures: at registration a failing card write fails the task (registration is idempotent: the retry
finds the version and writes the card). After a decision the decision is recorded first and a failing
card write is only logged, since a retry would decide again; the card is rewritten whole every time, so
the next write repairs it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from mlops_provider.core import catalog
from mlops_provider.core.model_card import ModelCard, render_html, render_markdown
from mlops_provider.core.model_card_record import (
    CARD_DIR,
    CARD_FILES,
    CARD_HTML,
    CARD_MD,
    CARD_STATE,
    CARD_TAG,
    add_decision,
    approval_of,
    card_config,
    card_path,
    decision_record,
    read_state,
    registry_description,
)
from mlops_provider.exceptions import (
    MLflowConfigError,
    MLflowRequestError,
    MLflowUnavailableError,
    airflow_errors,
)
from mlops_provider.hooks.mlflow import MLflowHook, error_code, is_mlflow_error
from mlops_provider.hooks.models import IMPORTANCE_ARTIFACT, METRIC_PREFIX, SLICES_ARTIFACT
from mlops_provider.hooks.registry import CHAMPION_ALIAS, ChampionChangedError, MLflowRegistryHook

__all__ = ["ModelCardHook", "approval_of", "read_card"]

MAX_ARTIFACT_BYTES = 4 * 1024 * 1024
CARD_ERRORS = (MLflowConfigError, MLflowRequestError, MLflowUnavailableError, OSError)
MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def airflow_url(path: str) -> str | None:
    """``path`` on Airflow's API server when ``[api] base_url`` is an http(s) URL, else None."""
    try:
        from airflow.configuration import conf

        base = str(conf.get("api", "base_url", fallback="") or "")
    except Exception:  # no Airflow configuration here: the description names the MLflow artifact only
        return None
    return f"{base.rstrip('/')}{path}" if base.lower().startswith(("http://", "https://")) else None


def _download(client: Any, run_id: str, path: str, tmp: str) -> Path | None:
    """The local copy of a run artifact; None when it is missing or larger than we read."""
    try:
        local = Path(client.download_artifacts(run_id, path, tmp))
    except OSError:
        return None
    except Exception as err:
        if is_mlflow_error(err) and error_code(err) in MISSING:
            return None
        raise
    return local if local.is_file() and local.stat().st_size <= MAX_ARTIFACT_BYTES else None


def _artifact_json(client: Any, run_id: str, path: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        local = _download(client, run_id, path, tmp)
        try:
            return None if local is None else json.loads(local.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # unreadable or not JSON: the card says "not recorded"
            return None


def read_card(hook: MLflowHook, name: str, version: str, file: str) -> bytes | None:
    """A version's card file (``model_card.html`` | ``model_card.md``) for the plugin; None when the
    version, its card or the file does not exist, or the run's card belongs to another model version
    (one run registered under two names)."""
    if file not in CARD_FILES:
        return None
    with hook.client(f"reading the model card of {name} version {version}") as client:
        try:
            mv = client.get_model_version(name, version)
        except Exception as err:
            if is_mlflow_error(err) and error_code(err) in MISSING:
                return None
            raise
        if not mv.run_id or CARD_TAG not in (mv.tags or {}):
            return None
        state = _artifact_json(client, str(mv.run_id), CARD_STATE)
        if not isinstance(state, Mapping) or (state.get("model_name"), state.get("version")) != (
            name,
            version,
        ):
            return None
        with tempfile.TemporaryDirectory() as tmp:
            local = _download(client, str(mv.run_id), f"{CARD_DIR}/{file}", tmp)
            return None if local is None else local.read_bytes()


class ModelCardHook(MLflowRegistryHook):
    """The registry hook that also keeps every version's model card (see the module docstring)."""

    hook_name = "MLflow model cards"

    # -- cards ---------------------------------------------------------------------------------
    def write_card(
        self, name: str, version: str, config: Any = None, decision: Mapping[str, Any] | None = None
    ) -> str | None:
        """
        Write (or rewrite) the card of ``name`` version ``version`` from the registry: ``config`` (the
        config's model section) replaces the recorded one, ``decision`` joins the recorded decisions.
        Returns the training run that holds it (None: the version has no run, so no card).
        """
        mv = self.model_version(name, version)
        run_id = str(mv.run_id or "") or None
        if run_id is None:
            self.log.warning("%s version %s has no training run: it gets no model card", name, version)
            return None
        with self.client(f"reading the model card of {name} version {version}") as client:
            state = read_state(_artifact_json(client, run_id, CARD_STATE))
            if config is not None:
                state["config"] = card_config(config)
            if decision is not None:
                add_decision(state, decision)
            card = self._gather(client, mv, self._run(client, run_id), state)
        state.update(model_name=name, version=str(version))
        with self.client(f"writing the model card of {name} version {version}") as client:
            client.log_dict(run_id, state, CARD_STATE)
            client.log_text(run_id, render_markdown(card), f"{CARD_DIR}/{CARD_MD}")
            client.log_text(run_id, render_html(card), f"{CARD_DIR}/{CARD_HTML}")
        self.set_version_tags(name, str(version), {CARD_TAG: card.written_at})
        return run_id

    def _run(self, client: Any, run_id: str) -> Any:
        try:
            return client.get_run(run_id)
        except Exception as err:
            if is_mlflow_error(err) and error_code(err) in MISSING:
                return None  # the run was deleted: the card says what the version's tags say
            raise

    def _gather(self, client: Any, mv: Any, run: Any, state: dict[str, Any]) -> ModelCard:
        """What the registry says about the version, with the card's record ``state``."""
        name, version = str(mv.name), str(mv.version)
        model = client.get_registered_model(name)
        history = [
            h for h in catalog.alias_history(dict(model.tags or {})) if version in (h["from"], h["to"])
        ]
        aliases = sorted(a for a, v in catalog.aliases_of(model.aliases).items() if v == version)
        metrics, slices, importance, run_url = {}, None, None, None
        if run is not None:
            prefix, run_id = METRIC_PREFIX, str(run.info.run_id)
            metrics = {k[len(prefix) :]: v for k, v in run.data.metrics.items() if k.startswith(prefix)}
            slices = _artifact_json(client, run_id, SLICES_ARTIFACT)
            importance = _artifact_json(client, run_id, IMPORTANCE_ARTIFACT)
            run_url = self.run_url(str(run.info.experiment_id), run_id)
        return ModelCard(
            model_name=name,
            version=version,
            written_at=now(),
            created_at=catalog.iso_ms(mv.creation_timestamp),
            config=state["config"],
            tags=dict(mv.tags or {}),
            metrics=metrics,
            slices=slices if isinstance(slices, Mapping) else None,
            importance=importance if isinstance(importance, Mapping) else None,
            decisions=state["decisions"],
            history=history,
            aliases=aliases,
            links={
                "MLflow model version": self.model_version_url(name, version),
                "MLflow training run": run_url,
            },
        )

    def point_description(self, name: str, alias: str = CHAMPION_ALIAS) -> None:
        """The registered model's description: the intended use, then where ``@alias``'s card is."""
        version = self.alias_version(name, alias)
        if version is None:
            return
        run_id = str(self.model_version(name, version).run_id or "") or None
        with self.client(f"describing registered model {name!r}") as client:
            state = read_state(_artifact_json(client, run_id, CARD_STATE) if run_id else None)
            description = state["config"].get("description")
            link = airflow_url(card_path(name, version))
            client.update_registered_model(
                name, registry_description(description, name, version, run_id, link)
            )

    def _safely(self, write: Callable[..., Any], *args: Any) -> None:
        """A card write after a recorded decision: a failure is logged, never raised (see the module)."""
        try:
            write(*args)
        except Exception as err:  # after a recorded decision nothing may fail the task (a retry re-decides)
            self.log.warning(
                "Model card not updated (the decision stands; the next card write repairs it): %s",
                err,
                exc_info=not isinstance(err, CARD_ERRORS),
            )

    # -- registration and decisions (the registry operators' steps) ----------------------------
    def register_with_card(
        self, model_name: str, run_id: str, tags: Mapping[str, str], model_card: Any
    ) -> tuple[str, bool]:
        """:meth:`register_run`, then the version's first card (``model_card``: the config's model
        section: ``description``, ``owners``, ``limitations``)."""
        with airflow_errors():
            config = card_config(model_card)  # a bad value fails before anything is registered
        version, created = self.register_run(model_name, run_id, tags)
        self.write_card(model_name, version, config=config)
        return version, created

    def record_with_card(self, summary: dict[str, Any], decided_by: str | None) -> None:
        """
        Record a gate decision, stamped with who decided and when (``mlops.gate.*`` version tags, the
        model's last decision), then rewrite the cards: the version's; after a promotion the card of the
        version it replaced and the description. ``decided_by=None``: a promotion waiting for a person,
        written on the card only.
        """
        at = now()
        if decided_by is not None:
            summary["decided_by"], summary["decided_at"] = decided_by, at
            self.record_decision(summary)
        self._safely(self._after_decision, summary, decision_record(summary, at))

    def _after_decision(self, summary: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        name, version, old = summary["model_name"], str(summary["new_version"]), summary.get("old_version")
        self.write_card(name, version, decision=record)
        if summary.get("decision") == "promoted" and old not in (None, version):
            self.write_card(name, str(old))
        if summary.get("decision") in ("promoted", "skipped"):
            self.point_description(name, str(summary.get("alias") or CHAMPION_ALIAS))

    def promote_with_card(self, summary: dict[str, Any], alias: str, mode: Any, decided_by: str) -> bool:
        """
        Move ``alias`` (``@challenger`` in shadow mode while a champion exists) to the summary's version,
        record the decision and rewrite the cards. False, with the reason in the summary and nothing moved
        or recorded, when the alias moved since the gates were scored: the caller refuses.
        """
        from mlops_provider.hooks.gate import promotion_alias

        name, version = summary["model_name"], summary["new_version"]
        with airflow_errors():
            target, expected_old = promotion_alias(self, summary, alias, mode)
        try:
            self.move_alias(
                model_name=name,
                alias=target,
                expected_old=expected_old,
                new_version=version,
                why=summary["reason"],
                who=decided_by,
                action="promote",
                lock_owner=summary["dag_run"],
            )
        except ChampionChangedError as changed:
            summary["reason"] = (
                f"{changed}; the gates were scored against version {changed.expected}: re-run the gate"
            )
            return False
        summary["decision"] = "promoted" if target == alias else "shadow"
        self.record_with_card(summary, decided_by)
        return True

    def rollback_with_card(
        self, name: str, alias: str, to_version: Any, reason: str, who: str, request_key: str | None = None
    ) -> dict[str, Any]:
        """:meth:`rollback` (once per ``request_key``), then the cards of the restored version and of the
        one it replaced, and the description. A retry of a done rollback rewrites them again."""
        try:
            summary = self.rollback(name, alias, to_version, reason, who, request_key=request_key)
        except ChampionChangedError as changed:
            raise AirflowFailException(f"rollback of {name}@{alias} not done: {changed}") from None
        self.cards_after_rollback(name, alias, summary)
        return summary

    def cards_after_rollback(self, name: str, alias: str, summary: Mapping[str, Any]) -> None:
        """The cards of the restored version and of the one it replaced, and the description."""
        for version in {summary.get("new_version"), summary.get("old_version")} - {None}:
            self._safely(self.write_card, name, str(version))
        if summary.get("new_version") is not None:
            self._safely(self.point_description, name, alias)
