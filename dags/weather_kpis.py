"""Business metrics for the Seattle weather model (evaluation.custom_metrics in its config).

A function takes (y_true, y_pred, y_proba, X) and returns one number; the provider imports this module
from the DAGs folder in the tasks that compute metrics, and `validate` checks it the same way.
"""

from __future__ import annotations

# An events company plans outdoor work on the forecast: a rain day it saw coming saves 5, a rain day
# it missed costs 20 (crews sent out), a false rain alarm costs 2 (a day's work moved for nothing).
CAUGHT_RAIN, MISSED_RAIN, FALSE_ALARM = 5.0, -20.0, -2.0


def rain_planning_value(y_true, y_pred, y_proba, X) -> float:
    """Mean value per forecast day of planning outdoor work on the model's rain forecast."""
    import numpy as np  # here, not at the top: the DAG processor may read this folder

    actual = np.asarray(y_true) == "rain"
    forecast = np.asarray(y_pred) == "rain"
    value = (
        CAUGHT_RAIN * (actual & forecast)
        + MISSED_RAIN * (actual & ~forecast)
        + FALSE_ALARM * (~actual & forecast)
    )
    return float(value.mean())
