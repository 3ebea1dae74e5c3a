"""The cycle collector's settings for metrictui's long-running processes (engine.process_gc)."""

from __future__ import annotations

import gc

from engine.process_gc import YOUNG_GENERATION, keep_startup_out_of_gc


def test_startup_objects_are_frozen_and_young_passes_made_rare() -> None:
    before = gc.get_threshold()
    try:
        keep_startup_out_of_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_GENERATION, before[1], before[2])
        keep_startup_out_of_gc()  # again: no harm, and it never lowers the threshold
        assert gc.get_threshold()[0] == YOUNG_GENERATION
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
