"""Exceptions raised by the provider (narrow ones; builtins for bad arguments)."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class MLflowConfigError(AirflowFailException):
    """The MLflow connection or environment is misconfigured: a retry cannot help."""


class MLflowUnavailableError(AirflowException):
    """The MLflow server could not be reached in time: transient, the task may retry."""


class DataError(AirflowFailException):
    """A dataset is missing, unreadable or does not have the expected shape."""


class DataUnavailableError(AirflowException):
    """Object storage could not be reached or answered with a transient error: the task may retry."""
