"""Exceptions raised by the provider (narrow ones; builtins for bad arguments), and the one place
where core/'s own errors become Airflow outcomes: :func:`airflow_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_provider.core import errors as core_errors


class MLflowConfigError(AirflowFailException):
    """The MLflow connection or environment is misconfigured: a retry cannot help."""


class MLflowRequestError(AirflowFailException):
    """MLflow refused a request as invalid (unknown run or version, bad name): a retry cannot help."""


class MLflowUnavailableError(AirflowException):
    """The MLflow server could not be reached in time: transient, the task may retry."""


class DataError(AirflowFailException):
    """A dataset is missing, unreadable or does not have the expected shape."""


class DataUnavailableError(AirflowException):
    """Object storage could not be reached or answered with a transient error: the task may retry."""


class InvalidInputError(AirflowFailException, ValueError):
    """A bad argument, config value or input: a retry cannot change the outcome (also a ValueError)."""


@contextmanager
def airflow_errors(where: str = "") -> Iterator[None]:
    """
    Translate core/'s errors raised in the block: bad input fails the task without a retry, a transient
    fault leaves the retry to Airflow. ``where`` prefixes the message (e.g. the model name).
    """
    prefix = f"{where}: " if where else ""
    try:
        yield
    except core_errors.DataError as err:
        raise DataError(f"{prefix}{err}") from err
    except core_errors.InvalidInputError as err:
        raise InvalidInputError(f"{prefix}{err}") from err
    except core_errors.DataUnavailableError as err:
        raise DataUnavailableError(f"{prefix}{err}") from err
    except core_errors.UnavailableError as err:
        raise AirflowException(f"{prefix}{err}") from err
