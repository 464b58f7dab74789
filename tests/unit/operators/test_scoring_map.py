"""Mapped scoring, operator by operator: plan, one task per group, publish (real MLflow on SQLite)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from conftest import mlflow_connection
from support import cancer_champion, context

from mlops_provider.core.manifest import MANIFEST
from mlops_provider.exceptions import DataError
from mlops_provider.hooks.registry import MLflowRegistryHook
from mlops_provider.operators.scoring import BatchScoreOperator
from mlops_provider.operators.scoring_map import PlanBatchScoringOperator, PublishBatchScoresOperator

MODEL = "mapped"


def promote(version: str, expected_old: str | None) -> None:
    MLflowRegistryHook().move_alias(
        model_name=MODEL,
        alias="champion",
        expected_old=expected_old,
        new_version=version,
        why="test",
        who="test",
        action="promote",
        lock_owner="test",
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A champion, and a batch of five files: Parquet, one empty, CSV, one in a partition folder."""
    tmp = tmp_path_factory.mktemp("mapped")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_connection(tmp))
        mp.setenv("MLOPS_HOME", str(tmp))
        data = cancer_champion(tmp, MODEL)
        frame = pd.read_csv(data).drop(columns=["target"])
        frame.insert(0, "pid", [f"p{i}" for i in range(len(frame))])
        batch = tmp / "batch"
        (batch / "region=b").mkdir(parents=True)
        pieces = [frame.iloc[i * 150 : (i + 1) * 150] for i in range(4)]
        pieces[0].to_parquet(batch / "a.parquet", row_group_size=50)
        pieces[0].iloc[:0].to_parquet(batch / "b-empty.parquet")
        pieces[1].to_csv(batch / "c.csv", index=False)
        pieces[2].to_parquet(batch / "d.parquet")
        pieces[3].to_parquet(batch / "region=b" / "e.parquet")
        (batch / "_SUCCESS").write_text("")  # hidden names are not data
        ordered = pd.concat([pieces[0], pieces[1], pieces[2], pieces[3]], ignore_index=True)
        yield SimpleNamespace(tmp=tmp, batch=batch, frame=ordered)


def plan_op(store: SimpleNamespace, out: str, **kwargs) -> PlanBatchScoringOperator:
    args = {
        "task_id": "plan",
        "model_name": MODEL,
        "data_uri": "batch",
        "output_uri": out,
        "base_dir": str(store.tmp),
    }
    return PlanBatchScoringOperator(
        **{**args, **kwargs, "partitions_per_task": kwargs.get("partitions_per_task", 2)}
    )


def score_op(store: SimpleNamespace, out: str, part: object) -> BatchScoreOperator:
    return BatchScoreOperator(
        task_id="score",
        model_name=MODEL,
        data_uri="batch",
        output_uri=out,
        base_dir=str(store.tmp),
        id_columns=["pid"],
        probabilities=True,
        chunk_size=64,
        part=part,  # type: ignore[arg-type]
    )


def publish_op(store: SimpleNamespace, out: str, **kwargs) -> PublishBatchScoresOperator:
    return PublishBatchScoresOperator(
        task_id="publish", model_name=MODEL, output_uri=out, base_dir=str(store.tmp), **kwargs
    )


def run_all(store: SimpleNamespace, out: str, run_id: str = "manual__1") -> dict:
    groups = plan_op(store, out).execute(context("plan", run_id))
    for part in groups:
        score_op(store, out, part).execute(context("score", run_id))
    return publish_op(store, out).execute(context("publish", run_id))


def published(store: SimpleNamespace, out: str) -> tuple[dict, pd.DataFrame]:
    folder = store.tmp / out
    listed = json.loads((folder / MANIFEST).read_text())
    return listed, pd.concat([pd.read_parquet(folder / name) for name in listed["files"]], ignore_index=True)


def test_mapped_scoring_publishes_the_same_rows_as_one_task(store):
    out = f"out/{uuid.uuid4().hex[:6]}"
    summary = run_all(store, out)
    assert summary["rows"] == len(store.frame) == 569
    assert summary["groups"] == 3  # five files, two per task
    listed, rows = published(store, out)
    assert listed["rows"] == 569
    assert listed["versions"] == {"champion": "1"}
    assert list(rows["row"]) == list(range(569))  # the batch's row numbers, across groups
    assert list(rows["pid"]) == list(store.frame["pid"])
    single = BatchScoreOperator(
        task_id="one",
        model_name=MODEL,
        data_uri="batch",
        output_uri=f"{out}-single.parquet",
        base_dir=str(store.tmp),
        id_columns=["pid"],
        probabilities=True,
    ).execute(context("one"))
    whole = pd.read_parquet(single["output_uri"])
    pd.testing.assert_series_equal(rows["prediction"], whole["prediction"])
    assert np.allclose(rows.filter(like="proba_"), whole.filter(like="proba_"))
    # only the manifest's parts are left in the folder
    parts = sorted(p.name for p in (store.tmp / out).glob("part-*"))
    assert parts == sorted(listed["files"])


def test_a_retried_group_rewrites_only_its_own_part(store):
    out = f"out/{uuid.uuid4().hex[:6]}"
    groups = plan_op(store, out).execute(context("plan"))
    for part in groups:
        score_op(store, out, part).execute(context("score"))
    score_op(store, out, 1).execute(context("score", try_number=2))  # a retry of group 1
    publish_op(store, out).execute(context("publish"))
    listed, rows = published(store, out)
    assert len(rows) == 569
    assert list(rows["row"]) == list(range(569))
    assert len(list((store.tmp / out).glob("part-*"))) == len(
        listed["files"]
    )  # the first try's parts are gone


def test_a_new_plan_with_a_group_not_rescored_publishes_nothing_new(store):
    out = f"out/{uuid.uuid4().hex[:6]}"
    run_all(store, out)
    before = (store.tmp / out / MANIFEST).read_bytes()
    groups = plan_op(store, out).execute(context("plan", "manual__2"))  # re-planned: a new plan id
    score_op(store, out, groups[0]).execute(context("score", "manual__2"))
    with pytest.raises(DataError, match=r"nothing published .*group 00001's part is from another run"):
        publish_op(store, out).execute(context("publish", "manual__2"))
    assert (store.tmp / out / MANIFEST).read_bytes() == before  # the published output is the old run's, whole
    assert len(published(store, out)[1]) == 569


def test_a_champion_moved_between_plan_and_scoring_cannot_mix_versions(store):
    out = f"out/{uuid.uuid4().hex[:6]}"
    plan_op(store, out).execute(context("plan"))
    plan_file = store.tmp / out / "_parts" / "plan.json"
    plan = json.loads(plan_file.read_text())
    assert plan["versions"] == {"champion": "1"}  # pinned once, for every group
    for part in range(len(plan["groups"])):
        score_op(store, out, part).execute(context("score"))
    record = store.tmp / out / "_parts" / "00002.json"
    tampered = json.loads(record.read_text())
    tampered["versions"]["champion"] = "7"
    record.write_text(json.dumps(tampered))
    with pytest.raises(DataError, match="group 00002 was scored by version 7, not 1"):
        publish_op(store, out).execute(context("publish"))
    assert not (store.tmp / out / MANIFEST).exists()


@pytest.mark.parametrize("part", [3, -1, True, "0", None.__class__])
def test_a_part_that_is_not_a_group_fails_naming_it(store, part):
    out = f"out/{uuid.uuid4().hex[:6]}"
    plan_op(store, out).execute(context("plan"))
    with pytest.raises(AirflowFailException, match="is not a group of the plan"):
        score_op(store, out, part).execute(context("score"))


def test_a_mapped_run_needs_an_output_folder(store):
    with pytest.raises(AirflowFailException, match="writes a folder"):
        plan_op(store, "out/scores.parquet").execute(context("plan"))


@pytest.mark.parametrize("per_task", [0, -2, True, "2", 1.5])
def test_partitions_per_task_must_be_a_positive_integer(store, per_task):
    with pytest.raises(AirflowFailException, match="partitions_per_task"):
        plan_op(store, "out/x", partitions_per_task=per_task).execute(context("plan"))


def test_a_group_with_bad_values_fails_naming_its_file_and_nothing_is_published(store, tmp_path):
    batch = store.tmp / "bad-batch"
    batch.mkdir(exist_ok=True)
    good = pd.read_parquet(store.batch / "a.parquet")
    good.to_parquet(batch / "1.parquet")
    bad = good.astype({"mean radius": object})
    bad.loc[bad.index[3], "mean radius"] = "twelve"
    bad.to_csv(batch / "2.csv", index=False)
    out = f"out/{uuid.uuid4().hex[:6]}"
    groups = plan_op(store, out, data_uri="bad-batch", partitions_per_task=1).execute(context("plan"))
    op = lambda part: BatchScoreOperator(  # noqa: E731
        task_id="s",
        model_name=MODEL,
        data_uri="bad-batch",
        output_uri=out,
        base_dir=str(store.tmp),
        part=part,
    )
    op(groups[0]).execute(context("s"))
    with pytest.raises(AirflowFailException, match=r"'mean radius' holds text \(e.g. 'twelve'\)"):
        op(groups[1]).execute(context("s"))
    with pytest.raises(DataError, match="group 00001 wrote no part"):
        publish_op(store, out).execute(context("publish"))
    assert not (store.tmp / out / MANIFEST).exists()
    assert len(list((store.tmp / out).glob("part-00001-*"))) == 0  # the failed group's parts were discarded


def test_no_champion_skips_the_plan(store):
    with pytest.raises(AirflowSkipException, match="no champion yet"):
        plan_op(store, "out/none", alias="nobody").execute(context("plan"))


def test_unseen_share_limit_applies_to_the_whole_batch_at_publish(store):
    out = f"out/{uuid.uuid4().hex[:6]}"
    run_all(store, out)  # a tree on numbers: no encoder, no unseen share
    summary = publish_op(store, out, max_unseen_share=0.0, on_unseen="fail").execute(context("publish"))
    assert summary["unseen_share"] == {}
    # counts add up over groups: 60 in one group of 569 rows is 10.5%, refused above 10%, nothing published
    (store.tmp / out / MANIFEST).unlink()
    record = store.tmp / out / "_parts" / "00001.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "unseen": {"city": 60}}))
    with pytest.raises(AirflowFailException, match=r"'city' 10\.5%"):
        publish_op(store, out, max_unseen_share=0.1, on_unseen="fail").execute(context("publish"))
    assert not (store.tmp / out / MANIFEST).exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda plan, tmp: plan["groups"][0]["files"].append("/etc/hosts.csv"), "names file\\(s\\) outside"),
        (lambda plan, tmp: plan["groups"][0].update(files=[str(tmp / "train.parquet")]), "outside"),
        (lambda plan, tmp: plan.update(model_name="other"), "is for 'other'"),
        (lambda plan, tmp: plan.update(source="/elsewhere"), "scoring /elsewhere, not"),
        (lambda plan, tmp: plan.update(groups="nope"), "not a scoring plan"),
    ],
)
def test_a_tampered_plan_is_refused_before_anything_is_read(store, change, message):
    out = f"out/{uuid.uuid4().hex[:6]}"
    plan_op(store, out).execute(context("plan"))
    plan_file = store.tmp / out / "_parts" / "plan.json"
    plan = json.loads(plan_file.read_text())
    change(plan, store.tmp)
    plan_file.write_text(json.dumps(plan))
    with pytest.raises((AirflowFailException, DataError), match=message):
        score_op(store, out, 0).execute(context("score"))
    assert not list((store.tmp / out).glob("part-*"))


def test_parts_holding_other_rows_than_the_plan_counts_are_not_published(store):
    out = f"out/{uuid.uuid4().hex[:6]}"
    groups = plan_op(store, out).execute(context("plan"))
    for part in groups:
        score_op(store, out, part).execute(context("score"))
    record = json.loads((store.tmp / out / "_parts" / "00001.json").read_text())
    part = store.tmp / out / record["files"]["champion"][0]
    pd.read_parquet(part).iloc[:10].to_parquet(part)  # a part rewritten behind the record's back
    with pytest.raises(AirflowFailException, match=r"the parts hold \d+ rows, the plan counts 569"):
        publish_op(store, out).execute(context("publish"))
    assert not (store.tmp / out / MANIFEST).exists()
