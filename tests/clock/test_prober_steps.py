"""The prober's local-step detector: wall − monotonic, read so a preemption is no step."""

from __future__ import annotations

import itertools

from schedobs.clock._prober import wall_minus_monotonic

MS = 1_000_000


def test_a_pair_split_by_a_preemption_is_read_again() -> None:
    # The first bracket lost the GIL for 8 ms between the monotonic and the wall
    # reading; a naive wall − monotonic would be off by 8 ms: a false "step".
    mono = iter([0, 8 * MS + 1_000, 10 * MS, 10 * MS + 2_000])
    wall = iter([5_000 + 8 * MS, 10 * MS + 1_000 + 5_000])
    gap, spread = wall_minus_monotonic(lambda: next(wall), lambda: next(mono))
    assert (gap, spread) == (5_000, 2_000)


def test_when_every_pair_is_split_the_tightest_is_taken_and_its_spread_said() -> None:
    ticks = itertools.count(step=3 * MS)
    gap, spread = wall_minus_monotonic(lambda: 7 * MS, lambda: next(ticks))
    assert spread == 3 * MS  # the caller knows not to trust it for a 1 ms step test
    assert gap == 7 * MS - (0 + 3 * MS) // 2


def test_quiet_readings_agree_with_the_clocks() -> None:
    import time

    gap, spread = wall_minus_monotonic()
    assert abs(gap - (time.time_ns() - time.monotonic_ns())) < 5 * MS
    assert spread >= 0
