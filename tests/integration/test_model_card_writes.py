"""How model cards are written (the registry benchmark's regression): after a promotion the new version's
card, the replaced champion's card (in a second thread) and the registered model's description are all
rewritten, in one session, and a failing write of the old champion's card is only logged; run artifacts
are read through the run's own repository (a missing file is "not recorded", a failing download fails
the write instead of rewriting the card from nothing); version tags pass MLflow's prompt check once.
On a real SQLite store, and on a real ``mlflow server`` with proxied artifacts (what the benchmark uses)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from mlflow_server import mlflow_server
from support import cancer_csv, context, train

from mlops_provider.core.model_card_record import CARD_STATE, CARD_TAG
from mlops_provider.exceptions import MLflowRequestError, MLflowUnavailableError
from mlops_provider.hooks import model_card
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.model_card import ModelCardHook, read_card
from mlops_provider.hooks.registry import tag_version
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator

MODEL = "card-writes"
CARD = {"description": "Flags tumours for review.", "owners": ["ml-team@example.com"]}
GATES = {"thresholds": {"f1_macro": {"min": 0.5}}, "vs_champion": {"f1_macro": {"min_delta": -1.0}}}
TREE = "sklearn.tree.DecisionTreeClassifier"
REPLACED = "@previous_champion"  # a replaced champion's card: "Aliases now" names the alias it got


def register(run_id: str) -> str:
    op = RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run_id, model_card=CARD)
    return str(op.execute(context("register"))["version"])


def promote(version: str) -> dict[str, Any]:
    op = PromoteModelOperator(task_id="promote", model_name=MODEL, version=version, **GATES)
    result: dict[str, Any] = op.execute(context("promote"))
    return result


def page(version: str) -> str:
    body = read_card(MLflowHook(), MODEL, version, "model_card.html")
    assert body is not None, f"no card for version {version}"
    return body.decode("utf-8")


def description() -> str:
    with MLflowHook().session() as client:
        return str(client.get_registered_model(MODEL).description)


def decisions(version: str, tmp_path: Path) -> list[str | None]:
    """The decisions recorded in the version's card.json, oldest first."""
    with MLflowHook().session() as client:
        run_id = client.get_model_version(MODEL, version).run_id
        local = client.download_artifacts(run_id, CARD_STATE, str(tmp_path))
    return [d.get("decision") for d in json.loads(Path(local).read_text())["decisions"]]


@pytest.fixture
def data(tmp_path: Path, mlflow_store: Path) -> Path:
    return cancer_csv(tmp_path)


def test_a_promotion_rewrites_both_cards_and_the_description_and_a_failing_old_card_is_only_logged(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
):
    runs = [
        train(MODEL, data, TREE, {"max_depth": depth}, run_id=f"r{depth}")["run_id"] for depth in (2, 3, 4)
    ]
    v1 = register(runs[0])
    assert promote(v1)["decision"] == "promoted"
    v2 = register(runs[1])
    assert promote(v2)["decision"] == "promoted"
    # the old champion's card, rewritten after the move (fast: often within the second of its decision)
    assert f"Replaced as @champion by version {v2}." in page(v1)
    assert REPLACED in page(v1)
    assert "Promoted to @champion." in page(v2)
    assert REPLACED not in page(v2)
    assert f"Champion: version {v2}" in description()
    assert f"runs:/{runs[1]}/model_card/model_card.md" in description()
    assert "Flags tumours for review." in description()  # the config's text, from the card just written
    assert decisions(v1, tmp_path) == ["promoted"]
    assert decisions(v2, tmp_path) == ["promoted"]

    # the next promotion: the card of v2 (the champion it replaces) cannot be written
    original = ModelCardHook._write_card

    def failing(hook: ModelCardHook, client: Any, name: str, version: str, *args: Any) -> Any:
        if version == v2:
            raise OSError("the artifact store is down")
        return original(hook, client, name, version, *args)

    v3 = register(runs[2])
    capfd.readouterr()
    with mock.patch.object(ModelCardHook, "_write_card", failing):
        assert promote(v3)["decision"] == "promoted"  # the decision stands
    logged = "".join(capfd.readouterr())  # the task log (Airflow's structlog writes to the console)
    assert "Model card not updated" in logged
    assert f"while writing the model card of {MODEL} version {v2}" in logged
    assert "the artifact store is down" in logged
    assert "Promoted to @champion." in page(v3)  # the new version's card and the description still follow
    assert f"Champion: version {v3}" in description()
    assert REPLACED not in page(v2)  # stale, as the log says
    with MLflowHook().session() as client:
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == v3

    ModelCardHook().write_card(MODEL, v2)  # the next write repairs it
    assert f"Replaced as @champion by version {v3}." in page(v2)
    assert REPLACED in page(v2)
    assert decisions(v2, tmp_path) == ["promoted"]


def test_a_card_read_that_fails_fails_the_registration_instead_of_starting_the_card_afresh(data: Path):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    run_id = train(MODEL, data, TREE, {"max_depth": 2}, run_id="r-read")["run_id"]
    version = register(run_id)
    with (
        mock.patch.object(LocalArtifactRepository, "download_artifacts", side_effect=OSError("disk gone")),
        pytest.raises(MLflowUnavailableError, match=f"writing the model card of {MODEL} version {version}"),
    ):
        register(run_id)  # a retry: its card.json exists, and cannot be read
    register(run_id)
    assert "Registered: no decision yet." in page(version)


def test_run_files_are_read_only_when_listed_and_small_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    (tmp_path / "model_card").mkdir()
    (tmp_path / "model_card" / "card.json").write_text('{"format": 1}')
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "slice_metrics.json").write_text("x" * 50)
    repo = LocalArtifactRepository(tmp_path.as_uri())
    monkeypatch.setattr(model_card, "MAX_ARTIFACT_BYTES", 20)
    found = model_card._read(
        repo, ("model_card/card.json", "evaluation/slice_metrics.json", "evaluation/no.json")
    )
    assert found == {
        "model_card/card.json": b'{"format": 1}',
        "evaluation/slice_metrics.json": None,  # larger than we read
        "evaluation/no.json": None,  # missing: not recorded, no error
    }
    with (
        mock.patch.object(LocalArtifactRepository, "download_artifacts", side_effect=OSError("disk gone")),
        pytest.raises(OSError, match="disk gone"),
    ):
        model_card._read(repo, ("model_card/card.json",))


def test_version_tags_pass_the_prompt_check_once_and_a_prompt_is_still_refused(mlflow_store: Path):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    hook = MLflowHook()
    with hook.session() as client:
        client.create_registered_model(MODEL)
        experiment = hook.ensure_experiment("tags")
        run_id = client.create_run(experiment).info.run_id
        version = client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id).version
        tags = {f"mlops.gate.t{i}": str(i) for i in range(6)}
        with mock.patch.object(
            MlflowClient, "get_registered_model", autospec=True, wraps=MlflowClient.get_registered_model
        ) as reads:
            tag_version(client, MODEL, version, tags, {"mlops.last_decision": "x"})
        # MLflow's prompt check: once for the six version tags (was once each), once per model tag
        assert reads.call_count == 3
        assert tags.items() <= client.get_model_version(MODEL, version).tags.items()
        model_tags = client.get_registered_model(MODEL).tags
        assert model_tags["mlops.last_decision"] == "x"
        assert "mlops.revision" in model_tags

        mlflow.genai.register_prompt(name="a-prompt", template="Hello {{name}}")
        with pytest.raises(MlflowException, match="not found"):
            tag_version(client, "a-prompt", "1", tags)
        assert not set(tags) & set(client._get_registry_client().get_model_version("a-prompt", "1").tags)


# -- a real server: proxied artifacts (mlflow-artifacts:/), the repository the benchmark reads through --
@pytest.fixture
def server_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with mlflow_server(tmp_path / "server") as server:
        monkeypatch.setenv(
            "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": server.url})
        )
        monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield server.url


@pytest.mark.slow
def test_cards_on_a_real_mlflow_server(server_store: str, tmp_path: Path):
    data = cancer_csv(tmp_path)
    runs = [train(MODEL, data, TREE, {"max_depth": depth}, run_id=f"s{depth}")["run_id"] for depth in (2, 3)]
    v1 = register(runs[0])
    assert promote(v1)["decision"] == "promoted"
    v2 = register(runs[1])
    assert promote(v2)["decision"] == "promoted"
    assert f"Replaced as @champion by version {v2}." in page(v1)
    assert "Promoted to @champion." in page(v2)
    assert decisions(v1, tmp_path) == ["promoted"]  # card.json found again through the server's listing
    assert f"Champion: version {v2}" in description()
    assert "Flags tumours for review." in description()
    with MLflowHook().session() as client:
        assert CARD_TAG in client.get_model_version(MODEL, v1).tags
    with pytest.raises(MLflowRequestError, match="does not exist"):
        ModelCardHook().write_card(MODEL, "99")
