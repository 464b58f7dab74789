"""frozen_heap leaves the GC as it found it, and never unfreezes what it did not freeze."""

from __future__ import annotations

import gc

import pytest

from mlops_provider.templates.heap import frozen_heap


def test_freezes_only_while_building_and_restores() -> None:
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(ValueError, match="strict build"), frozen_heap():
        raise ValueError("a strict build raising")
    assert gc.get_freeze_count() == 0


def test_an_already_frozen_heap_stays_frozen() -> None:
    gc.freeze()  # as Airflow's dag processor does before it forks a parser
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_disabled_gc_is_left_alone() -> None:
    gc.disable()
    try:
        with frozen_heap():
            assert gc.get_freeze_count() == 0
        assert not gc.isenabled()
    finally:
        gc.enable()
