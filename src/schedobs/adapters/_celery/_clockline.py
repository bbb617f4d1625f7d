"""The worker's clock correction, shared with its prefork pool children.

The main process runs the clock prober and owns the estimate; its children
were forked with a copy that no longer learns.  So the main process publishes
its current correction — one line, ``offset + freq·(t − at)`` with its sigma —
in a few bytes of memory shared across the fork, and a child reads it where
the task starts, to correct its own readings of the same host clock::

    main process: estimator ──(≤ 10 Hz)──► SharedClockLine ◄── children read, ~1 µs

One writer, many readers, no lock (a child must never wait for the main
process): the writer bumps a sequence number to odd, writes, bumps it to even,
and stores a check value over the fields; a reader that sees an odd or
changed sequence, or a check that does not match (a torn read), reads again,
and after a few tries falls back to its own inherited estimator.  A line older
than ``STALE_NS`` (a main process that stopped refreshing it) is not used
either.
"""

from __future__ import annotations

import mmap
import struct
import zlib

from schedobs.clock import ClockEstimate

from ._relay import current_pid
from ._timing import Reading

__all__ = ["SharedClockLine"]

#: A line not refreshed for this long is not trusted (the main process refreshes it
#: at least every ``REFRESH_S``).
STALE_NS = 2_000_000_000
REFRESH_S = 0.1
# seq, at_ns, offset_ns, freq (parts per 10^12), sigma_ns, then a CRC-32 of those five
_LAYOUT = struct.Struct("<Qqqqq")
_CHECK = struct.Struct("<I")
_SEQ = struct.Struct("<Q")
_TRIES = 4


class SharedClockLine:
    """A clock line in anonymous shared memory (created before the fork)."""

    def __init__(self) -> None:
        # Anonymous and MAP_SHARED: the children see what is written after the fork.
        self._map = mmap.mmap(-1, _LAYOUT.size + _CHECK.size)
        self._seq = 0
        self._owner = current_pid()
        self._parsed: tuple[int, int, int, int, int] | None = None  # a reader's last whole line

    def publish(self, estimate: ClockEstimate) -> None:
        """In the main process: the line through ``estimate`` from now on.  (A child's
        own fallback estimates are its own: they are not published.)"""
        if current_pid() != self._owner:
            return
        self._seq += 1  # odd: being written
        self._map[:8] = self._seq.to_bytes(8, "little")
        freq = round(estimate.freq_ppm * 1e6)  # ppm → parts per 10^12
        self._seq += 1  # even: whole
        data = _LAYOUT.pack(self._seq, estimate.at_ns, estimate.offset_ns, freq,
                            estimate.uncertainty_ns)  # fmt: skip
        self._map[:] = data + _CHECK.pack(zlib.crc32(data))

    def read(self, raw_ns: int) -> Reading | None:
        """The correction of the host clock reading ``raw_ns``, or ``None`` if there is no
        whole, fresh line."""
        seq = _SEQ.unpack_from(self._map)[0]
        line = self._parsed
        if line is None or line[0] != seq:  # a new line since the last read: parse it
            line = self._parse()
            if line is None:
                return None
        _, at, offset, freq, sigma = line
        if abs(raw_ns - at) > STALE_NS:
            return None
        return Reading(raw_ns, offset + (freq * (raw_ns - at)) // 10**12, sigma, freq / 1e6)

    def _parse(self) -> tuple[int, int, int, int, int] | None:
        for _ in range(_TRIES):
            raw = self._map[:]
            line: tuple[int, int, int, int, int] = _LAYOUT.unpack_from(raw)
            if line[0] == 0:
                return None  # never published
            if line[0] & 1 or _CHECK.unpack_from(raw, _LAYOUT.size)[0] != zlib.crc32(raw[:-4]):
                continue  # being written, or torn: read again
            self._parsed = line
            return line
        return None

    def close(self) -> None:
        self._map.close()
