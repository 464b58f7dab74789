"""Streaming batch scoring: chunks of the batch go through every model and out to its writer, so memory
is bounded by a chunk, not the batch. No Airflow and no MLflow in here.

The served model's problems with a chunk (see :func:`mlops_provider.core.scoring.check_batch`) stop
the whole run; a shadow model that cannot score a chunk is left out from then on (its writer is
discarded) and the served predictions never depend on it. Unseen-category counts add up over chunks,
so the shares are those of the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlops_provider.core.predictions import score_frame, stamp
from mlops_provider.core.scoring import (
    ColumnSpec,
    ModelInputs,
    ScoringInputError,
    checked_unseen_counts,
    model_inputs,
)

if TYPE_CHECKING:
    import pandas as pd


class Writer(Protocol):
    rows: int

    def write(self, frame: pd.DataFrame) -> None: ...

    def discard(self) -> None: ...


@dataclass
class Scorer:
    """One version scoring the batch under ``alias``, and what it wrote."""

    alias: str
    version: str
    model: Any
    features: list[str]
    signature: list[ColumnSpec] | None
    writer: Writer
    where: str
    inputs: ModelInputs = field(init=False)
    unseen: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    error: str | None = None

    def __post_init__(self) -> None:
        self.inputs = model_inputs(self.model, self.features)

    def score(self, chunk: pd.DataFrame, row_start: int, options: ScoringOptions) -> None:
        """Check and score one chunk; write its predictions (raises :class:`ScoringInputError`)."""
        counts = checked_unseen_counts(chunk, self.features, self.signature, self.inputs, self.where)
        for column, count in counts.items():
            self.unseen[column] = self.unseen.get(column, 0) + count
        try:
            predictions = score_frame(
                self.model, chunk, self.features, row_start, options.id_columns, options.probabilities
            )
        except (ValueError, TypeError) as err:  # the data, not the moment: a retry cannot help
            raise ScoringInputError(f"{self.where}: the model refused the batch: {err}") from None
        self.writer.write(stamp(predictions, version=self.version, alias=self.alias, **options.stamp))
        self.rows += len(chunk)


@dataclass(frozen=True)
class ScoringOptions:
    id_columns: Sequence[str] = ()
    probabilities: bool = False
    stamp: dict[str, Any] = field(default_factory=dict)  # scored_at, scoring_date


def score_stream(
    chunks: Iterable[pd.DataFrame],
    served: Scorer,
    shadows: Sequence[Scorer],
    options: ScoringOptions,
    row_offset: int = 0,
) -> int:
    """Score every chunk with ``served`` and the shadows still in; the rows scored."""
    row = row_offset
    for chunk in chunks:
        if len(chunk) == 0:  # a file with a header and no rows
            continue
        missing = [c for c in options.id_columns if c not in chunk.columns]
        if missing:
            raise ScoringInputError(f"{served.where}: missing id column(s) {', '.join(map(repr, missing))}")
        served.score(chunk, row, options)
        for shadow in shadows:
            if shadow.error is None:
                try:
                    shadow.score(chunk, row, options)
                except ScoringInputError as err:
                    shadow.error = str(err)
                    shadow.writer.discard()
        row += len(chunk)
    return row - row_offset


def needed_columns(scorers: Sequence[Scorer], id_columns: Sequence[str]) -> list[str]:
    """Every column any scorer reads, and the id columns, in first-seen order."""
    return list(dict.fromkeys([*id_columns, *(c for s in scorers for c in s.features)]))


def text_columns(scorers: Sequence[Scorer]) -> list[str]:
    """Columns every scorer's signature takes as text: read as text from CSV in every chunk."""
    kinds: dict[str, set[str]] = {}
    for scorer in scorers:
        for spec in scorer.signature or ():
            kinds.setdefault(spec.name, set()).add(spec.type)
    return sorted(name for name, types in kinds.items() if types == {"string"})
