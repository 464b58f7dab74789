"""`make demo`: the retraining loop end to end, under a real Airflow scheduler, on the embedded default.

1. First training on Seattle's cold months (2012-2013): validate, train, evaluate, register, promote;
   the gate reads a business metric (dags/weather_kpis.py), a cost matrix and a robustness check,
   and the version gets its model card.
2. A summer batch arrives: the drift monitor flags it and emits the model's drift Asset event.
3. The scheduler starts the retrain DAG because of that event (summer labels have landed meanwhile);
   the gate compares the challenger with the champion on the same holdout and says why it decides.
4. Batch scoring uses the champion (the previous champion scores the batch in shadow).
5. A corrupted export lands: validation refuses it; the champion stays unchanged.
6. A year on, summer 2015 arrives month by month without its labels; the champion scores each batch.
7. June's labels come back first: too few for the performance monitor to judge.
8. The rest land: the monitor compares the live metric with the champion's holdout value and acts
   (a degraded champion's performance event starts the retrain DAG).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from demo.airflow_local import ROOT, embedded_env

MODEL = "seattle_weather"
PERFORMANCE = f"{MODEL}_performance_monitor"
BUSINESS_METRICS = ("rain_planning_value", "expected_cost")  # dags/weather_kpis.py; the cost matrix
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
        "check_performance",
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
    challenger = (summary.get("metrics") or {}).get("challenger") or {}
    business = {m: challenger.get(m) for m in BUSINESS_METRICS if m in challenger}
    if business:
        say("   business metrics: " + ", ".join(f"{m} {number(v)}" for m, v in business.items()))


def show_model_card(version: object) -> None:
    """The version's model card: where it is served, and its first lines (the Markdown)."""
    from mlops_provider.hooks.mlflow import MLflowHook
    from mlops_provider.hooks.model_card import read_card

    card = read_card(MLflowHook(), MODEL, str(version), "model_card.md")
    if card is None:
        say(f"   model card: none for version {version}")
        return
    say(
        f"   model card: /mlops/cards/{MODEL}/{version}/model_card.html (`make up`; also linked on the Models page)"
    )
    lines = [line for line in card.decode().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("## Intended use")), 0)
    for line in lines[:2] + lines[start : start + 5]:
        say(f"     | {line[:110]}")


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
        af.wait_for_dags([retrain, drift, score, PERFORMANCE])
        for dag_id in (retrain, drift, score, PERFORMANCE):
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
        show_model_card(registered.get("version"))
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
        show_retrain(retrain, known)
        say(f"   champion now: v{champion()}")

        step(4, "Batch scoring with the champion")
        score_run = af.trigger(score, logical_date=batch_day)
        state = af.wait_run(score, score_run)
        show_run(score, score_run, state)
        scored = af.xcom(score, score_run, "score_batch") or {}
        say(
            f"   scored {scored.get('rows')} rows with v{scored.get('version')} (in shadow: {shadows(scored)}) -> {scored.get('output_uri')}"
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
        if close_the_loop() != 0:
            return 1

    say(f"\nDone in {time.monotonic() - started:.0f}s. Where to look:")
    say(
        "   make up   -> Airflow UI http://127.0.0.1:8080 (DAGs tagged 'mlops') and MLflow UI http://127.0.0.1:5000"
    )
    say(f"   reports   -> {ROOT / '.mlops' / 'reports'}")
    say(f"   task logs -> {Path(os.environ['AIRFLOW_HOME']) / 'logs'}")
    return 0


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def shadows(scored: dict) -> str:
    return ", ".join(f"@{alias} v{v}" for alias, v in (scored.get("shadow") or {}).items()) or "none"


def close_the_loop() -> int:
    """Steps 6-8: scored batches, labels arriving late, and what the performance monitor concludes."""
    from demo import airflow_local as af
    from demo import data

    score, retrain = f"{MODEL}_batch_score", f"{MODEL}_retrain"
    step(6, "A year on: summer 2015 arrives month by month, without its labels; the champion scores it")
    sizes = data.write_2015_batches(DATA)
    say(f"   batches {', '.join(f'{d} ({n} rows)' for d, n in sizes.items())}: weather left blank")
    runs = {d: af.trigger(score, logical_date=day(d)) for d in sizes}  # queued: one at a time
    for run_id in runs.values():
        state = af.wait_run(score, run_id)
        show_run(score, run_id, state)
        scored = af.xcom(score, run_id, "score_batch") or {}
        say(
            f"   scored {scored.get('rows')} rows with v{scored.get('version')} (in shadow: {shadows(scored)})"
        )
        if state != "success":
            return fail(score, run_id)

    step(7, "Labels arrive late: June's come back first; the performance monitor checks what it has")
    say(f"   {data.land_2015_labels(DATA, (6,))} labels of June landed under {DATA / 'labels'}")
    if monitor("2015-09-01") is None:
        return 1

    step(8, "July's and August's labels land: the monitor judges the champion on them")
    rows = data.land_2015_labels(DATA, (7, 8))
    added = data.land_2015_training_rows(DATA)
    say(f"   {rows} more labels landed; the {added} labelled summer-2015 rows join the training data too")
    known = {r["run_id"] for r in af.runs(retrain)}
    summary = monitor("2015-09-15")
    if summary is None:
        return 1
    if summary.get("event"):
        show_retrain(retrain, known)
    say(f"   champion now: v{champion()}")
    return 0


def show_retrain(retrain: str, known: set) -> None:
    """The retrain run an Asset event started: its tasks, why it started, the gate's decision."""
    from demo import airflow_local as af

    run_id = af.wait_new_run(retrain, known)
    state = af.wait_run(retrain, run_id)
    show_run(retrain, run_id, state)
    trigger = (af.xcom(retrain, run_id, "train_model") or {}).get("trigger") or {}
    say(f"   started by: {trigger.get('cause')} {[e.get('asset') for e in trigger.get('drift_events', [])]}")
    describe_gate(af.xcom(retrain, run_id, "promote_model"))


def monitor(logical_day: str) -> dict | None:
    """One performance monitor run as of ``logical_day``; its summary (``None`` when the run failed)."""
    from demo import airflow_local as af

    run_id = af.trigger(PERFORMANCE, logical_date=day(logical_day))
    state = af.wait_run(PERFORMANCE, run_id)
    show_run(PERFORMANCE, run_id, state)
    if state != "success":
        fail(PERFORMANCE, run_id)
        return None
    summary = af.xcom(PERFORMANCE, run_id, "check_performance") or {}
    describe_performance(summary)
    return summary


def describe_performance(summary: dict) -> None:
    """Status, labels counted, live metric vs holdout, the shadow previous champion, label notes, action."""
    from mlops_provider.hooks.performance import PerformanceHook

    version, window = summary.get("champion_version"), summary.get("window") or {}
    say(
        f"   status: {summary.get('status')}; {summary.get('labels')} labelled rows of @champion v{version} "
        f"(window {str(window.get('start'))[:10]} .. {str(window.get('end'))[:10]}: {window.get('batches')} batches)"
    )
    holdout = PerformanceHook().holdout_metrics(MODEL, str(version)) if version else {}
    for metric, value in (summary.get("live") or {}).items():
        say(f"   live {metric} {number(value)} vs holdout {number(holdout.get(metric))}")
    for gate in summary.get("degrade") or []:
        mark = "pass" if gate.get("passed") else "FAIL"
        say(
            f"     [{mark}] degrade {gate.get('metric')}: drop {number(gate.get('value'))} vs max_drop {gate.get('threshold')}"
        )
    previous = (summary.get("aliases") or {}).get("previous_champion")
    if previous:
        scores = ", ".join(f"{m} {number(v)}" for m, v in (previous.get("metrics") or {}).items())
        say(
            f"   @previous_champion v{previous.get('version')} in shadow, {previous.get('labels')} labelled rows: {scores}"
        )
    for note in summary.get("label_notes") or []:
        say(f"   labels: {note}")
    say(f"   action: {summary.get('action')} ({summary.get('reason')})")


def number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def fail(dag_id: str, run_id: str) -> int:
    say(f"   {dag_id} failed; see the task logs under {os.environ['AIRFLOW_HOME']}/logs")
    return 1


if __name__ == "__main__":
    sys.exit(main())
