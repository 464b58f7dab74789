# airflow-provider-mlops: `make demo` and `make test` do all the set-up on a fresh clone.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin

# The embedded default: Airflow and MLflow state under the repository, git-ignored.
export MLOPS_HOME := $(CURDIR)
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
export AIRFLOW__CORE__PARALLELISM := 4
# Warm workers: tasks fork from a scheduler-side forkserver that imported the heavy libraries once.
export AIRFLOW__SCHEDULER__MP_START_METHOD := forkserver
export AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD := mlops_provider.preload
export AIRFLOW__USAGE_DATA_COLLECTION__ENABLED := False
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL := 30
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export MLOPS_MLFLOW_UI_URL ?= http://127.0.0.1:5000
export SCARF_ANALYTICS := false
export UV_COMPILE_BYTECODE := 1
export UV_LINK_MODE := copy
export PYTHONUNBUFFERED := 1

.PHONY: help install demo test lint compose-tool chromium up bench clean

help:
	@echo "make demo   - install into .venv and run the retraining loop end to end (embedded default)"
	@echo "make test   - install, lint and run every test"
	@echo "make up     - Airflow UI (airflow standalone) and MLflow UI on 127.0.0.1"
	@echo "make bench  - benchmarks; prints figures and writes bench/RESULTS.md"

$(VENV)/.installed: pyproject.toml uv.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade >/dev/null
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv sync --frozen --inexact --all-extras --python $(BIN)/python
	@touch $@

# The editable install's own bytecode (uv compiles site-packages only): every DAG parse and task process
# imports the provider, and with PYTHONDONTWRITEBYTECODE Python never caches it. Quick when up to date.
install: $(VENV)/.installed
	@$(BIN)/python -m compileall -q -j 0 provider dags plugins >/dev/null

demo: install
	$(BIN)/python -m demo

lint: install
	$(BIN)/ruff check provider dags plugins tests bench demo
	$(BIN)/ruff format --check provider dags plugins tests bench demo
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint compose-tool chromium
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

# Debian's docker-compose (v1) validates docker-compose.yaml without a Docker engine (tests/e2e/test_compose.py).
compose-tool:
	@command -v docker-compose >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing docker-compose (Debian package) to validate docker-compose.yaml"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null) \
	      || echo "could not install docker-compose: the compose validation test will be skipped"; \
	  else echo "docker-compose not found: the compose validation test will be skipped"; fi; }

# Debian's Chromium and its driver run the Models page browser test (tests/integration/test_models_page_browser.py).
chromium:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver (Debian packages) for the Models page browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "could not install chromium: the Models page browser test will be skipped"; \
	  else echo "chromium or chromedriver not found: the Models page browser test will be skipped"; fi; }

up: install
	$(BIN)/python -m demo.up

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf .airflow .airflow-gw* .airflow-test .airflow-test-* .mlflow .mlops $(VENV)
