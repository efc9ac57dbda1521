"""Budget allocation across benchmarks: items go where they narrow intervals most, never over the total."""

from __future__ import annotations

import pandas as pd
import pytest

from headcast.predictor.allocation import allocate_items

LEVELS = [0, 2, 4, 8, 16]


def test_items_go_to_the_benchmark_whose_interval_they_narrow_and_not_to_one_already_pinned_down():
    widths = pd.DataFrame(
        [[20.0, 12.0, 8.0, 5.0, 3.0], [1.0, 1.0, 0.9, 0.9, 0.9]], index=["wide", "pinned"], columns=LEVELS
    )
    allocated = allocate_items(widths, 16)
    assert allocated.to_dict() == {"wide": 16, "pinned": 0}


def test_the_total_is_never_exceeded_and_equal_needs_are_met_equally():
    widths = pd.DataFrame([[10.0, 6.0, 4.0, 3.0, 2.5]] * 4, index=list("abcd"), columns=LEVELS)
    for total in (0, 3, 8, 17, 64):
        allocated = allocate_items(widths, total)
        assert allocated.sum() <= total and set(allocated) <= set(LEVELS)
    assert allocate_items(widths, 8).tolist() == [2, 2, 2, 2]  # the steepest narrowing is the first step


def test_a_move_past_a_flat_stretch_is_taken_when_its_narrowing_per_item_pays():
    widths = pd.DataFrame([[10.0, 10.0, 10.0, 2.0, 2.0]], index=["late"], columns=LEVELS)
    assert allocate_items(widths, 8).tolist() == [8]
    assert allocate_items(widths, 7).tolist() == [0]  # nothing that fits narrows it


def test_a_total_below_every_benchmark_s_first_level_is_refused():
    widths = pd.DataFrame([[5.0, 3.0]] * 3, index=list("abc"), columns=[4, 8])
    with pytest.raises(ValueError, match="cannot give every benchmark its first 4"):
        allocate_items(widths, 8)
