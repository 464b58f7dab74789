# syntax=docker/dockerfile:1
# The official Airflow 3.3 image (Python 3.11) with this provider installed from its lock file.
# Build: docker compose build   (or: docker build -t airflow-provider-mlops:latest .)
FROM apache/airflow:3.3.2-python3.11

USER root
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
USER airflow

WORKDIR /opt/airflow/src
COPY --chown=airflow:0 pyproject.toml uv.lock README.md ./
COPY --chown=airflow:0 provider ./provider

# The locked versions of every dependency (the s3 and celery extras), without dev tools; then the
# package itself. Bytecode is compiled at install: DAG parsing and every task process import faster.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true \
    SCARF_ANALYTICS=false
RUN uv export --frozen --no-dev --no-hashes --no-emit-project --extra s3 --extra celery -o /tmp/requirements.txt \
 && uv pip install --python "$(command -v python)" --no-cache -r /tmp/requirements.txt \
 && uv pip install --python "$(command -v python)" --no-cache --no-deps . \
 && rm /tmp/requirements.txt

WORKDIR /opt/airflow
