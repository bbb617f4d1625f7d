"""Per-thread rows of numbers: lock-free recording, exact totals.

The hot path of a scheduler records from several threads at once.  A lock per
observation costs ~0.25 µs and convoys under contention; an unlocked ``+=`` on
a shared list can lose increments.  Instead every thread gets its own row,
which only that thread ever writes, and collection adds the rows up::

    thread A ──► row A ─┐
    thread B ──► row B ─┼─► merged() at collection time
    finished  ──► base ─┘   (rows of dead threads are folded into base)

A reader may see a row mid-update (say, a bucket already incremented and the
sum not yet); the next collection sees the rest, so nothing is lost or counted
twice.  Rows of finished threads are folded into ``base`` and dropped, so
thread churn does not grow memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

__all__ = ["Shards"]

Row = list[float]


class Shards:
    """A set of per-thread rows of ``len(template)`` numbers.

    ``fold(into, row)`` merges one row into another (element-wise sum for
    counts, min/max for extremes); it must be associative.
    """

    __slots__ = ("_base", "_fold", "_live", "_lock", "_template", "local")

    def __init__(self, template: Sequence[float], fold: Callable[[Row, Row], None]) -> None:
        self._template = list(template)
        self._fold = fold
        self._lock = threading.Lock()
        self._live: list[tuple[threading.Thread, Row]] = []
        self._base: Row = list(template)
        #: ``local.row`` is the calling thread's row once it exists; hot paths read
        #: it directly and call :meth:`new_row` on ``AttributeError``.
        self.local = threading.local()

    def new_row(self) -> Row:
        """Create, register and return the calling thread's row."""
        row = list(self._template)
        with self._lock:
            self._live.append((threading.current_thread(), row))
        self.local.row = row
        return row

    def merged(self) -> Row:
        """Return the fold of every row recorded so far (a new list)."""
        with self._lock:
            alive: list[tuple[threading.Thread, Row]] = []
            for thread, row in self._live:
                if thread.is_alive():
                    alive.append((thread, row))
                else:
                    # A finished thread never writes again: folding is exact.
                    self._fold(self._base, row)
            self._live = alive
            total = list(self._base)
            for _, row in alive:
                self._fold(total, row)
        return total

    def row_count(self) -> int:
        """Number of rows of live threads (for tests of memory behaviour)."""
        with self._lock:
            return len(self._live)
