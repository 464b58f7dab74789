"""GateScorer and decide_gate on real trained and registered models (MLflow on SQLite, sklearn), and
what a person is shown and answers for a manual approval."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from conftest import mlflow_connection
from support import cancer_csv, context

from mlops_provider.hooks.approval import APPROVE, REJECT, ApprovalHook, HumanDecision, approval_text
from mlops_provider.hooks.gate import GateScorer, decide_gate, gate_request
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.training import TrainModelOperator

ALONE = "gate-alone"  # versions 1 (dummy) and 2 (tree), no champion
CHAMPIONED = "gate-championed"  # the same two runs, champion -> version 1
THRESHOLDS = {"f1_macro": {"min": 0.5}}
VS_CHAMPION = {"f1_macro": {"min_delta": 0.0}}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("gate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_csv(tmp)
        runs = []
        for estimator, params in (
            ("sklearn.dummy.DummyClassifier", {"strategy": "most_frequent"}),
            ("sklearn.tree.DecisionTreeClassifier", {"max_depth": 3}),
        ):
            op = TrainModelOperator(
                task_id="train",
                model_name="gate",
                data_uri=str(data),
                target="target",
                estimator=estimator,
                estimator_params=params,
            )
            runs.append(op.execute(context("train", run_id=estimator))["run_id"])
        hook = MLflowRegistryHook()
        for name in (ALONE, CHAMPIONED):
            for run_id in runs:
                hook.register_run(name, run_id, {})
        with hook.session() as client:
            client.set_registered_model_alias(CHAMPIONED, "champion", "1")
        yield SimpleNamespace(runs=runs, hook=hook)


def request(name: str, version: str, **kw):
    options = {
        "alias": "champion",
        "task_type": None,
        "thresholds": THRESHOLDS,
        "vs_champion": VS_CHAMPION,
        "slices": None,
        "skip_vs_champion": False,
        "reuse_evaluation": True,
    }
    options.update(kw)
    return gate_request(name, version, **options)


@pytest.fixture(scope="module")
def alone_scores(store):
    return GateScorer(store.hook).score(request(ALONE, "2"))


def test_no_champion_means_no_champion_metrics(store, alone_scores):
    assert alone_scores.champion is None
    assert alone_scores.champion_version is None
    assert alone_scores.task_type == "classification"
    assert alone_scores.challenger_source == "computed"
    assert 0.5 < alone_scores.challenger["f1_macro"] <= 1.0
    decision = decide_gate(
        request(ALONE, "2"), alone_scores, THRESHOLDS, VS_CHAMPION, None, "promote", "auto"
    )
    assert decision.decision == "promote"
    assert [(g.gate, g.metric, g.passed) for g in decision.gates] == [("threshold_min", "f1_macro", True)]


def test_first_run_require_approval_waits_for_a_human(store, alone_scores):
    decision = decide_gate(
        request(ALONE, "2"), alone_scores, THRESHOLDS, None, None, "require_approval", "auto"
    )
    assert decision.decision == "await_approval"


def test_champion_is_scored_on_the_challengers_holdout(store):
    scores = GateScorer(store.hook).score(request(CHAMPIONED, "2"))
    assert scores.champion_version == "1"
    assert scores.champion is not None
    assert scores.champion["f1_macro"] < scores.challenger["f1_macro"]
    decision = decide_gate(request(CHAMPIONED, "2"), scores, THRESHOLDS, VS_CHAMPION, None, "promote", "auto")
    assert decision.decision == "promote"
    assert ("vs_champion", "f1_macro", True) in [(g.gate, g.metric, g.passed) for g in decision.gates]


def test_the_worse_challenger_is_refused(store):
    scores = GateScorer(store.hook).score(request(ALONE, "1"))
    decision = decide_gate(request(ALONE, "1"), scores, THRESHOLDS, None, None, "promote", "auto")
    assert decision.decision == "refuse"
    assert "f1_macro" in decision.reason


def test_skip_vs_champion_does_not_score_the_champion(store):
    scores = GateScorer(store.hook).score(request(CHAMPIONED, "2", skip_vs_champion=True))
    assert scores.champion_version == "1"
    assert scores.champion is None


def test_evaluation_record_is_reused_with_the_same_numbers(store, alone_scores):
    EvaluateModelOperator(task_id="evaluate", run_id=store.runs[1], compute_importance=False).execute(
        context("evaluate")
    )
    reused = GateScorer(store.hook).score(request(ALONE, "2"))
    assert reused.challenger_source == "evaluation"
    assert reused.challenger["f1_macro"] == pytest.approx(alone_scores.challenger["f1_macro"])
    recomputed = GateScorer(store.hook).score(request(ALONE, "2", reuse_evaluation=False))
    assert recomputed.challenger_source == "computed"


@pytest.mark.parametrize(
    ("thresholds", "vs_champion", "slices", "first_run", "named"),
    [
        ({"bogus_metric": {"min": 0.5}}, None, None, "promote", "bogus_metric"),
        ({"f1_macro": {"min": "high"}}, None, None, "promote", "thresholds.f1_macro.min"),
        ({"f1_macro": {"min": float("nan")}}, None, None, "promote", "thresholds.f1_macro.min"),
        ({"f1_macro": {"minimum": 0.5}}, None, None, "promote", "minimum"),
        (None, {"f1_macro": {"min_delta": "a bit"}}, None, "promote", "vs_champion.f1_macro.min_delta"),
        (None, {"rmse": {"min_delta": 0.0}}, None, "promote", "rmse"),
        (None, None, {"column": "mean radius", "max_gap": {"f1_macro": -1}}, "promote", "max_gap.f1_macro"),
        (["f1_macro"], None, None, "promote", "thresholds"),
        (THRESHOLDS, None, None, "sometimes", "first_run"),
    ],
)
def test_bad_gate_configuration_fails_naming_the_key(
    store, alone_scores, thresholds, vs_champion, slices, first_run, named
):
    with pytest.raises(AirflowFailException) as raised:
        decide_gate(request(ALONE, "2"), alone_scores, thresholds, vs_champion, slices, first_run, "auto")
    assert named in str(raised.value)
    assert ALONE in str(raised.value)


def test_approval_text_names_model_versions_and_every_gate(store):
    scores = GateScorer(store.hook).score(request(CHAMPIONED, "2"))
    thresholds = {"f1_macro": {"min": 0.5}, "accuracy": {"min": 0.6}}
    decision = decide_gate(
        request(CHAMPIONED, "2"), scores, thresholds, VS_CHAMPION, None, "promote", "manual"
    )
    assert decision.decision == "await_approval"
    summary = {
        "model_name": CHAMPIONED,
        "old_version": scores.champion_version,
        "new_version": "2",
        "reason": decision.reason,
        "gates": [g.as_dict() for g in decision.gates],
        "metrics": {"challenger": scores.challenger, "champion": scores.champion},
    }
    subject, body = approval_text(summary, "champion")
    assert CHAMPIONED in subject
    assert "2" in subject
    assert f"{CHAMPIONED}@champion" in body
    assert "from version 1 to version 2" in body
    lines = body.splitlines()
    for gate in decision.gates:
        assert any(gate.gate in line and f"`{gate.metric}`" in line for line in lines), gate
    assert len(decision.gates) == 3


def test_approval_text_without_gates():
    summary = {
        "model_name": "m",
        "old_version": None,
        "new_version": "4",
        "reason": "no gates configured",
        "gates": [],
        "metrics": {"challenger": {}, "champion": None},
    }
    subject, body = approval_text(summary, "prod")
    assert subject == "Promote m version 4 to prod?"
    assert "- no gates configured" in body


@pytest.mark.parametrize(
    ("who", "chosen", "timed_out", "approved"),
    [
        ("alice", [APPROVE], False, True),
        ("alice", [REJECT], False, False),
        ("alice", [APPROVE], True, False),
        ("", [APPROVE], False, False),
        ("alice", [], False, False),
        ("alice", [APPROVE, REJECT], False, False),
    ],
)
def test_human_decision_approved_only_for_a_named_approve_in_time(who, chosen, timed_out, approved):
    assert HumanDecision(who, chosen, timed_out).approved is approved


@pytest.mark.parametrize(
    ("event", "who", "approved"),
    [
        (
            {"responded_by_user": {"name": "alice"}, "chosen_options": [APPROVE], "timedout": False},
            "alice",
            True,
        ),
        ({"responded_by_user": {"id": "u-7"}, "chosen_options": [APPROVE]}, "u-7", True),
        ({"responded_by_user": None, "chosen_options": [APPROVE], "timedout": True}, "", False),
        ({"chosen_options": [APPROVE]}, "", False),
    ],
)
def test_decision_read_from_the_resume_event(event, who, approved):
    answer = ApprovalHook.decision(event)
    assert answer.who == who
    assert answer.approved is approved
