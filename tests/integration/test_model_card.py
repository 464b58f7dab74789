"""Model cards on a real MLflow store (SQLite) with the real registry operators: written at registration,
rewritten at every decision (promoted, refused, pending approval, approved, rolled back), the registered
model's description pointing at the champion's card, hostile config text escaped."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskAwaitingInput
from support import cancer_csv, context, train

from mlops_provider.core import lineage
from mlops_provider.core.model_card_record import CARD_TAG
from mlops_provider.hooks.mlflow import MLflowHook
from mlops_provider.hooks.model_card import ModelCardHook, read_card
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.registry import (
    PromoteModelOperator,
    RegisterModelOperator,
    RollbackModelOperator,
)

MODEL = "cards"
HOSTILE = "<script>alert(\"card\")</script> & 'quotes'"
CARD = {
    "description": f"Flags tumours for review. {HOSTILE}",
    "owners": ["ml-team@example.com", HOSTILE],
    "limitations": ["Trained on one hospital's scans only.", "x" * 3000],
}
GATES = {"thresholds": {"f1_macro": {"min": 0.5}}, "vs_champion": {"f1_macro": {"min_delta": 0.0}}}


def card(version: str, kind: str = "html") -> str:
    body = read_card(MLflowHook(), MODEL, version, f"model_card.{kind}")
    assert body is not None, f"no {kind} card for version {version}"
    return body.decode("utf-8")


def state(run_id: str, tmp_path: Path) -> dict[str, Any]:
    with MLflowHook().session() as client:
        return json.loads(
            Path(client.download_artifacts(run_id, "model_card/card.json", str(tmp_path))).read_text()
        )


def description() -> str:
    with MLflowHook().session() as client:
        return str(client.get_registered_model(MODEL).description)


def fit(data: Path, estimator: str, params: dict[str, Any], run: str, slices: bool = True) -> dict[str, Any]:
    trained = train(MODEL, data, estimator, params, run_id=run)
    EvaluateModelOperator(
        task_id="evaluate", run_id=trained["run_id"], slice_column="mean radius" if slices else None
    ).execute(context("evaluate"))
    return trained


def register(run_id: str) -> tuple[str, dict[str, Any]]:
    ctx = context("register")
    op = RegisterModelOperator(task_id="register", model_name=MODEL, run_id=run_id, model_card=CARD)
    return op.execute(ctx)["version"], ctx["ti"].pushed


def promote(version: str, ctx: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    op = PromoteModelOperator(task_id="promote", model_name=MODEL, version=version, **{**GATES, **kw})
    return op.execute(ctx or context("promote"))


@pytest.fixture
def data(tmp_path: Path, mlflow_store: Path) -> Path:
    return cancer_csv(tmp_path)


def test_cards_follow_registration_decisions_and_rollback(data: Path, tmp_path: Path):
    # registration: the first card, no decision yet, lineage and holdout numbers, hostile text escaped
    weak = fit(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1}, "r1")
    v1, pushed = register(weak["run_id"])
    assert pushed["model_card_url"] == f"/mlops/cards/{MODEL}/{v1}/model_card.html"
    page = card(v1)
    assert "Registered: no decision yet." in page
    assert weak["training_data_fingerprint"] in page
    with MLflowHook().session() as client:
        run = client.get_run(weak["run_id"])
        version_tags = client.get_model_version(MODEL, v1).tags
    f1 = run.data.metrics["holdout_f1_macro"]
    assert f"{f1:.6g}" in page
    assert "mean radius" in page  # the slices
    assert "mean concave points" in page or "worst radius" in page  # feature importance rows
    assert version_tags[CARD_TAG]
    assert version_tags[lineage.TRAINING_DATA_FINGERPRINT] == weak["training_data_fingerprint"]
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;card&quot;)&lt;/script&gt; &amp; &#x27;quotes&#x27;" in page
    assert "<script>" not in card(v1, "md")
    assert "Trained on one hospital" in card(v1, "md")
    assert state(weak["run_id"], tmp_path)["config"]["owners"][0] == "ml-team@example.com"

    # a retried registration rewrites the same card: one version, still no decision
    again, _ = register(weak["run_id"])
    assert again == v1
    assert "Registered: no decision yet." in card(v1)

    # first promotion: the decision and its gates on the card; the description points at its card
    assert promote(v1)["decision"] == "promoted"
    page = card(v1)
    assert "Promoted to @champion." in page
    assert "threshold_min" in page
    assert f"runs:/{weak['run_id']}/model_card/model_card.md" in description()
    assert f"Champion: version {v1}" in description()
    assert "\\<script\\>" in description()  # the config's text, escaped for MLflow's Markdown

    # a worse version is refused: its card says so and why
    dummy = fit(data, "sklearn.dummy.DummyClassifier", {"strategy": "most_frequent"}, "r2", slices=False)
    v2, _ = register(dummy["run_id"])
    with pytest.raises(AirflowFailException, match="refused"):
        promote(v2)
    page = card(v2)
    assert "Refused: gate(s) failed" in page
    assert "vs_champion" in page
    assert "✗ fail" in page
    assert f"Champion: version {v1}" in description()  # unchanged

    # a better one: promoted, the replaced champion's card and the description follow
    forest = fit(data, "sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20}, "r3")
    v3, _ = register(forest["run_id"])
    assert promote(v3)["decision"] == "promoted"
    assert f"Replaced as @champion by version {v3}." in card(v1)
    assert f"runs:/{forest['run_id']}/model_card/model_card.md" in description()

    # rollback: both cards rewritten, the description back on the restored champion's card
    ctx = context("rollback")
    RollbackModelOperator(task_id="rollback", model_name=MODEL, reason="bad <b>outputs</b>").execute(ctx)
    assert ctx["ti"].pushed["model_card_url"] == f"/mlops/cards/{MODEL}/{v1}/model_card.html"
    assert f"Restored as @champion by a rollback (from version {v3})." in card(v1)
    assert "bad &lt;b&gt;outputs&lt;/b&gt;" in card(v1)
    assert f"Rolled back: @champion moved back to version {v1}." in card(v3)
    assert f"Champion: version {v1}" in description()


def test_approval_cards_pending_then_approved_with_who_when_and_comment(data: Path):
    run = fit(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 2}, "r-approval", slices=False)
    version, _ = register(run["run_id"])
    op = PromoteModelOperator(
        task_id="promote", model_name=MODEL, version=version, approval="manual", **GATES
    )
    ctx = context("promote")
    # upsert_hitl_detail talks to the task supervisor, absent outside a task process
    with (
        mock.patch("airflow.sdk.execution_time.hitl.upsert_hitl_detail"),
        pytest.raises(TaskAwaitingInput) as parked,
    ):
        op.execute(ctx)
    assert ctx["ti"].pushed["model_card_url"] == f"/mlops/cards/{MODEL}/{version}/model_card.html"
    assert "Pending approval" in card(version)
    event = {
        "chosen_options": ["Approve"],
        "responded_by_user": {"id": "7", "name": "alice"},
        "responded_at": datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        "params_input": {"comment": "<img src=x onerror=alert(1)> looks fine"},
    }
    assert (
        op.execute_complete(ctx, event=event, summary=parked.value.kwargs["summary"])["decision"]
        == "promoted"
    )
    page = card(version)
    assert "Approved by alice and promoted to @champion." in page
    assert "2026-03-01T09:30:00+00:00" in page
    assert "&lt;img src=x onerror=alert(1)&gt; looks fine" in page
    assert "<img" not in page
    assert f"Champion: version {version}" in description()


def test_cards_are_served_only_for_their_own_model_version(data: Path):
    run = fit(data, "sklearn.tree.DecisionTreeClassifier", {"max_depth": 1}, "r-serve", slices=False)
    version, _ = register(run["run_id"])
    hook = ModelCardHook()
    assert read_card(hook, MODEL, version, "model_card.html") is not None
    assert read_card(hook, MODEL, version, "card.json") is None  # only the two card files
    assert read_card(hook, MODEL, "99", "model_card.html") is None
    assert read_card(hook, "no-such-model", "1", "model_card.html") is None
    # the same run registered under another name: that version gets its own card, and the first
    # model's card (overwritten in the shared run) is no longer served as if it were the first's
    other = RegisterModelOperator(task_id="register", model_name="other-model", run_id=run["run_id"])
    other_version = other.execute(context("register"))["version"]
    assert read_card(hook, "other-model", other_version, "model_card.html") is not None
    assert read_card(hook, MODEL, version, "model_card.html") is None
