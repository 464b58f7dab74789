"""Tag keys that tie a model version to its data, its run and its decisions (MLflow tags)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

PREFIX = "mlops."
TRAINING_DATA_URI = "mlops.training_data_uri"
TRAINING_DATA_FINGERPRINT = "mlops.training_data_fingerprint"
TRAINING_DATA_ROWS = "mlops.training_data_rows"
FEATURES = "mlops.features"  # JSON list
TARGET = "mlops.target"
TASK_TYPE = "mlops.task_type"
VALIDATION_RESULT = "mlops.validation_result"  # "passed" | "warned" | "failed" | "not_run"
CONFIG_HASH = "mlops.config_hash"
CODE_VERSION = "mlops.code_version"  # provider package version
DAG_ID = "mlops.dag_id"
RUN_ID = "mlops.dag_run_id"
TASK_ID = "mlops.task_id"
TRY_NUMBER = "mlops.try_number"
TRAINING_RUN_ID = "mlops.training_run_id"  # MLflow run id; registry dedupe key
HOLDOUT_ARTIFACT = "holdout/holdout.parquet"  # relative to the training run's artifacts


def config_hash(config: Any) -> str:
    """A stable hash of a JSON-serialisable model config."""
    payload = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()[:16]
