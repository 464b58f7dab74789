"""``<name>_batch_score`` with ``scoring.partitions_per_task``: plan, mapped scoring, publish, through
dag.test() on real data (Seattle weather), real MLflow and the DAG factory."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support import import_dag_file, return_value

from mlops_provider.core.data import read_frame
from mlops_provider.core.manifest import MANIFEST
from mlops_provider.templates.placeholder import placeholder_dag_id
from tests.integration.test_templates_dags import (
    BATCH_DAY,
    MODEL,
    champion,
    config,
    model_dags,  # noqa: F401  (the fixture)
    months,
    weather,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MAPPED = {"data": {"current": "data/batches/{{ ds }}"}, "scoring": {"partitions_per_task": 2}}


def summer_batch(configs: Path) -> pd.DataFrame:
    """The summer batch as four Parquet files (one in a partition folder) in the day's folder."""
    frame = months(weather(), (2014,), (6, 7, 8)).reset_index(drop=True)
    folder = configs / "data" / "batches" / "2014-08-31"
    (folder / "part=b").mkdir(parents=True)
    for i, month in enumerate((6, 7, 8)):
        piece = frame[pd.to_datetime(frame["date"]).dt.month == month]
        piece.to_parquet(folder / f"{i}-2014-{month:02d}.parquet")
    frame.iloc[:0].to_parquet(folder / "part=b" / "empty.parquet")
    return frame


def mapped_states(run) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        found.setdefault(ti.task_id, []).append(str(ti.state))
    return found


def test_mapped_batch_score_publishes_one_output_pinned_to_one_version(model_dags):  # noqa: F811
    dags = model_dags(MAPPED)
    score_dag = dags[f"{MODEL}_batch_score"]
    assert set(score_dag.task_dict) >= {"plan_scoring", "score_batch", "publish_scores"}
    frame = summer_batch(model_dags.configs)

    skipped = score_dag.test(logical_date=BATCH_DAY)
    assert mapped_states(skipped)["plan_scoring"] == ["skipped"]  # no champion yet: nothing mapped

    retrain = mapped_states(dags[f"{MODEL}_retrain"].test())
    assert all(states == ["success"] for states in retrain.values()), retrain
    assert champion() == "1"
    run = score_dag.test(logical_date=BATCH_DAY)
    states = mapped_states(run)
    assert states["plan_scoring"] == ["success"]
    assert states["validate_partitions"] == ["success", "success"]  # validated group by group
    assert states["validate_current"] == ["success"]  # one verdict before anything is scored
    assert return_value(run, "validate_current")["rows"] == 92
    assert states["score_batch"] == ["success", "success"]  # four files, two per task
    assert states["publish_scores"] == ["success"]
    summary = return_value(run, "publish_scores")
    assert summary["version"] == "1"
    assert summary["rows"] == len(frame) == 92
    assert summary["monitoring_run_id"]  # recorded for the performance monitor (feedback is on)
    out = Path(summary["output_uri"])
    listed = json.loads((out / MANIFEST).read_text())
    assert listed["versions"] == {"champion": "1"}
    scored = read_frame(str(out))
    assert len(scored) == 92
    assert list(scored["row"]) == list(range(92))
    assert list(scored["date"]) == list(frame["date"])
    assert set(scored["model_version"]) == {"1"}


def test_a_file_named_output_is_refused_with_partitions_per_task(model_dags):  # noqa: F811
    sections = {**MAPPED, "scoring": {"partitions_per_task": 2, "output": "preds/{{ ds }}.parquet"}}
    path = model_dags.configs / f"{MODEL}.yaml"
    path.write_text(yaml.safe_dump(config(sections)))
    found = import_dag_file(model_dags.configs.parent / "mlops_dags.py")
    placeholder = found[placeholder_dag_id(path)]
    assert "scoring" in placeholder.description
    assert "partitions_per_task writes a folder" in placeholder.description


def test_mapped_shadow_scoring_publishes_the_previous_champion_beside(model_dags):  # noqa: F811
    dags = model_dags(MAPPED)
    frame = summer_batch(model_dags.configs)
    for _ in range(2):  # the same data twice: version 2 wins on the holdout tie (min_delta -0.01)
        retrain = mapped_states(dags[f"{MODEL}_retrain"].test())
        assert all(states == ["success"] for states in retrain.values()), retrain
    assert champion() == "2"
    run = dags[f"{MODEL}_batch_score"].test(logical_date=BATCH_DAY)
    assert mapped_states(run)["publish_scores"] == ["success"]
    summary = return_value(run, "publish_scores")
    assert summary["shadow"] == {"previous_champion": "1"}
    shadow = read_frame(summary["shadow_output_uri"])
    assert len(shadow) == len(frame)
    assert set(shadow["alias"]) == {"previous_champion"}
    assert set(shadow["model_version"]) == {"1"}
    assert set(read_frame(summary["output_uri"])["model_version"]) == {"2"}


def test_a_bad_partition_fails_the_one_verdict_and_nothing_is_scored(model_dags):  # noqa: F811
    dags = model_dags(MAPPED)
    summer_batch(model_dags.configs)
    folder = model_dags.configs / "data" / "batches" / "2014-08-31"
    bad = pd.read_parquet(folder / "1-2014-07.parquet")
    bad.loc[bad.index[:3], "temp_max"] = None  # the suite wants temp_max in every row
    bad.to_parquet(folder / "1-2014-07.parquet")
    retrain = mapped_states(dags[f"{MODEL}_retrain"].test())
    assert all(states == ["success"] for states in retrain.values()), retrain
    run = dags[f"{MODEL}_batch_score"].test(logical_date=BATCH_DAY)
    states = mapped_states(run)
    assert states["validate_current"] == ["failed"]
    assert set(states["score_batch"]) <= {"upstream_failed"}
    assert states["publish_scores"] == ["upstream_failed"]
    verdict = return_value(run, "validate_current")
    assert verdict["success"] is False
    assert any(
        f["column"] == "temp_max" and f["unexpected_count"] == 3 for f in verdict["failed_expectations"]
    )
