"""The errors core/ raises. No Airflow in here: operators and hooks translate them (fail, skip, retry).

* :class:`InvalidInputError` and its kinds: bad input or data; a retry cannot change the outcome.
* :class:`UnavailableError` and its kinds: a transient fault (storage, network); a retry may succeed.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base of every error core/ raises on purpose."""


class InvalidInputError(CoreError, ValueError):
    """Bad input (argument, config value, data): a retry cannot help."""


class DataError(InvalidInputError):
    """A dataset is missing, unreadable or does not have the expected shape."""


class NoDataError(DataError):
    """Nothing is there yet: no file matches, no such file, an empty folder."""


class UnavailableError(CoreError):
    """A transient fault: a retry may succeed."""


class DataUnavailableError(UnavailableError):
    """Object storage could not be reached or answered with a transient error."""
