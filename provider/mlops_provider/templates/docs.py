"""doc_md for the generated DAGs and tasks: what the Airflow UI shows next to each step."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_provider.templates.schema import ModelConfig

VALIDATE = """Runs the Great Expectations suite on the data. A failed expectation fails this task
without retry (or only warns with `on_failure: warn`); an empty batch never passes. The summary is in
XCom and the full report behind the **Validation report** link."""

TRAIN = """Trains the estimator with a fixed seed, logs an MLflow run (params, metrics, signature,
input example, lineage: data fingerprint, config hash, DAG run, and why the run started: the nightly
**schedule**, a **drift** Asset event with its id and source run, or a **manual** trigger with any
forced-retrain reason) and the holdout the gate reuses. **MLflow run** link: the run in the MLflow UI."""

EVALUATE = """Scores the model on the holdout: overall and per-slice metrics, permutation feature
importance (artifact). Non-finite metrics are reported as such and refuse the gate."""

REGISTER = """Registers the run's model in the MLflow registry. Idempotent: a retry returns the same
version. **MLflow model version** link: the version in the MLflow UI."""

PROMOTE = """The quality gate: absolute thresholds, challenger vs current champion on the same
holdout, slice gap, first-run policy, optional human approval. Moves the alias only when every gate
passes and records the decision (tags on the version, XCom). A refusal fails this task without retry;
the champion is unchanged. The challenger's metrics come from evaluate_model's record when it matches
this version's model and holdout (else they are recomputed); the champion is always scored."""

DRIFT = """Compares the current batch with the champion's training data (found through its lineage
tags) column by column with pinned methods. When the drifted share reaches the threshold it emits an
event on the model's drift Asset, which starts the retrain DAG. Too few rows: `insufficient_data`,
never drift. **Drift report** link: the Evidently report."""

SCORE = """Scores the batch with the champion, pinning the version resolved at the start for the
whole run, chunk by chunk (memory bounded by scoring.chunk_size); predictions carry the model version
and appear whole (a file renamed when done, or a folder published by its manifest). Skips when there
is no champion yet."""


def _source(path: str) -> str:
    return f"\n\nGenerated from `{path}` by `mlops_provider.templates.build_dags`."


def retrain_doc(config: ModelConfig, path: str) -> str:
    gates = ", ".join(
        f"{m} {b.model_dump(exclude_none=True)}" for m, b in config.evaluation.thresholds.items()
    )
    return (
        f"## Retrain `{config.model.name}` ({config.model.task})\n\n"
        f"validate -> train (`{config.training.estimator}`) -> evaluate -> register -> promote "
        f"(alias `{config.promotion.alias}`, approval `{config.promotion.approval}`).\n\n"
        f"Runs on `{config.schedule}` (UTC) **or** when the drift monitor emits a drift event; at most one "
        f"run at a time.\n\nGates: primary metric `{config.evaluation.primary_metric}`; "
        f"thresholds: {gates or 'none'}; vs champion: "
        f"{', '.join(f'{m} min_delta {d.min_delta}' for m, d in config.evaluation.vs_champion.items()) or 'none'}.\n\n"
        "Trigger with config to require approval, override the training data (only inside "
        f"{config.data.allowed_training_prefixes or 'no prefix: overrides are off'}) or skip the champion "
        f"comparison with a reason (forced retrain: {'allowed' if config.promotion.allow_forced else 'off'}, "
        "promotion.allow_forced). A trigger can only make the gate stricter." + _source(path)
    )


def drift_doc(config: ModelConfig, path: str) -> str:
    return (
        f"## Drift monitor `{config.model.name}`\n\nOn `{config.drift.schedule}`: validate the current batch "
        f"`{config.data.current}`, compare it with the champion's training data "
        f"({config.drift.numeric_method} / {config.drift.categorical_method}); dataset drift when at least "
        f"{config.drift.drift_share:.0%} of columns drift and both sides have >= {config.drift.min_rows} rows. "
        "Drift emits the Asset event that starts the retrain DAG." + _source(path)
    )


def score_doc(config: ModelConfig, path: str) -> str:
    per_task = config.scoring.partitions_per_task
    mapped = (
        f" Mapped: one `score_batch` task per {per_task} input file(s); `publish_scores` publishes the "
        "folder's manifest once every group is scored."
        if per_task
        else ""
    )
    return (
        f"## Batch scoring `{config.model.name}`\n\nOn `{config.scoring.schedule}`: score `{config.data.current}` "
        f"with `models:/{config.model.name}@{config.promotion.alias}` into `{config.scoring.output}`."
        + mapped
        + _source(path)
    )
