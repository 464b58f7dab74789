"""The MLflow model registry: versions, the champion, alias moves under a lock, and decisions.

* "No champion" has one rule (:func:`is_missing_alias`): only MLflow's answer that the alias or the
  registered model does not exist. Any other error is translated and fails or retries the task.
* Registration is idempotent: the version carries ``mlops.training_run_id``; a retry (or a create
  whose answer was lost) finds it instead of creating another; when concurrent tries both created
  one, the lowest is kept.
* Alias moves happen under :class:`~mlops_provider.hooks.registry_lock.RegistryLock`, re-read the
  alias first (refusing if it moved since the caller read it), read it back afterwards, keep the old
  version as ``previous_champion`` and append ``{alias, action, from, to, why, who, when}`` to the
  registered-model tag ``mlops.alias_history.<alias>``.
* A rollback with a request key happens once: retries and clear-and-rerun never flip the alias back.
* Summary tags for the Models page (:mod:`mlops_provider.core.monitoring`): ``mlops.retrain_dag``,
  ``mlops.last_decision`` (promotion, refusal, rollback), a new ``mlops.revision`` on every write.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlops_provider.core import lineage, monitoring
from mlops_provider.core.gate import (
    CHALLENGER_ALIAS,
    HISTORY_TAG,
    PREVIOUS_ALIAS,
    AliasMove,
    append_history,
    decision_tags,
    history_entry,
    json_of,
    request_tag,
    rollback_summary,
)
from mlops_provider.exceptions import InvalidInputError, MLflowRequestError, MLflowUnavailableError
from mlops_provider.hooks.mlflow import error_code, is_mlflow_error
from mlops_provider.hooks.models import COMPLETE_TAG, MLflowModelHook
from mlops_provider.hooks.monitoring import set_model_tags
from mlops_provider.hooks.registry_lock import RegistryLock

CHAMPION_ALIAS = "champion"
MANAGED_TAG = "mlops.managed"


class ChampionChangedError(Exception):
    """The alias moved between the caller's read and the move: the caller's decision is stale."""

    def __init__(self, expected: str | None, current: str | None) -> None:
        super().__init__(f"the champion changed meanwhile (expected version {expected}, found {current})")
        self.expected, self.current = expected, current


@dataclass(frozen=True)
class Champion:
    """What the registry says about a version behind an alias: its version and lineage."""

    version: str
    run_id: str | None
    training_data_uri: str | None
    features: list[str] | None
    target: str | None
    training_data_fingerprint: str | None = None


def is_missing_alias(err: BaseException) -> bool:
    """True only for MLflow's "alias (or registered model) does not exist": INVALID_PARAMETER_VALUE
    "Registered model alias X not found", RESOURCE_DOES_NOT_EXIST "... not found". Else a real error."""
    code = error_code(err)
    message = str(err).lower()
    if code == "INVALID_PARAMETER_VALUE":
        return "alias" in message and "not found" in message
    if code == "RESOURCE_DOES_NOT_EXIST":
        return "not found" in message
    return False


def check_model_name(model_name: Any) -> str:
    """A usable registered-model name, or a clear error (quotes would break registry filters)."""
    if not isinstance(model_name, str) or not model_name.strip():
        raise InvalidInputError(f"model_name must be a non-empty string, got {model_name!r}")
    if "'" in model_name or '"' in model_name or "`" in model_name:
        raise InvalidInputError(f"model name {model_name!r}: quotes and backticks are not supported")
    return model_name


def _features(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = [part.strip() for part in raw.split(",") if part.strip()]
    return parsed if isinstance(parsed, list) and parsed and all(isinstance(f, str) for f in parsed) else None


def version_of(client: Any, model_name: str, version: Any) -> Any:
    """``client``'s model version; an unknown one fails the task naming it."""
    try:
        return client.get_model_version(model_name, str(version))
    except Exception as err:
        if is_mlflow_error(err) and error_code(err) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise MLflowRequestError(f"{model_name} version {version!r} does not exist") from None
        raise


def tag_version(client: Any, name: str, version: Any, tags: Mapping[str, str], on_model: Any = None) -> None:
    """Version ``tags``, then registered-model tags ``on_model`` and a new revision. MLflow's client reads
    the registered model before each tag (is it a prompt?): the first is checked, the rest go straight on."""
    setter = client.set_model_version_tag
    for key, value in tags.items():
        setter(name, str(version), key, value)
        setter = client._get_registry_client().set_model_version_tag
    set_model_tags(client, name, on_model or {})


class MLflowRegistryHook(MLflowModelHook):
    """The model registry (see the module docstring), plus everything :class:`MLflowModelHook` does."""

    # -- reads ---------------------------------------------------------------------------------
    def alias_version(self, model_name: str, alias: str = CHAMPION_ALIAS) -> str | None:
        """The version ``alias`` points at, as a string; ``None`` only when the alias does not exist."""
        with self.client(f"reading {model_name}@{alias}") as client:
            try:
                return str(client.get_model_version_by_alias(model_name, alias).version)
            except Exception as err:
                if is_mlflow_error(err) and is_missing_alias(err):
                    return None
                raise

    def model_version(self, model_name: str, version: str) -> Any:
        """The model version; an unknown one fails the task naming it."""
        with self.client(f"reading {model_name} version {version}") as client:
            return version_of(client, model_name, version)

    def champion(self, model_name: str, alias: str = CHAMPION_ALIAS) -> Champion | None:
        """
        The version behind ``models:/<model_name>@<alias>`` with its lineage tags (the version's tags,
        falling back to its source run's); ``None`` when the model or alias does not exist.
        """
        version = self.alias_version(model_name, alias)
        if version is None:
            return None
        mv = self.model_version(model_name, version)
        tags = dict(mv.tags or {})
        wanted = (
            lineage.TRAINING_DATA_URI,
            lineage.FEATURES,
            lineage.TARGET,
            lineage.TRAINING_DATA_FINGERPRINT,
        )
        if mv.run_id and any(key not in tags for key in wanted):
            try:
                run_tags = self.get_run(mv.run_id).data.tags
            except MLflowRequestError:
                run_tags = {}  # the run was deleted: the version's own tags are all there is
            tags = {**{k: run_tags[k] for k in wanted if k in run_tags}, **tags}
        return Champion(
            version=version,
            run_id=mv.run_id,
            training_data_uri=tags.get(lineage.TRAINING_DATA_URI) or None,
            features=_features(tags.get(lineage.FEATURES)),
            target=tags.get(lineage.TARGET) or None,
            training_data_fingerprint=tags.get(lineage.TRAINING_DATA_FINGERPRINT) or None,
        )

    # -- registration --------------------------------------------------------------------------
    def register_run(self, model_name: str, run_id: str, tags: Mapping[str, str]) -> tuple[str, bool]:
        """Register ``runs:/<run_id>/model`` once: the version and whether this call created it."""
        run = self.get_run(run_id)
        if run.data.tags.get(COMPLETE_TAG) != "true" or run.info.status != "FINISHED":
            raise MLflowRequestError(
                f"MLflow run {run_id!r} ({run.info.status}) holds no complete model logged by "
                "TrainModelOperator: only a FINISHED training run can be registered"
            )
        all_tags = {k: v for k, v in run.data.tags.items() if k.startswith(lineage.PREFIX)}
        all_tags.update({str(k): str(v) for k, v in tags.items()})
        all_tags[lineage.TRAINING_RUN_ID] = run_id
        self._ensure_registered_model(model_name, all_tags.get(lineage.DAG_ID))
        existing = self._versions_of_run(model_name, run_id)
        if existing:
            version = existing[0]
            self.log.info(
                "Run %s is already registered as %s version %s", run_id, model_name, version.version
            )
            missing = {k: v for k, v in all_tags.items() if version.tags.get(k) != v}  # left by a crashed try
            self.set_version_tags(model_name, str(version.version), missing)
            return str(version.version), False
        try:
            mine: str | None = self._create_version(model_name, run_id, all_tags)
        except MLflowUnavailableError:
            if not self._versions_of_run(model_name, run_id):
                raise  # nothing was created: the task may retry
            mine = None  # the server committed, its answer was lost: the version found is this call's
        versions = self._versions_of_run(model_name, run_id)
        if not versions:
            raise MLflowRequestError(
                f"registered {model_name!r} from run {run_id} but cannot find the version"
            )
        for duplicate in versions[1:]:
            self._delete_duplicate(model_name, str(duplicate.version), run_id, str(versions[0].version))
        self.set_model_tags(model_name, {})
        return str(versions[0].version), mine is None or str(versions[0].version) == mine

    def _ensure_registered_model(self, model_name: str, dag_id: str | None) -> None:
        """Create the registered model; record ``dag_id`` as its retrain DAG unless one is recorded."""
        retrain = {monitoring.RETRAIN_DAG_TAG: dag_id[: monitoring.ID_MAX]} if dag_id else {}
        with self.client(f"creating registered model {model_name!r}") as client:
            try:
                client.create_registered_model(model_name, tags={MANAGED_TAG: "true", **retrain})
            except Exception as err:
                code = error_code(err) if is_mlflow_error(err) else ""
                if code in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                    if retrain.keys() - client.get_registered_model(model_name).tags.keys():
                        set_model_tags(client, model_name, retrain)
                    return
                if code == "INVALID_PARAMETER_VALUE":
                    raise MLflowRequestError(f"MLflow refuses the model name {model_name!r}: {err}") from None
                raise

    def _versions_of_run(self, model_name: str, run_id: str) -> list[Any]:
        query = f"name = '{model_name}' and tags.`{lineage.TRAINING_RUN_ID}` = '{run_id}'"
        with self.client(f"searching versions of {model_name}") as client:
            return sorted(client.search_model_versions(query), key=lambda v: int(v.version))

    def _create_version(self, model_name: str, run_id: str, tags: Mapping[str, str]) -> str:
        import mlflow

        with self.session(), self.errors(f"registering run {run_id} as {model_name}"):
            return str(mlflow.register_model(f"runs:/{run_id}/model", model_name, tags=dict(tags)).version)

    def _delete_duplicate(self, model_name: str, version: str, run_id: str, kept: str) -> None:
        message = "Deleting %s version %s: a concurrent try registered run %s as version %s first"
        self.log.warning(message, model_name, version, run_id, kept)
        with self.client(f"deleting duplicate {model_name} version {version}") as client:
            try:
                client.delete_model_version(model_name, version)
            except Exception as err:
                if not (is_mlflow_error(err) and error_code(err) == "RESOURCE_DOES_NOT_EXIST"):
                    raise

    # -- records -------------------------------------------------------------------------------
    def set_version_tags(self, model_name: str, version: str, tags: Mapping[str, str]) -> None:
        with self.client(f"tagging {model_name} version {version}") as client:
            tag_version(client, model_name, version, tags)

    def set_model_tags(self, model_name: str, tags: Mapping[str, str]) -> None:
        """Registered-model ``tags`` and a new ``mlops.revision``."""
        with self.client(f"tagging registered model {model_name}") as client:
            set_model_tags(client, model_name, tags)

    def record_decision(self, summary: Mapping[str, Any]) -> None:
        """A gate decision as ``mlops.gate.*`` tags on the challenger version and, unless it changed
        nothing (``skipped``), as the registered model's ``mlops.last_decision``."""
        name, version = summary["model_name"], summary["new_version"]
        last = monitoring.last_decision_value(summary)
        on_model = {monitoring.LAST_DECISION_TAG: last} if last is not None else {}
        with self.client(f"recording the decision on {name} version {version}") as client:
            tag_version(client, name, version, decision_tags(summary), on_model)

    # -- alias moves ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self, model_name: str, alias: str, owner: str) -> Iterator[tuple[Any, RegistryLock]]:
        with (
            self.client(f"moving {model_name}@{alias}") as client,
            RegistryLock(client, model_name, owner=owner, where=f"MLflow at {self.describe()}") as lock,
        ):
            yield client, lock

    def move_alias(
        self,
        *,
        model_name: str,
        alias: str,
        expected_old: str | None,
        new_version: str,
        why: str,
        who: str,
        action: str,
        lock_owner: str,
    ) -> None:
        """Move ``alias`` to ``new_version`` if it still points at ``expected_old``; else
        :class:`ChampionChangedError`. Recorded in the alias history."""
        move = AliasMove(model_name, alias, expected_old, str(new_version), why, who, action)
        with self._locked(model_name, alias, lock_owner) as (client, lock):
            self._move(client, lock, move)
        self.log.info(
            "Moved %s@%s from %s to %s (%s by %s)", model_name, alias, expected_old, new_version, action, who
        )

    def _move(self, client: Any, lock: RegistryLock, move: AliasMove) -> None:
        """The move itself, under ``lock``: re-read, keep the previous version, move, read back, record."""
        name, alias = move.model_name, move.alias
        current = self.alias_version(name, alias)
        if current != move.origin:
            raise ChampionChangedError(move.origin, current)
        if current == move.target:
            return  # already there (a retry): nothing to move or record
        lock.ensure_held()
        if move.origin is not None and alias not in (PREVIOUS_ALIAS, CHALLENGER_ALIAS):  # champions only
            client.set_registered_model_alias(name, PREVIOUS_ALIAS, move.origin)
        client.set_registered_model_alias(name, alias, move.target)
        after = self.alias_version(name, alias)
        if after != move.target:
            raise MLflowRequestError(
                f"{name}@{alias}: read back version {after} after moving it to {move.target}"
            )
        self._append_history(client, move)
        set_model_tags(client, name, {})

    def _append_history(self, client: Any, move: AliasMove, only_if_missing: bool = False) -> None:
        """Append ``move`` to the alias history (``only_if_missing``: unless it is the last entry)."""
        key = HISTORY_TAG.format(alias=move.alias)
        existing = client.get_registered_model(move.model_name).tags.get(key)
        last = (json_of(existing, list) or [{}])[-1]
        if only_if_missing and (last.get("from"), last.get("to"), last.get("action")) == move.edge:
            return
        entry = history_entry(
            alias=move.alias,
            from_version=move.origin,
            to_version=move.target,
            why=move.why,
            who=move.who,
            action=move.action,
        )
        client.set_registered_model_tag(move.model_name, key, append_history(existing, entry))

    # -- rollback ------------------------------------------------------------------------------
    def rollback(
        self,
        model_name: str,
        alias: str,
        to_version: Any,
        reason: str,
        who: str,
        request_key: str | None = None,
        expected: str | None = None,
    ) -> dict[str, Any]:
        """
        Move ``alias`` back to ``to_version`` (default: ``previous_champion``), recorded like a promotion;
        with ``expected``, only from that version (else :class:`ChampionChangedError`).

        With a ``request_key`` (the task instance) it happens once: ``{from, to, state}`` is recorded
        before the move; a later try finishes a half-done move to the recorded target, or does nothing.
        """
        with self._locked(model_name, alias, who) as (client, lock):
            tag = request_tag(alias, request_key) if request_key else None
            record = json_of(client.get_registered_model(model_name).tags.get(tag), dict) if tag else None
            if record and record.get("state") == "done":
                done, old, new = f"rollback {request_key} already done", record.get("from"), record.get("to")
                return rollback_summary(model_name, alias, old, new, done, "skipped")
            current = self.alias_version(model_name, alias)
            if record:  # an earlier try died part-way: finish what it recorded, never re-decide
                origin, target = record.get("from"), str(record.get("to"))
                if current not in (origin, target):
                    raise ChampionChangedError(origin, current)
            elif expected is not None and current != expected:
                raise ChampionChangedError(expected, current)
            else:
                origin, target = current, self._rollback_target(model_name, to_version)
            move = AliasMove(model_name, alias, origin, target, reason, who, "rollback")
            summary = rollback_summary(model_name, alias, origin, target, reason, "rolled_back")
            if origin == target:
                summary.update(decision="skipped", reason=f"{model_name}@{alias} already is version {target}")
            elif current == origin:
                self._set_record(client, tag, move, request_key, "moving")
                self._move(client, lock, move)
            else:  # the alias moved, but the try died before recording it
                self._append_history(client, move, only_if_missing=True)
            if origin != target:
                self._tag_rollback(client, move, request_key)
            self._set_record(client, tag, move, request_key, "done")
        return summary

    def _set_record(self, client: Any, tag: str | None, move: AliasMove, key: str | None, state: str) -> None:
        if tag is not None:
            value = {"key": (key or "")[:500], "from": move.origin, "to": move.target, "state": state}
            client.set_registered_model_tag(move.model_name, tag, json.dumps(value))

    def _tag_rollback(self, client: Any, move: AliasMove, request_key: str | None) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        tags = {"from_version": str(move.origin), "reason": move.why[:4000], "by": move.who, "at": stamp}
        decision = monitoring.rollback_decision_value(move.target, move.why, move.who, stamp, request_key)
        tags = {f"mlops.rollback.{k}": v for k, v in tags.items()}
        tag_version(client, move.model_name, move.target, tags, {monitoring.LAST_DECISION_TAG: decision})

    def _rollback_target(self, model_name: str, to_version: Any) -> str:
        given = to_version not in (None, "")
        target = str(to_version).strip() if given else self.alias_version(model_name, PREVIOUS_ALIAS)
        if target is None:
            raise InvalidInputError(
                f"{model_name} has no {PREVIOUS_ALIAS!r} alias to roll back to; pass to_version"
            )
        self.model_version(model_name, target)  # it must exist
        return target
