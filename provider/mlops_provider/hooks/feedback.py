"""What the performance monitor reads from storage: the prediction files of its batches, and label files.

Both cross a trust boundary. A batch record (anyone who can write MLflow runs can plant one) may only
name files (or a published folder of parts, read through its manifest) inside the scoring output's
folder, with no glob; a file's rows count only for the alias and
version its record lists and only inside the window (:func:`~mlops_provider.core.performance.batch_rows`).
Label files land from outside: only files inside the labels folder count (a symlink pointing out is
left out), and a CSV holding NUL bytes is refused, naming it (the CSV reader would cut the field).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.core.data import GLOB_CHARS, is_local, local_path
from mlops_provider.core.data_scope import template_folder, within
from mlops_provider.core.errors import DataError
from mlops_provider.hooks.data import DataHook

if TYPE_CHECKING:
    import pandas as pd

    from mlops_provider.hooks.performance import ScoredBatch

SCAN_CHUNK = 1 << 20


class FeedbackReader(DataHook):
    """Reads prediction and label files for the performance monitor (see the module docstring).

    :param predictions_prefix: the folder or bucket path prediction files must lie in (``None``: any).
    """

    def __init__(
        self, conn_id: str | None = None, base_dir: str | None = None, predictions_prefix: str | None = None
    ) -> None:
        super().__init__(conn_id=conn_id, base_dir=base_dir)
        self.predictions_prefix = predictions_prefix
        self.left_out: list[str] = []

    def _leave_out(self, why: str) -> None:
        self.log.warning("Left out: %s", why)
        self.left_out.append(why[:300])

    def predictions(
        self,
        batches: Sequence[ScoredBatch],
        aliases: Sequence[str],
        id_column: str,
        span: tuple[datetime, datetime],
    ) -> list[pd.DataFrame]:
        """The rows that count of every batch's prediction files (see the module docstring)."""
        from mlops_provider.core.performance import batch_rows

        found = []
        for batch in batches:
            for uri in batch.uris:
                frame = self._prediction_file(uri)
                if frame is None:
                    continue
                rows, why = batch_rows(
                    frame, versions=batch.versions, aliases=aliases, id_column=id_column, span=span, where=uri
                )
                if why is not None:
                    self._leave_out(why)
                elif len(rows):
                    found.append(rows)
        return found

    def _prediction_file(self, uri: str) -> pd.DataFrame | None:
        if not isinstance(uri, str) or GLOB_CHARS & set(uri):
            self._leave_out(f"{uri!r}: a batch record must name one file, not a pattern")
            return None
        if self.predictions_prefix and not within(uri, self.predictions_prefix, self.base_dir):
            self._leave_out(f"{uri!r}: a batch record may only name files in {self.predictions_prefix}")
            return None
        found = self.files(uri)
        if not found:
            self._leave_out(f"{uri}: the prediction file is gone")
            return None
        # no glob: the one file, or a published folder's files (those its manifest lists)
        return self.read_frame(uri)

    def label_files(self, labels_uri: str) -> list[str]:
        """The label files that have arrived inside the labels folder (none yet: ``[]``)."""
        folder = template_folder(self.resolve(labels_uri))
        files = self.files(labels_uri)
        inside = [f for f in files if within(f, folder, self.base_dir)]
        for outside in sorted(set(files) - set(inside)):
            self._leave_out(f"{outside}: a label file must lie in {folder} (a link pointing out?)")
        return inside

    def label_frame(self, uri: str) -> pd.DataFrame:
        """One label file, refused (naming it) when a CSV holds NUL bytes."""
        if uri.lower().endswith(".csv") and self._has_nul(uri):
            raise DataError(f"{uri}: the file holds NUL bytes; a label CSV is text")
        return self.read_frame(uri)

    def _has_nul(self, uri: str) -> bool:
        if not is_local(uri):
            return b"\0" in (self.read_bytes_if_exists(uri) or b"")
        with open(local_path(uri), "rb") as handle:
            while chunk := handle.read(SCAN_CHUNK):
                if b"\0" in chunk:
                    return True
        return False

    def summary(self) -> dict[str, Any]:
        return {"left_out": len(self.left_out), "examples": self.left_out[:3]}
