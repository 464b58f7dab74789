"""The drift check's arguments: methods, defaults (declared once) and their validation. No Airflow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlops_provider.core.data_sample import check_max_rows
from mlops_provider.core.errors import InvalidInputError

AUTO = "auto"
NUMERIC_METHODS = (AUTO, "wasserstein", "ks", "jensenshannon")
CATEGORICAL_METHODS = (AUTO, "jensenshannon", "chisquare")
# "auto": p-value tests (ks, chisquare) while the smaller frame has at most this many rows, distances
# (wasserstein, jensenshannon at 0.1) above. Distances are too noisy on small batches (normed Wasserstein
# between two same-distribution samples of 200 rows often exceeds 0.1), p-values too sensitive on big ones.
AUTO_P_VALUE_MAX_ROWS = 1000
DEFAULT_THRESHOLDS = {"wasserstein": 0.1, "jensenshannon": 0.1, "ks": 0.05, "chisquare": 0.05}
P_VALUE_METHODS = frozenset({"ks", "chisquare"})

# False alarms with these defaults on same-distribution batches (README, "Drift defaults"): at most
# 1% over 200 seeds on five data sets, batches of 200 rows and up.
DEFAULT_DRIFT_SHARE = 0.5
DEFAULT_MIN_ROWS = 200
DEFAULT_NUMERIC_METHOD = AUTO
DEFAULT_CATEGORICAL_METHOD = AUTO
DEFAULT_REPORT_SAMPLE_ROWS = 50_000
# Above this many rows a frame is read as a deterministic sample of this size, and the decision is
# computed on it (None: no limit). Memory ~ rows x columns x 8 bytes per frame, twice while joined.
DEFAULT_MAX_ROWS = 1_000_000


# -- arguments --------------------------------------------------------------------------------------
def check_arguments(
    *,
    drift_share: float,
    min_rows: int,
    numeric_method: str,
    categorical_method: str,
    threshold: float | Mapping[str, float] | None,
) -> None:
    """Raise :class:`~mlops_provider.core.errors.InvalidInputError` (a ``ValueError``) naming the bad argument."""
    if numeric_method not in NUMERIC_METHODS:
        raise InvalidInputError(
            f"numeric_method must be one of {', '.join(NUMERIC_METHODS)}, got {numeric_method!r}"
        )
    if categorical_method not in CATEGORICAL_METHODS:
        raise InvalidInputError(
            f"categorical_method must be one of {', '.join(CATEGORICAL_METHODS)}, got {categorical_method!r}"
        )
    if isinstance(drift_share, bool) or not isinstance(drift_share, int | float) or not 0 < drift_share <= 1:
        raise InvalidInputError(f"drift_share must be a number in (0, 1], got {drift_share!r}")
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise InvalidInputError(f"min_rows must be an integer >= 1, got {min_rows!r}")
    if threshold is not None and AUTO in (numeric_method, categorical_method):
        raise InvalidInputError(
            "threshold needs pinned methods: with numeric_method/categorical_method 'auto' the method (a "
            "p-value test or a distance) depends on the row count; set both methods explicitly"
        )
    if threshold is not None:
        values = threshold.items() if isinstance(threshold, Mapping) else [("threshold", threshold)]
        for key, value in values:
            if isinstance(threshold, Mapping) and key not in ("numeric", "categorical"):
                raise InvalidInputError(f"threshold keys must be 'numeric' and/or 'categorical', got {key!r}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise InvalidInputError(f"threshold {key!r} must be a positive number, got {value!r}")


def check_task_arguments(
    *,
    model_name: Any,
    current_uri: Any,
    report_sample_rows: Any,
    drift_share: float,
    min_rows: int,
    numeric_method: str,
    categorical_method: str,
    threshold: float | Mapping[str, float] | None,
    max_rows: Any = None,
) -> None:
    """A drift task's arguments (:func:`check_arguments` plus what names the data, the report and the
    sample); raise :class:`~mlops_provider.core.errors.InvalidInputError` naming the bad one."""
    if not isinstance(model_name, str) or not model_name:
        raise InvalidInputError(f"model_name must be a non-empty string, got {model_name!r}")
    if not isinstance(current_uri, str) or not current_uri:
        raise InvalidInputError(f"current_uri must be a non-empty string, got {current_uri!r}")
    if (
        isinstance(report_sample_rows, bool)
        or not isinstance(report_sample_rows, int)
        or report_sample_rows < 1
    ):
        raise InvalidInputError(f"report_sample_rows must be an integer >= 1, got {report_sample_rows!r}")
    check_arguments(
        drift_share=drift_share,
        min_rows=min_rows,
        numeric_method=numeric_method,
        categorical_method=categorical_method,
        threshold=threshold,
    )
    limit = check_max_rows(max_rows)
    if limit is not None and limit < min_rows:
        raise InvalidInputError(
            f"max_rows ({limit}) must be at least min_rows ({min_rows}): a sample smaller than min_rows "
            "could never be judged"
        )


def resolve_methods(numeric_method: str, categorical_method: str, rows: int) -> tuple[str, str]:
    """The methods a check uses: ``auto`` resolved by the smaller frame's row count (recorded in the result)."""
    small = rows <= AUTO_P_VALUE_MAX_ROWS
    if numeric_method == AUTO:
        numeric_method = "ks" if small else "wasserstein"
    if categorical_method == AUTO:
        categorical_method = "chisquare" if small else "jensenshannon"
    return numeric_method, categorical_method
