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

How: one MLflow session per write, the registered model read once for the two cards and the description
after a decision, the replaced champion's card written in a second thread meanwhile; run artifacts are
read and written through the run's own artifact repository, the three card files in one upload.

Failures: at registration a failing card write fails the task (registration is idempotent: the retry
finds the version and writes the card). After a decision the decision is recorded first and a failing
card write is only logged, since a retry would decide again; the card is rewritten whole every time, so
the next write repairs it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
from mlops_provider.hooks.mlflow import (
    MLflowHook,
    download_listed,
    error_code,
    is_mlflow_error,
    run_artifact_repo,
)
from mlops_provider.hooks.models import (
    IMPORTANCE_ARTIFACT,
    METRIC_PREFIX,
    SLICES_ARTIFACT,
)
from mlops_provider.hooks.registry import (
    CHAMPION_ALIAS,
    ChampionChangedError,
    MLflowRegistryHook,
    tag_version,
    version_of,
)

__all__ = ["ModelCardHook", "approval_of", "read_card"]

MAX_ARTIFACT_BYTES = 4 * 1024 * 1024
CARD_ERRORS = (MLflowConfigError, MLflowRequestError, MLflowUnavailableError, OSError)
MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
READS = (CARD_STATE, SLICES_ARTIFACT, IMPORTANCE_ARTIFACT)  # what a card write reads from its run
Written = tuple[str, str, dict[str, Any]]  # a card just written: version, training run, its record


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


def _run(client: Any, run_id: str) -> Any:
    """The run; None when it was deleted (a card then says what the version's tags say)."""
    try:
        return client.get_run(run_id)
    except Exception as err:
        if is_mlflow_error(err) and error_code(err) in MISSING:
            return None
        raise


def _read(repo: Any, paths: Sequence[str]) -> dict[str, bytes | None]:
    """The bytes of ``paths`` in a run's artifacts (``repo``: its repository); None where a file is
    missing or larger than we read."""
    with tempfile.TemporaryDirectory() as tmp:
        local = download_listed(repo, paths, tmp, MAX_ARTIFACT_BYTES)
        return {
            path: file.read_bytes()
            if file and file.is_file() and file.stat().st_size <= MAX_ARTIFACT_BYTES
            else None
            for path, file in local.items()
        }


def _json(raw: bytes | None) -> Any:
    try:
        return None if raw is None else json.loads(raw.decode("utf-8"))
    except ValueError:  # not JSON or not UTF-8: the card says "not recorded"
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
        run = _run(client, str(mv.run_id)) if mv.run_id and CARD_TAG in (mv.tags or {}) else None
        if run is None:
            return None
        found = _read(run_artifact_repo(run, hook.settings.tracking_uri), (CARD_STATE, f"{CARD_DIR}/{file}"))
        state = _json(found[CARD_STATE])
        if not isinstance(state, Mapping) or (state.get("model_name"), state.get("version")) != (
            name,
            version,
        ):
            return None
        return found[f"{CARD_DIR}/{file}"]


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
        with self.client(f"writing the model card of {name} version {version}") as client:
            written = self._write_card(client, name, str(version), config, decision)
        return written[1] if written else None

    def _write_card(
        self, client: Any, name: str, version: str, config: Any, decision: Any, model: Any = None
    ) -> Written | None:
        """:meth:`write_card` through ``client``, opening no session (a worker thread may run it while the
        caller holds one); ``model``: the registered model, when the caller has read it."""
        mv = version_of(client, name, version)
        run_id = str(mv.run_id or "") or None
        if run_id is None:
            self.log.warning("%s version %s has no training run: it gets no model card", name, version)
            return None
        run = _run(client, run_id)
        repo = None if run is None else run_artifact_repo(run, self.settings.tracking_uri)
        found = {path: _json(raw) for path, raw in (_read(repo, READS) if repo is not None else {}).items()}
        state = read_state(found.get(CARD_STATE))
        if config is not None:
            state["config"] = card_config(config)
        if decision is not None:
            add_decision(state, decision)
        card = self._gather(mv, run, state, model or client.get_registered_model(name), found)
        state.update(model_name=name, version=version)
        files = {
            Path(CARD_STATE).name: json.dumps(state, indent=2, default=str),  # as MlflowClient.log_dict
            CARD_MD: render_markdown(card),
            CARD_HTML: render_html(card),
        }
        with tempfile.TemporaryDirectory() as tmp:  # one upload of the three files
            for file, text in files.items():
                Path(tmp, file).write_text(text, encoding="utf-8")
            if repo is None:  # the run is gone: MLflow refuses, naming it
                client.log_artifacts(run_id, tmp, CARD_DIR)
            else:
                repo.log_artifacts(tmp, CARD_DIR)
        tag_version(client, name, version, {CARD_TAG: card.written_at})
        return version, run_id, state

    def _gather(
        self, mv: Any, run: Any, state: dict[str, Any], model: Any, found: Mapping[str, Any]
    ) -> ModelCard:
        """What the registry says about the version (``model``: its registered model, ``found``: the
        run's JSON artifacts), with the card's record ``state``."""
        name, version = str(mv.name), str(mv.version)
        history = [
            h for h in catalog.alias_history(dict(model.tags or {})) if version in (h["from"], h["to"])
        ]
        aliases = sorted(a for a, v in catalog.aliases_of(model.aliases).items() if v == version)
        metrics, run_url = {}, None
        if run is not None:
            prefix, run_id = METRIC_PREFIX, str(run.info.run_id)
            metrics = {k[len(prefix) :]: v for k, v in run.data.metrics.items() if k.startswith(prefix)}
            run_url = self.run_url(str(run.info.experiment_id), run_id)
        slices, importance = found.get(SLICES_ARTIFACT), found.get(IMPORTANCE_ARTIFACT)
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
        with self.client(f"describing registered model {name!r}") as client:
            self._describe(client, name, alias, client.get_registered_model(name))

    def _describe(
        self, client: Any, name: str, alias: str, model: Any, written: Written | None = None
    ) -> None:
        """:meth:`point_description` through ``client`` from ``model`` (the registered model as read);
        ``written``: a card just written, whose record is not read again if it is ``@alias``'s."""
        version = catalog.aliases_of(model.aliases).get(alias)
        if version is None:
            return
        run_id: str | None
        raw: Any
        if written is not None and written[0] == version:
            run_id, raw = written[1], written[2]
        else:
            run_id = str(version_of(client, name, version).run_id or "") or None
            run = _run(client, run_id) if run_id else None
            repo = None if run is None else run_artifact_repo(run, self.settings.tracking_uri)
            raw = None if repo is None else _json(_read(repo, (CARD_STATE,))[CARD_STATE])
        description = read_state(raw)["config"].get("description")
        link = airflow_url(card_path(name, version))
        client.update_registered_model(name, registry_description(description, name, version, run_id, link))

    def _rewrite(self, name: str, version: str, record: Any, other: str | None, alias: str | None) -> None:
        """
        Rewrite ``version``'s card (``record``: its new decision, if any) and meanwhile, in a second
        thread, ``other``'s; then point the description at ``@alias``'s card (None: leave it). One session
        and one read of the registered model serve them all; a step that fails is only logged.
        """
        with self.client(f"rewriting the model cards of {name}") as client:
            model = client.get_registered_model(name)

            def write(of: str, decision: Any = None) -> Written | None:  # opens no session of its own
                with self._logged(f"writing the model card of {name} version {of}"):
                    return self._write_card(client, name, of, None, decision, model)
                return None

            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-card") as pool:
                if other is not None:
                    pool.submit(write, other)
                written = write(version, record)
                if alias is not None:
                    with self._logged(f"describing registered model {name!r}"):
                        self._describe(client, name, alias, model, written)

    @contextmanager
    def _logged(self, doing: str) -> Iterator[None]:
        """A card write after a recorded decision: a failure is logged, never raised (see the module)."""
        try:
            with self.errors(doing):
                yield
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
        with self._logged(f"rewriting the model cards of {summary['model_name']}"):
            self._after_decision(summary, decision_record(summary, at))

    def _after_decision(self, summary: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        name, version, old = summary["model_name"], str(summary["new_version"]), summary.get("old_version")
        decision = summary.get("decision")
        replaced = str(old) if decision == "promoted" and old is not None and str(old) != version else None
        alias = str(summary.get("alias") or CHAMPION_ALIAS) if decision in ("promoted", "skipped") else None
        self._rewrite(name, version, record, replaced, alias)

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
        new, old = summary.get("new_version"), summary.get("old_version")
        versions = list(dict.fromkeys(str(v) for v in (new, old) if v is not None))
        if versions:
            with self._logged(f"rewriting the model cards of {name}"):
                other = versions[1] if len(versions) > 1 else None
                self._rewrite(name, versions[0], None, other, alias if new is not None else None)
