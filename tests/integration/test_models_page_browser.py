"""The Models page in a real browser: headless Debian Chromium (selenium + chromium-driver, nothing
downloaded) against a real ``airflow api-server``, after a demo-like loop on real operators and MLflow.

The loop, through ``dag.test()``: a config's retrain DAG promotes v1, a retrain with a summer batch in the
training data is refused by the ``vs_champion`` gate (v2), the drift monitor finds the summer batch
drifted; a hand-written DAG registers, promotes and drift-checks a model whose name and a column name
are HTML. Then a person logs in on Airflow's login page, opens "Models" in the navigation, opens the
model and reads the champion, the refused decision with its reason and the drift chart; the hostile
names show as text. Screenshots land in the test's tmp folder; with MLOPS_UPDATE_SCREENSHOTS=1 the model
page also replaces docs/models-page.png (the README's picture).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from api_server import SIMPLE_AUTH_MANAGER, ApiServer, api_server, auth_env, random_passwords
from support import return_value

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
MODEL = "weather_page"
HOSTILE_MODEL = "<img src=x onerror=alert(1)>&amp;<b>bold ünï"  # registry names take no quotes
HOSTILE_COLUMN = "</script><svg onload=alert(2)><i>col"
HOSTILE_DAG = "hostile_names"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="Debian's chromium and chromium-driver are not installed (make test installs them as root)",
    ),
]


def hostile_dag_file(base_dir: Path) -> str:
    """A model registered by operators without a config, its name and a data column HTML."""
    return f'''"""The browser test's airflow dag: a model registered by operators, with no config."""
from datetime import datetime
from airflow.sdk import DAG
from mlops_provider.operators.drift import DriftCheckOperator
from mlops_provider.operators.registry import PromoteModelOperator, RegisterModelOperator
from mlops_provider.operators.training import TrainModelOperator

NAME = {HOSTILE_MODEL!r}
RUN_ID = "{{{{ ti.xcom_pull(task_ids='train')['run_id'] }}}}"
with DAG({HOSTILE_DAG!r}, schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    train = TrainModelOperator(task_id="train", model_name=NAME, data_uri="hostile/train.csv",
                               target="label", estimator="sklearn.linear_model.LogisticRegression",
                               base_dir={str(base_dir)!r})
    register = RegisterModelOperator(task_id="register", model_name=NAME, run_id=RUN_ID)
    promote = PromoteModelOperator(task_id="promote", model_name=NAME, retries=0,
                                   version="{{{{ ti.xcom_pull(task_ids='register')['version'] }}}}")
    drift = DriftCheckOperator(task_id="drift", model_name=NAME, current_uri="hostile/current.csv",
                               base_dir={str(base_dir)!r}, emit_asset=False, min_rows=50)
    train >> register >> promote >> drift
'''


# -- the loop -------------------------------------------------------------------------------------
def weather_batches() -> dict[str, Any]:
    """Seattle weather: cold months of 2012-13 to train on, then batches of 2013-14 (dicts keep order)."""
    import pandas as pd
    from vega_datasets import data as vega

    frame = vega.seattle_weather()
    dates = pd.to_datetime(frame["date"])
    frame["date"] = dates.dt.strftime("%Y-%m-%d")
    month = dates.dt.year * 100 + dates.dt.month
    return {
        "train": frame[dates.dt.year.isin((2012, 2013)) & dates.dt.month.isin((10, 11, 12, 1, 2, 3, 4))],
        "2014-02-28": frame[month.between(201312, 201402)],
        "2014-04-30": frame[month.between(201310, 201404)].sample(120, random_state=1),  # like training
        "2014-05-31": frame[month.between(201403, 201405)],
        "2014-08-31": frame[month.between(201406, 201408)],
    }


def model_config(**evaluation: object) -> dict[str, Any]:
    cfg = yaml.safe_load((ROOT / "dags" / "configs" / "seattle_weather.yaml").read_text())
    cfg["model"]["name"] = MODEL
    cfg["data"].update({"train": "data/train/*.csv", "current": "data/batches/{{ ds }}.csv"})
    cfg["validation"]["suite"] = "suite.json"
    cfg["training"]["params"] = {"max_iter": 50}
    cfg["retries"] = 0
    cfg["evaluation"].update(evaluation)
    return cfg


def hostile_data(folder: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    for name, shift in (("train.csv", 0.0), ("current.csv", 3.0)):
        x = rng.normal(shift, 1.0, 300)
        frame = pd.DataFrame({"x": x, HOSTILE_COLUMN: rng.normal(shift, 1.0, 300), "label": x > shift})
        frame["label"] = frame["label"].map({True: "high", False: "low"})
        frame.to_csv(folder / name, index=False)


def run_dag(dag: Any, **kwargs: Any) -> tuple[dict[str, str], Any]:
    run = dag.test(**kwargs)
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}, run


def xcom(run: Any, task_id: str) -> Any:
    return return_value(run, task_id)


@dataclass
class Loop:
    env: dict[str, str]
    refused_reason: str
    tmp: Path


@pytest.fixture(scope="module")
def loop(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """The demo-like loop on a private MLflow store and DAGs folder (the session's Airflow DB)."""
    from datetime import UTC, datetime

    import airflow.settings
    from support import import_dag_file

    tmp = tmp_path_factory.mktemp("models-page")
    dags, configs = tmp / "dags", tmp / "dags" / "configs"
    (configs / "data" / "train").mkdir(parents=True)
    (configs / "data" / "batches").mkdir(parents=True)
    mp = pytest.MonkeyPatch()
    store = tmp / "mlflow"
    store.mkdir()
    connection = {
        "conn_type": "mlflow",
        "host": f"sqlite:///{store / 'mlflow.db'}",
        "extra": {"artifact_location": (store / "artifacts").as_uri()},
    }
    mp.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(connection))
    mp.setenv("MLOPS_HOME", str(tmp))
    mp.delenv("MLOPS_REPORTS_URI", raising=False)
    mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    mp.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    try:
        shutil.copy(ROOT / "dags" / "mlops_dags.py", dags / "mlops_dags.py")
        shutil.copy(ROOT / "dags" / "weather_kpis.py", dags / "weather_kpis.py")  # its custom metric
        shutil.copy(ROOT / "dags" / "configs" / "seattle_weather" / "suite.json", configs / "suite.json")
        batches = weather_batches()
        batches.pop("train").to_csv(configs / "data" / "train" / "cold.csv", index=False)
        for day, batch in batches.items():
            batch.to_csv(configs / "data" / "batches" / f"{day}.csv", index=False)
        (configs / f"{MODEL}.yaml").write_text(yaml.safe_dump(model_config()))
        found = import_dag_file(dags / "mlops_dags.py")
        states, _ = run_dag(found[f"{MODEL}_retrain"])
        assert set(states.values()) == {"success"}, states  # v1 promoted

        statuses = {}
        for day in batches:  # the drift monitor on four batches: cold season, winter, spring, summer
            when = datetime.fromisoformat(day).replace(tzinfo=UTC)
            states, run = run_dag(found[f"{MODEL}_drift_monitor"], logical_date=when)
            assert states["check_drift"] == "success", states
            statuses[day] = xcom(run, "check_drift")["status"]
        assert statuses["2014-08-31"] == "drift", statuses

        # a summer batch lands in the training data; a strict gate refuses what it trains (v2)
        shutil.copy(
            configs / "data" / "batches" / "2014-08-31.csv", configs / "data" / "train" / "summer.csv"
        )
        (configs / f"{MODEL}.yaml").write_text(
            yaml.safe_dump(model_config(vs_champion={"f1_macro": {"min_delta": 0.5}}))
        )
        found = import_dag_file(dags / "mlops_dags.py")
        states, run = run_dag(found[f"{MODEL}_retrain"])
        assert states["promote_model"] == "failed", states
        decision = xcom(run, "promote_model")
        assert decision["decision"] == "refused"

        hostile_data(dags / "hostile")
        (dags / "hostile_dag.py").write_text(hostile_dag_file(dags))
        states, run = run_dag(import_dag_file(dags / "hostile_dag.py")[HOSTILE_DAG])
        assert set(states.values()) == {"success"}, states
        assert HOSTILE_COLUMN in xcom(run, "drift")["columns"]
        yield Loop(env=dict(os.environ), refused_reason=str(decision["reason"]), tmp=tmp)
    finally:
        mp.undo()


# -- the API server -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(loop: Loop) -> Iterator[ApiServer]:
    passwords = random_passwords("admin")
    env = {**loop.env, **auth_env(loop.tmp, SIMPLE_AUTH_MANAGER, {"admin": "admin"}, passwords)}
    with api_server(env, loop.tmp / "api-server.log") as port:
        yield ApiServer(port=port, passwords=passwords)


# -- the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(server: ApiServer) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1800", "--disable-extensions", "--no-first-run"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, condition: Any, timeout: float = 90) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def ready(driver: Any) -> Any:
    """The page's root once models.js has drawn an answer (``ready`` or ``error``)."""
    from selenium.webdriver.common.by import By

    def drawn(d: Any) -> Any:
        roots = d.find_elements(By.CSS_SELECTOR, "#app[data-state]")
        return roots[0] if roots else False

    return wait(driver, drawn)


def assert_no_alert(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018


def assert_nothing_injected(driver: Any) -> None:
    """Only the elements models.js makes: no image, script (but ours), iframe or inline handler."""
    counts = driver.execute_script(
        "return {img: document.querySelectorAll('#app img, #app i, #app b').length,"
        " script: document.querySelectorAll('script').length,"
        " svgInjected: document.querySelectorAll('#app svg[onload], #app [onerror], #app [onload]').length,"
        " frames: document.querySelectorAll('#app iframe').length}"
    )
    assert counts == {"img": 0, "script": 1, "svgInjected": 0, "frames": 0}, counts


def login(driver: Any, server: ApiServer) -> None:
    from selenium.webdriver.common.by import By

    driver.get(server.url + "/")
    wait(driver, lambda d: d.find_elements(By.NAME, "username"))
    assert "/auth/login" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(server.passwords["admin"])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, lambda d: "/auth/login" not in d.current_url)


def open_models_from_the_navigation(driver: Any, server: ApiServer) -> Any:
    """Click "Models" in Airflow's navigation; returns the iframe the UI shows the page in."""
    from selenium.webdriver.common.by import By

    driver.switch_to.default_content()
    driver.get(server.url + "/")
    entry = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "a[href$='/plugin/models']"))
    entry[0].click()
    frame = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe[src$='/mlops/models']"))[0]
    driver.switch_to.frame(frame)
    return frame


def model_row(driver: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    for row in driver.find_elements(By.CSS_SELECTOR, "table.models tbody tr"):
        links = row.find_elements(By.CSS_SELECTOR, "a.model-link")
        if links and links[0].text == name:
            return row
    raise AssertionError(f"no row for {name!r}")


def save(driver: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


# -- the tests ------------------------------------------------------------------------------------
def test_a_person_opens_models_then_the_model_and_reads_its_history(
    browser: Any, server: ApiServer, loop: Loop
) -> None:
    from selenium.webdriver.common.by import By

    login(browser, server)
    open_models_from_the_navigation(browser, server)
    root = ready(browser)
    assert root.get_attribute("data-state") == "ready", root.text
    row = model_row(browser, MODEL)
    assert "problem" in row.get_attribute("class").split()  # refused gate and drift stand out
    assert "gate refused" in row.text
    assert "drift" in row.text
    assert "v1" in row.text
    assert "refused" in row.text
    browser.switch_to.default_content()
    save(browser, loop.tmp, "models-list")
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe"))

    row.find_element(By.CSS_SELECTOR, "a.model-link").click()
    wait(browser, lambda d: [h for h in d.find_elements(By.CSS_SELECTOR, "h1.model-name") if h.text == MODEL])
    assert ready(browser).get_attribute("data-state") == "ready"
    assert browser.find_element(By.CSS_SELECTOR, ".champion-version").text == "v1"

    versions = {
        r.find_element(By.CSS_SELECTOR, "td strong").text: r
        for r in browser.find_elements(By.CSS_SELECTOR, "table.versions tbody tr")
    }
    assert set(versions) >= {"v1", "v2"}
    assert "✓ promoted" in versions["v1"].text
    assert "@champion" in versions["v1"].text
    refused = versions["v2"]
    assert "✗ refused" in refused.text
    reason = refused.find_element(By.CSS_SELECTOR, ".decision .reason").text
    assert reason
    assert "vs_champion" in reason
    assert loop.refused_reason.startswith(reason[:60].rstrip("…"))
    assert refused.find_elements(By.CSS_SELECTOR, "ul.gates li.fail")  # the failing gate's verdict

    chart = browser.find_element(By.CSS_SELECTOR, "svg.drift-share")
    assert int(chart.get_attribute("data-points")) == 4  # one point per drift check
    assert chart.find_elements(By.CSS_SELECTOR, "circle.point.drifted")  # the drifted check
    assert chart.find_elements(By.CSS_SELECTOR, "path.threshold")
    assert browser.find_elements(By.CSS_SELECTOR, "svg.heatmap g.cell.drifted")
    assert int(browser.find_element(By.CSS_SELECTOR, "svg.metric").get_attribute("data-points")) == 2

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.switch_to.default_content()
    assert browser.current_url.endswith(f"/plugin/models/mlops/models/{MODEL}")  # a deep link
    browser.set_window_size(1440, min(max(int(height) + 60, 1200), 3000))  # the whole page in the frame
    shot = save(browser, loop.tmp, "model-page")
    browser.set_window_size(1440, 1800)
    if os.environ.get("MLOPS_UPDATE_SCREENSHOTS"):  # the README's picture, refreshed on request
        shutil.copy(shot, ROOT / "docs" / "models-page.png")


def test_actions_open_in_the_airflow_window(browser: Any, server: ApiServer) -> None:
    """The UI frames the page in a sandbox without top navigation: "Trigger retrain" still leads there."""
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/plugin/models/mlops/models/{MODEL}")
    frame = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe"))[0]
    browser.switch_to.frame(frame)
    ready(browser)
    action = [a for a in browser.find_elements(By.CSS_SELECTOR, ".actions a") if a.text == "Trigger retrain"]
    assert action
    assert action[0].get_attribute("target") == "_top"
    action[0].click()
    browser.switch_to.default_content()
    wait(browser, lambda d: d.current_url.endswith(f"/dags/{MODEL}_retrain"))


def test_errors_are_said_plainly(browser: Any, server: ApiServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/mlops/models/{quote('no such model', safe='')}")
    root = ready(browser)
    assert root.get_attribute("data-state") == "error"
    assert browser.find_element(By.CSS_SELECTOR, ".error").get_attribute("data-status") == "404"
    assert "No such model" in root.text


def test_hostile_names_render_as_text(browser: Any, server: ApiServer, loop: Loop) -> None:
    from selenium.webdriver.common.by import By

    open_models_from_the_navigation(browser, server)
    ready(browser)
    row = model_row(browser, HOSTILE_MODEL)  # the name, character for character, as a link's text
    assert_nothing_injected(browser)
    assert_no_alert(browser)
    row.find_element(By.CSS_SELECTOR, "a.model-link").click()
    wait(
        browser,
        lambda d: [h for h in d.find_elements(By.CSS_SELECTOR, "h1.model-name") if h.text == HOSTILE_MODEL],
    )
    assert ready(browser).get_attribute("data-state") == "ready"
    titles = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg.heatmap text.column-name title'), t => t.textContent)"
    )
    assert HOSTILE_COLUMN in titles
    assert HOSTILE_COLUMN in browser.find_element(By.CSS_SELECTOR, "table.drift-runs").text
    assert browser.find_element(By.CSS_SELECTOR, ".champion-version").text == "v1"
    assert_nothing_injected(browser)
    assert_no_alert(browser)
    browser.switch_to.default_content()
    save(browser, loop.tmp, "hostile-model-page")
