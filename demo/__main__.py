"""`make demo`: the retraining loop end to end, under a real Airflow scheduler, on the embedded default.

1. First training on Seattle's cold months (2012-2013): validate, train, evaluate, register, promote.
2. A summer batch arrives: the drift monitor flags it and emits the model's drift Asset event.
3. The scheduler starts the retrain DAG because of that event (summer labels have landed meanwhile);
   the gate compares the challenger with the champion on the same holdout and says why it decides.
4. Batch scoring uses the champion.
5. A corrupted export lands: validation refuses it; the champion stays unchanged.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from demo.airflow_local import ROOT, embedded_env

MODEL = "seattle_weather"
DATA = ROOT / "dags" / "configs" / "seattle_weather" / "data"


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, title: str) -> None:
    say(f"\n== {number}. {title}")


def show_run(dag_id: str, run_id: str, state: str) -> None:
    from demo import airflow_local as af

    tasks = af.task_states(dag_id, run_id)
    order = [
        "validate_data",
        "validate_current",
        "train_model",
        "evaluate_model",
        "register_model",
        "promote_model",
        "check_drift",
        "score_batch",
    ]
    listed = [f"{t}={tasks[t]}" for t in order if t in tasks]
    say(f"   {dag_id} run {run_id}: {state.upper()}  [{', '.join(listed)}]")


def champion() -> str:
    from mlops_provider.hooks.mlflow import MLflowHook

    with MLflowHook().session() as client:
        try:
            version = client.get_model_version_by_alias(MODEL, "champion")
        except Exception:
            return "none"
        return str(version.version)


def describe_gate(summary: dict | None) -> None:
    if not summary:
        say("   gate: no decision recorded")
        return
    old = summary.get("old_version")
    say(
        f"   gate decision: {summary.get('decision')} (champion {'v' + str(old) if old else 'none'} -> "
        f"challenger v{summary.get('new_version')}): {summary.get('reason')}"
    )
    for gate in summary.get("gates", [])[:8]:
        mark = "pass" if gate.get("passed") else "FAIL"
        value, threshold = gate.get("value"), gate.get("threshold")
        value_text = f"{value:.3f}" if isinstance(value, float) else str(value)
        say(f"     [{mark}] {gate.get('gate')} {gate.get('metric', '')}: {value_text} vs {threshold}")


def main() -> int:
    """
    The loop, with every Airflow process it starts stopped on the way out, whatever happens: Ctrl-C,
    SIGTERM or SIGHUP stop the components (SIGKILL after 20 s; a second Ctrl-C at once), and a
    `make demo` or `make up` already using AIRFLOW_HOME (one SQLite database) is refused.
    """
    os.environ.update(embedded_env())
    from demo import airflow_local as af

    home = Path(os.environ["AIRFLOW_HOME"])
    try:
        owner = af.claim_home(home, "make demo")
    except af.HomeBusy as err:
        say(str(err))
        return 2
    with af.stop_on_signals():
        try:
            return loop()
        except af.Interrupted as interrupt:
            say(f"\n{interrupt}: stopping Airflow ...")
            return 130
        finally:
            left = af.release_home(home, owner)
            if left:
                say(f"could not stop pids {sorted({p.pid for p in left})}")


def loop() -> int:
    started = time.monotonic()
    from demo import airflow_local as af
    from demo import data

    say("airflow-provider-mlops demo: Seattle weather (vega_datasets), embedded default")
    say(f"   AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}  MLflow: sqlite:///{ROOT / '.mlflow' / 'mlflow.db'}")
    counts = data.write_initial(DATA)
    data.remove_corrupted_batch(DATA)
    say(
        f"   data: {counts['train_rows']} rows of cold months to train on, a summer batch of {counts['batch_rows']} rows"
    )
    af.airflow_cli("db", "migrate")
    retrain, drift, score = f"{MODEL}_retrain", f"{MODEL}_drift_monitor", f"{MODEL}_batch_score"
    with af.running("scheduler", "dag-processor"):
        af.wait_for_dags([retrain, drift, score])
        for dag_id in (retrain, drift, score):
            af.set_paused(dag_id, False)

        step(1, "First training: validate -> train -> evaluate -> register -> promote")
        before = champion()
        run_id = af.trigger(retrain)
        state = af.wait_run(retrain, run_id)
        show_run(retrain, run_id, state)
        registered = af.xcom(retrain, run_id, "register_model") or {}
        describe_gate(af.xcom(retrain, run_id, "promote_model"))
        say(
            f"   model {MODEL} version {registered.get('version')}; champion: {f'v{before}' if before else 'none'} -> v{champion()}"
        )
        if state != "success":
            return fail(retrain, run_id)

        step(2, f"A summer batch arrives ({data.SUMMER_BATCH_DATE}); the drift monitor checks it")
        known = {r["run_id"] for r in af.runs(retrain)}
        batch_day = datetime.fromisoformat(data.SUMMER_BATCH_DATE).replace(tzinfo=UTC)
        drift_run = af.trigger(drift, logical_date=batch_day)
        state = af.wait_run(drift, drift_run)
        show_run(drift, drift_run, state)
        summary = af.xcom(drift, drift_run, "check_drift") or {}
        say(
            f"   drift status: {summary.get('status')}; drifted share {summary.get('drift_share')} "
            f"(threshold {summary.get('threshold_share')}); drifted columns: {summary.get('drifted_columns')}"
        )
        say(f"   report: {summary.get('report_uri')}")
        if summary.get("status") != "drift":
            say("   expected drift between the cold-month training data and a summer batch")
            return 1

        step(3, "Summer labels land; the drift Asset event has started the retrain DAG")
        rows = data.land_summer_labels(DATA)
        say(f"   {rows} labelled warm-season rows added to the training data")
        run_id = af.wait_new_run(retrain, known)
        state = af.wait_run(retrain, run_id)
        show_run(retrain, run_id, state)
        trigger = (af.xcom(retrain, run_id, "train_model") or {}).get("trigger") or {}
        say(
            f"   started by: {trigger.get('cause')} {[e.get('asset') for e in trigger.get('drift_events', [])]}"
        )
        describe_gate(af.xcom(retrain, run_id, "promote_model"))
        say(f"   champion now: v{champion()}")

        step(4, "Batch scoring with the champion")
        score_run = af.trigger(score, logical_date=batch_day)
        state = af.wait_run(score, score_run)
        show_run(score, score_run, state)
        scored = af.xcom(score, score_run, "score_batch") or {}
        say(
            f"   scored {scored.get('rows')} rows with v{scored.get('version')} -> {scored.get('output_uri')}"
        )

        step(5, "A corrupted export lands in the training data")
        data.land_corrupted_batch(DATA)
        held = champion()
        run_id = af.trigger(retrain)
        state = af.wait_run(retrain, run_id)
        show_run(retrain, run_id, state)
        validation = af.xcom(retrain, run_id, "validate_data") or {}
        for failed in (validation.get("failed_expectations") or [])[:5]:
            say(
                f"   refused: {failed.get('type')} on {failed.get('column')}: {failed.get('unexpected_values')}"
            )
        say(f"   champion unchanged: v{held} -> v{champion()}")
        data.remove_corrupted_batch(DATA)

    say(f"\nDone in {time.monotonic() - started:.0f}s. Where to look:")
    say(
        "   make up   -> Airflow UI http://127.0.0.1:8080 (DAGs tagged 'mlops') and MLflow UI http://127.0.0.1:5000"
    )
    say(f"   reports   -> {ROOT / '.mlops' / 'reports'}")
    say(f"   task logs -> {Path(os.environ['AIRFLOW_HOME']) / 'logs'}")
    return 0


def fail(dag_id: str, run_id: str) -> int:
    say(f"   {dag_id} failed; see the task logs under {os.environ['AIRFLOW_HOME']}/logs")
    return 1


if __name__ == "__main__":
    sys.exit(main())
