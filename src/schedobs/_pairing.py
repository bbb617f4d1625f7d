"""Two clocks read at one instant.

A thread that loses the CPU (or the GIL) between a reading of one clock and a
reading of the other pairs them with that time slice in between: a "step" of
milliseconds between the wall and the monotonic clock, a negative delay in a
kernel-stamped sample, a queue-time split that does not add up.  So one clock
is read between two readings of the other and paired with their middle; a
wide bracket was preempted, and is read again, the narrowest kept.

Used wherever schedobs pairs clocks: the prober's local-step detector, kernel
timestamps against the wall clock, and the Celery adapter's task start.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["read_pair"]

#: Two readings of the outer clock this close were not split by a preemption (an
#: unpreempted bracket is ~0.1-0.3 µs).
_PAIR_NS = 20_000
#: Brackets read at most, when every one is wider than ``_PAIR_NS``.
_TRIES = 4


def read_pair(inner: Callable[[], int], outer: Callable[[], int]) -> tuple[int, int, int]:
    """``(inner, outer, spread)``: a reading of ``inner`` and the ``outer`` clock at
    the same instant (the middle of the two readings around it), from the most
    tightly bracketed of a few tries; ``spread`` is that bracket's width, the
    pairing's uncertainty."""
    best_spread = best_inner = best_outer = -1
    for _ in range(_TRIES):
        before = outer()
        reading = inner()
        spread = outer() - before
        if spread <= _PAIR_NS:
            return reading, before + spread // 2, spread
        if best_spread < 0 or spread < best_spread:
            best_spread, best_inner, best_outer = spread, reading, before + spread // 2
    return best_inner, best_outer, best_spread
