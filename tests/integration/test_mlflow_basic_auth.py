"""The operators against ``mlflow server --app-name basic-auth`` (``default_permission = NO_PERMISSIONS``).

The Airflow service account ``svc`` gets the least the loop needs for the model ``cancer``, granted by
the admin, who also creates the experiment and the registered model:

* experiment ``cancer``: EDIT (runs, metrics, tags, logged models, proxied artifact uploads/downloads);
* registered model ``cancer``: EDIT (versions, version tags, aliases, registered-model tags);
* the promotion lock ``cancer.mlops-lock``: nothing; svc creates it (the auth app then grants its
  creator MANAGE) and deletes it (the grant goes with it).

Beyond the loop: deleting the duplicate of a lost registration race needs MANAGE on the registered
model; a lock left by another account needs a grant on the lock name (EDIT to break it). The server
needs Flask-WTF (``mlflow[auth]``); ``auth_cache_ttl_seconds`` keeps it from re-hashing the password
on every request (the loop took ~200 s without, ~13 s with, on 2 busy cores).

Without grants (user ``other``), or with a wrong password, every operator fails with
:class:`MLflowConfigError` (an ``AirflowFailException``: no retry) naming the host without credentials
and never showing the password.
"""

from __future__ import annotations

import importlib.util
import json
import os
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException
from mlflow_server import BasicAuth, Server, mlflow_server
from support import cancer_csv, context, train

from mlops_provider.exceptions import MLflowConfigError
from mlops_provider.hooks.mlflow_settings import ENVIRON_LOCK, scoped_environ
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.hooks.registry_lock import BEAT_TAG, LOCK_TAG, OWNER_TAG, TOKEN_TAG
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import (
    PromoteModelOperator,
    RegisterModelOperator,
    RollbackModelOperator,
)
from mlops_provider.operators.scoring import BatchScoreOperator

pytestmark = pytest.mark.slow

if importlib.util.find_spec("flask_wtf") is None:  # the server's auth app needs mlflow[auth]
    reason = "mlflow server --app-name basic-auth needs Flask-WTF: install mlflow[auth]"
    if os.environ.get("CI"):
        raise RuntimeError(reason)  # in CI a missing dependency is a failure, not a skip
    pytest.skip(reason, allow_module_level=True)

MODEL = "cancer"
LOCK = f"{MODEL}.mlops-lock"
THRESHOLDS = {"f1_macro": {"min": 0.5}}
VS_CHAMPION = {"f1_macro": {"min_delta": 0.0}}
# sentinels: none of them may ever appear in an error message or a traceback
PASSWORDS = {
    "svc": f"svc-Pw-{uuid.uuid4().hex}",
    "other": f"other-Pw-{uuid.uuid4().hex}",
    "reader": f"reader-Pw-{uuid.uuid4().hex}",
}
ADMIN = BasicAuth(admin_password=f"admin-Pw-{uuid.uuid4().hex}")


@contextmanager
def acting_as(env: dict[str, str]) -> Iterator[None]:
    with ENVIRON_LOCK, scoped_environ(env):
        yield


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-basic-auth"), auth=ADMIN) as running:
        yield running


@pytest.fixture(scope="module")
def grants(server: Server) -> dict[str, Any]:
    """Users, the experiment and the registered model (made by the admin), and svc's grants."""
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    with acting_as(server.admin_env()):
        admin = get_app_client("basic-auth", tracking_uri=server.url)
        for user, password in PASSWORDS.items():
            admin.create_user(user, password)
        client = MlflowClient(server.url, server.url)
        experiment_id = client.create_experiment(MODEL)
        client.create_registered_model(MODEL, tags={"mlops.managed": "true"})
        admin.grant_user_permission("svc", "experiment", experiment_id, "EDIT")
        admin.grant_user_permission("svc", "registered_model", MODEL, "EDIT")
        # a scorer that may read the registered model only (not the experiment holding its files)
        admin.grant_user_permission("reader", "registered_model", MODEL, "READ")
    return {"experiment_id": experiment_id, "admin": admin}


def connection(server: Server, user: str, password: str) -> str:
    return json.dumps(
        {
            "conn_type": "mlflow",
            "host": server.url,
            "login": user,
            "password": password,
            "extra": {"max_retries": 0, "timeout": 10},
        }
    )


@pytest.fixture
def as_user(
    server: Server, grants: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[str, str | None], None]:
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def use(user: str, password: str | None = None) -> None:
        password = PASSWORDS[user] if password is None else password
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", connection(server, user, password))

    return use


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cancer_csv(tmp_path_factory.mktemp("data"))


def train_run(data: Path, estimator: str, params: dict, run: str) -> dict:
    return train(MODEL, data, estimator, params, run)


def register(run_id: str) -> dict:
    return RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run_id).execute(
        context("register")
    )


def promote(version: str) -> dict:
    op = PromoteModelOperator(
        task_id="promote", model_name=MODEL, version=version, thresholds=THRESHOLDS, vs_champion=VS_CHAMPION
    )
    return op.execute(context("promote"))


def score(data: Path, out: Path) -> dict:
    op = BatchScoreOperator(
        task_id="score", model_name=MODEL, data_uri=str(data), output_uri=str(out), chunk_size=200
    )
    return op.execute(context("score"))


def admin_client(server: Server) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(server.url, server.url)


def assert_clear_refusal(err: BaseException, server: Server, password: str, what: str = "") -> None:
    """A no-retry failure naming the host (no credentials) and the refusal; no password anywhere."""
    assert isinstance(err, MLflowConfigError), f"{type(err).__name__}: {err}"
    assert isinstance(err, AirflowFailException)
    message = str(err)
    assert server.url in message, message
    assert "refused" in message, message
    assert what in message, message
    assert "@127.0.0.1" not in message, message
    formatted = "".join(traceback.format_exception(err))
    for secret in (password, *PASSWORDS.values(), ADMIN.admin_password):
        assert secret not in message
        assert secret not in formatted


# -- with the minimal grants ---------------------------------------------------------------------------
def test_loop_works_with_minimal_per_model_grants(
    as_user: Callable, data: Path, tmp_path: Path, server: Server, grants: dict
):
    as_user("svc")
    weak = train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1}, "r1")
    assert weak["experiment_id"] == grants["experiment_id"]
    EvaluateModelOperator(task_id="evaluate", run_id=weak["run_id"]).execute(context("evaluate"))
    v1 = register(weak["run_id"])
    assert (v1["version"], v1["created"]) == ("1", True)
    first = promote("1")
    assert (first["decision"], first["old_version"]) == ("promoted", None)

    forest = train_run(data, "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 10}, "r2")
    v2 = register(forest["run_id"])["version"]
    assert promote(v2)["decision"] == "promoted"  # downloads the champion's model and the holdout

    out = tmp_path / "predictions.parquet"
    scored = score(data, out)
    assert (scored["version"], scored["rows"], scored["output_uri"]) == (v2, 569, str(out))

    rolled = RollbackModelOperator(task_id="rollback", model_name=MODEL, reason="bad outputs").execute(
        context("rollback")
    )
    assert (rolled["decision"], rolled["new_version"]) == ("rolled_back", "1")
    hook = MLflowRegistryHook()
    assert (hook.alias_version(MODEL), hook.alias_version(MODEL, "previous_champion")) == ("1", v2)

    with acting_as(server.admin_env()):
        client = admin_client(server)
        assert not client.search_registered_models(f"name = '{LOCK}'")  # released
        history = json.loads(client.get_registered_model(MODEL).tags["mlops.alias_history.champion"])
        assert [(h["action"], h["from"], h["to"]) for h in history] == [
            ("promote", None, "1"),
            ("promote", "1", v2),
            ("rollback", v2, "1"),
        ]
        # no grant on the lock name outlived the lock
        assert grants["admin"].get_user_permission("svc", "registered_model", LOCK).permission in (
            None,
            "NO_PERMISSIONS",
        )


# -- without grants, with a wrong password ------------------------------------------------------------
@pytest.fixture(scope="module")
def svc_run(server: Server, grants: dict, data: Path) -> str:
    """A run svc trained (and registered as a version, the champion) for the refusal tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", connection(server, "svc", PASSWORDS["svc"]))
        hook = MLflowRegistryHook()
        trained = train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2}, "r-refusals")
        run_id = trained["run_id"]
        if hook.alias_version(MODEL) is None:  # this test alone: make a champion to score with
            promote(register(run_id)["version"])
        return run_id


@pytest.mark.parametrize("user", ["other", "svc-wrong-password"])
def test_refused_without_grants_or_with_a_wrong_password(
    as_user: Callable, svc_run: str, server: Server, data: Path, tmp_path: Path, user: str
):
    if user == "other":
        as_user("other")
        password = PASSWORDS["other"]
    else:
        password = f"wrong-Pw-{uuid.uuid4().hex}"
        as_user("svc", password)
    steps = {
        "register": lambda: register(svc_run),
        "promote": lambda: promote("1"),
        "score": lambda: score(data, tmp_path / "out.parquet"),
        "rollback": lambda: RollbackModelOperator(
            task_id="rollback", model_name=MODEL, reason="x", to_version="1"
        ).execute(context("rollback")),
        "train": lambda: train_run(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1}, "r-x"),
    }
    for step, call in steps.items():
        with pytest.raises(AirflowFailException) as caught:
            call()
        assert_clear_refusal(caught.value, server, password)
        status = "error code 403" if user == "other" else "error code 401"
        assert status in str(caught.value), f"{step}: {caught.value}"
        print(f"{user} {step}: {caught.value}")


def test_a_scorer_that_may_read_the_model_but_not_its_experiment(
    as_user: Callable, svc_run: str, server: Server, data: Path, tmp_path: Path
):
    """READ on the registered model alone: the alias resolves, the artifact download is refused (403)."""
    as_user("reader")
    with pytest.raises(MLflowConfigError) as caught:
        score(data, tmp_path / "out.parquet")
    assert_clear_refusal(caught.value, server, PASSWORDS["reader"], "downloading models:/cancer/")
    assert "403" in str(caught.value)


# -- the promotion lock left by another account ---------------------------------------------------------
def _plant_stale_lock(server: Server) -> None:
    """A lock as a dead holder of another account (here: the admin) leaves it."""
    with acting_as(server.admin_env()):
        admin_client(server).create_registered_model(
            LOCK,
            tags={LOCK_TAG: "true", TOKEN_TAG: uuid.uuid4().hex, OWNER_TAG: "old-deployment", BEAT_TAG: "7"},
            description="Promotion lock held by old-deployment (mlops provider); removed on release.",
        )


@pytest.fixture
def lock_probe(
    as_user: Callable, svc_run: str, server: Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], None]]:
    """Moves a probe alias as svc (under the promotion lock; lease 1 s); locks are cleaned up after."""
    monkeypatch.setenv("MLOPS_REGISTRY_LOCK_LEASE", "1")
    monkeypatch.setenv("MLOPS_REGISTRY_LOCK_WAIT", "20")
    as_user("svc")
    hook = MLflowRegistryHook()
    champion = hook.alias_version(MODEL)
    assert champion is not None

    def move(alias: str) -> None:
        hook.move_alias(
            model_name=MODEL,
            alias=alias,
            expected_old=hook.alias_version(MODEL, alias),
            new_version=champion,
            why="lock probe",
            who="test",
            action="promote",
            lock_owner="svc-test",
        )
        assert hook.alias_version(MODEL, alias) == champion

    yield move
    with acting_as(server.admin_env()):
        client = admin_client(server)
        for name in lock_models(server):
            client.delete_registered_model(name)


def test_a_foreign_lock_svc_may_not_read_is_a_clear_refusal(lock_probe: Callable, server: Server):
    """A lock another account left (here: the admin; svc has no grant on it): no wait, no retry."""
    _plant_stale_lock(server)
    with pytest.raises(AirflowFailException) as caught:
        lock_probe("probe-a")
    print(f"foreign lock, no grant: {caught.value}")
    assert_clear_refusal(caught.value, server, PASSWORDS["svc"])


def test_a_foreign_stale_lock_is_broken_with_edit_on_the_lock_name(
    lock_probe: Callable, server: Server, grants: dict
):
    _plant_stale_lock(server)
    with acting_as(server.admin_env()):
        grants["admin"].grant_user_permission("svc", "registered_model", LOCK, "EDIT")
    lock_probe("probe-b")  # waits a lease, renames the lock to a tombstone, takes and releases its own
    names = lock_models(server)
    assert len(names) == 1, names
    assert names[0].startswith(f"{LOCK}.stale-"), names
    with acting_as(server.admin_env()):  # the grant followed the rename: svc may edit the tombstone only
        assert grants["admin"].get_user_permission("svc", "registered_model", names[0]).permission == "EDIT"


def test_an_old_tombstone_svc_may_not_delete_does_not_fail_the_move(
    lock_probe: Callable, server: Server, grants: dict
):
    _plant_stale_lock(server)
    with acting_as(server.admin_env()):
        grants["admin"].grant_user_permission("svc", "registered_model", LOCK, "EDIT")
    lock_probe("probe-c")  # leaves a tombstone svc may edit, not delete
    # an hour later the next holder's release sweeps it
    with mock.patch("mlops_provider.hooks.registry_lock.TOMBSTONE_KEEP_MS", 0):
        lock_probe("probe-d")
    assert LOCK not in lock_models(server)


def _plant_stale_lock(server: Server) -> None:
    """A lock as a dead holder of another account (here: the admin) leaves it."""
    with acting_as(server.admin_env()):
        admin_client(server).create_registered_model(
            LOCK,
            tags={LOCK_TAG: "true", TOKEN_TAG: uuid.uuid4().hex, OWNER_TAG: "old-deployment", BEAT_TAG: "7"},
            description="Promotion lock held by old-deployment (mlops provider); removed on release.",
        )


def lock_models(server: Server) -> list[str]:
    with acting_as(server.admin_env()):
        return sorted(m.name for m in admin_client(server).search_registered_models(f"name LIKE '{LOCK}%'"))


# -- registration deduplication needs delete (MANAGE) ------------------------------------------------------
def test_a_lost_registration_race_needs_manage_to_delete_its_duplicate(
    as_user: Callable, svc_run: str, server: Server, grants: dict
):
    """Two tries both created a version of one run: the later deletes its own, which EDIT may not."""
    as_user("svc")
    first = register(svc_run)
    real = MLflowRegistryHook._versions_of_run
    calls: list[int] = []

    def stale_first_search(self: Any, name: str, run_id: str) -> list:
        calls.append(1)
        return [] if len(calls) == 1 else real(self, name, run_id)

    with (
        mock.patch.object(MLflowRegistryHook, "_versions_of_run", stale_first_search),
        pytest.raises(MLflowConfigError, match="deleting duplicate cancer version"),
    ):
        register(svc_run)
    with acting_as(server.admin_env()):
        grants["admin"].revoke_user_permission("svc", "registered_model", MODEL)  # no upsert over REST
        grants["admin"].grant_user_permission("svc", "registered_model", MODEL, "MANAGE")
    calls.clear()
    with mock.patch.object(MLflowRegistryHook, "_versions_of_run", stale_first_search):
        assert register(svc_run) == {**first, "created": False}
    with acting_as(server.admin_env()):
        versions = admin_client(server).search_model_versions(f"name = '{MODEL}' and run_id = '{svc_run}'")
    assert [str(v.version) for v in versions] == [first["version"]]
