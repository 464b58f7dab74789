"""paused_gc leaves the GC as it found it, and touches no frozen heap."""

from __future__ import annotations

import gc

import pytest

from mlops_provider.templates.heap import paused_gc


def test_pauses_only_while_building_and_restores() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError, match="strict build"), paused_gc():
        raise ValueError("a strict build raising")
    assert gc.isenabled()


def test_a_frozen_heap_stays_frozen() -> None:
    gc.freeze()  # as Airflow's dag processor and the warm-worker preload do
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 1000
        with paused_gc():
            pass
        # frozen objects whose last reference goes away meanwhile are freed (the count drops by those);
        # gc.unfreeze() would drop it to 0, and freezing more would raise it
        assert frozen - 100 <= gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_a_disabled_gc_is_left_alone() -> None:
    gc.disable()
    try:
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
