"""Object storage (s3://, gs://, ...) through Airflow's ObjectStoragePath and its connections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_provider.core.data import is_local

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


def filesystem_for(uri: str, conn_id: str | None = None) -> AbstractFileSystem | None:
    """
    The fsspec filesystem for a remote URI, authenticated with the Airflow connection ``conn_id``
    (for s3:// the amazon provider's ``aws_default`` when not given); ``None`` for local paths.
    """
    if is_local(uri):
        return None
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri, conn_id=conn_id).fs
