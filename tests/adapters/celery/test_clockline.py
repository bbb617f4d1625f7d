"""The worker's clock line in shared memory: what its forked children correct by."""

from __future__ import annotations

import os
import pickle
import warnings

import pytest

from schedobs.adapters._celery._clockline import STALE_NS, SharedClockLine
from schedobs.clock import ClockEstimate

MS = 1_000_000
T0 = 1_700_000_000 * 10**9


def _in_child(fn):  # type: ignore[no-untyped-def]
    """Run ``fn`` in a forked child; its pickled result."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        try:
            os.write(write, pickle.dumps(fn()))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_a_child_reads_the_line_the_parent_publishes_after_the_fork() -> None:
    line = SharedClockLine()
    assert line.read(T0) is None  # nothing published yet
    line.publish(ClockEstimate(-120 * MS, 15_000, 2.5, 20, T0))
    go_read, go_write = os.pipe()
    out_read, out_write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child waits until the parent has published a newer line
        try:
            os.read(go_read, 1)
            reading = line.read(T0 + 1_000 * MS)
            os.write(out_write, pickle.dumps(reading and (reading.offset_ns, reading.sigma_ns)))
        finally:
            os._exit(0)
    line.publish(ClockEstimate(-121 * MS, 14_000, 2.5, 21, T0 + 500 * MS))
    os.write(go_write, b"x")
    os.close(out_write)
    with os.fdopen(out_read, "rb") as f:
        seen = pickle.loads(f.read())
    os.waitpid(pid, 0)
    # The memory is shared, not copied: the child sees the newer line,
    # offset + freq·(t − at) = −121 ms + 2.5 ppm × 500 ms.
    assert seen == (-121 * MS + 1_250, 14_000)


def test_a_child_cannot_publish() -> None:
    line = SharedClockLine()
    line.publish(ClockEstimate(5 * MS, 1_000, 0.0, 10, T0))

    def child() -> int | None:
        line.publish(ClockEstimate(99 * MS, 1_000, 0.0, 10, T0))
        reading = line.read(T0)
        return None if reading is None else reading.offset_ns

    assert _in_child(child) == 5 * MS
    reading = line.read(T0)
    assert reading is not None and reading.offset_ns == 5 * MS


def test_a_stale_or_torn_line_is_not_used() -> None:
    line = SharedClockLine()
    line.publish(ClockEstimate(5 * MS, 1_000, 0.0, 10, T0))
    assert line.read(T0 + STALE_NS + 1) is None  # the main process stopped refreshing it
    raw = bytearray(line._map[:])
    raw[0] += 2  # a newer line (even: whole) ...
    raw[16] ^= 0xFF  # ... read while torn: its CRC does not match
    line._map[:] = bytes(raw)
    assert line.read(T0) is None
    raw[0] += 1  # being written (odd)
    raw[16] ^= 0xFF
    line._map[:] = bytes(raw)
    assert line.read(T0) is None


@pytest.mark.parametrize("offset_ms", [-120, 0, 80])
def test_the_line_agrees_with_the_estimate_it_was_made_from(offset_ms: int) -> None:
    line = SharedClockLine()
    estimate = ClockEstimate(offset_ms * MS, 7_000, -37.5, 30, T0)
    line.publish(estimate)
    for dt in (-100 * MS, 0, 250 * MS):
        reading = line.read(T0 + dt)
        assert reading is not None
        assert abs(reading.offset_ns - (offset_ms * MS - 37.5e-6 * dt)) <= 1
        assert reading.raw_ns == T0 + dt
