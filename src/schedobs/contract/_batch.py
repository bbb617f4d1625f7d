"""Latencies appended on a hot path and binned into their histogram in batches.

``LatencyHistogram.observe`` does the whole job per value: a float sum, a
``bisect`` over the bucket bounds, min/max updates and an exemplar check,
about 0.35 µs. Where the task itself costs a few microseconds (an asyncio
task that returns at once, a trivial thread-pool job) that is 5 to 10 % of it.
A :class:`LatencyBatch` takes the value with one ``list.append`` instead and
bins a batch at a time in C loops (sort, one ``bisect_right`` per bucket
bound, ``sum``)::

    hot path ──append(seconds)──► pending ──flush() every `size` values──► histogram row
                                     ▲
                    collection ──────┘ flush() before every snapshot

Counts stay exact: every value is binned once, and a snapshot first flushes
every batch of its histogram, so a collection sees every value appended
before it.  What batching gives up is the exemplar: callers that may run
inside a sampled span observe those values one by one (``observe``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from schedobs._checks import is_int

if TYPE_CHECKING:
    from ._instruments import LatencyHistogram

__all__ = ["LatencyBatch"]

#: Values a batch holds before its producer bins them: large enough that the
#: per-batch work (about 40 bisects and a sort) is spread thin, small enough
#: that a batch stays in cache and an idle producer holds few values.
DEFAULT_SIZE = 256


class LatencyBatch:
    """Schedule latencies **in seconds**, appended by one producer, binned in batches.

    Obtain one from :meth:`LatencyHistogram.batch`.  The producer appends
    with :attr:`append` (a bound ``list.append``: the whole hot-path cost) and
    calls :meth:`flush` once ``len(pending) >= size``; a collection flushes every
    batch of the histogram before it reads, from its own thread, so the two
    flushes take the values out under a lock.  Values must be real numbers;
    negative, NaN and infinite ones are counted as dropped, as by ``observe``.
    """

    __slots__ = ("__weakref__", "_histogram", "_lock", "_owner", "append", "pending", "size")

    def __init__(
        self, histogram: LatencyHistogram, size: int = DEFAULT_SIZE, owner: object = None
    ) -> None:
        if not is_int(size) or size < 1:
            raise ValueError(f"size must be an int >= 1, got {size!r}")
        self._histogram = histogram
        self._lock = threading.Lock()
        #: Latencies in seconds not yet binned (only the producer appends).
        self.pending: list[float] = []
        #: ``append(seconds)``: what the hot path calls.
        self.append: Callable[[float], None] = self.pending.append
        self.size = size
        # Weakly: the batch of a producer that is gone (a closed loop, a finished
        # thread) is flushed once more and then forgotten by its histogram.
        self._owner = weakref.ref(owner) if owner is not None else None

    def add(self, seconds: float) -> None:
        """Append one latency and flush when the batch is full (the plain way to use it)."""
        self.pending.append(seconds)
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        """Bin every pending value into the histogram (any thread)."""
        pending = self.pending
        with self._lock:
            n = len(pending)
            if not n:
                return
            # The producer only ever appends: the first n values are the ones taken.
            taken = pending[:n]
            del pending[:n]
        self._histogram.observe_many_seconds(taken)

    @property
    def orphaned(self) -> bool:
        """Whether the owner given at creation no longer exists."""
        return self._owner is not None and self._owner() is None

    def close(self) -> None:
        """Flush and detach from the histogram (later values would wait for ``flush``)."""
        self.flush()
        self._histogram.forget_batch(self)
