"""Kernel timestamps: when a datagram really left and arrived, not when Python ran.

Python reads t1 before its send syscall and t4 after its receive returns.
Both carry host delays that look like path delay and that sit on one side
only, so they bias the offset by half their difference:

* a thread blocked in ``recv`` runs some time after its datagram arrived:
  tens of µs on an idle host, up to the GIL's switch interval (5 ms) in a
  busy process;
* the send path itself, after the thread has slept, took 40-50 µs from
  reading t1 to the datagram reaching the loopback device on this project's
  2-core VM (2 µs from there to the receiver's stamp).

On Linux the kernel stamps datagrams as they leave and arrive
(``SO_TIMESTAMPING`` software stamps, as chrony uses); the stamps are on
``CLOCK_REALTIME`` and are carried over to the caller's clock by the
difference between the two read at the same moment, so a skewed stand-in
clock (tests, simulations) stays consistent.  Elsewhere, or where the kernel
refuses, the Python-side readings are used as before.

A process whose clock is shifted in user space (libfaketime, which tests use
to give each process its own wall clock) reads a shifted ``CLOCK_REALTIME``
while the kernel stamps stay on the real one, and no reading can tell the two
apart, so a kernel stamp is used only where it is physically possible on the
process's clock: a send stamp no earlier than the reading before the send and
no later than ``_PLAUSIBLE_NS`` after it; an arrival stamp no later than the
reading after the receive and no earlier than the request's own send
(``not_before``).  A stamp outside is on another clock, and the process's own
reading is kept.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from schedobs._pairing import read_pair

__all__ = ["enable_timestamps", "receive", "send"]

# Not exported by the socket module (Linux, 64-bit): SO_TIMESTAMPING and its
# control message, three struct timespec of which the first is the software stamp.
_SO_TIMESTAMPING = 37
_SOF_TX_SOFTWARE = 1 << 1
_SOF_RX_SOFTWARE = 1 << 3
_SOF_SOFTWARE = 1 << 4
_SOF_OPT_TSONLY = 1 << 11  # the error queue returns the stamp, not a copy of the packet
_FLAGS = _SOF_TX_SOFTWARE | _SOF_RX_SOFTWARE | _SOF_SOFTWARE | _SOF_OPT_TSONLY
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = 3 * _TIMESPEC.size + 64
_BUFFER = 2048
_TX_WAIT_S = 0.0005  # the send stamp is queued as the syscall returns; rarely later
# From reading t1 to the kernel's send stamp is µs, a few ms at worst under load:
# a send stamp later than this is on another clock.
_PLAUSIBLE_NS = 50_000_000


def enable_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp datagrams leaving and arriving (Linux); ``False`` where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING, _FLAGS)
    except OSError:
        return False
    return True


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPING and len(payload) >= 16:
            seconds, nanos = _TIMESPEC.unpack_from(payload)
            return int(seconds) * 1_000_000_000 + int(nanos)
    return 0


def _realtime() -> int:
    # CLOCK_REALTIME, the kernel's stamp clock, read directly: the caller's
    # clock may be a skewed stand-in.
    return time.clock_gettime_ns(time.CLOCK_REALTIME)


def _offset(clock_ns: Callable[[], int]) -> int:
    """``clock_ns() − CLOCK_REALTIME``, from readings no more than 20 µs apart.

    A thread preempted between the two readings would carry the preemption
    into the sample (a negative delay, seen under load): see :mod:`schedobs._pairing`.
    """
    local, realtime, _ = read_pair(clock_ns, _realtime)
    return local - realtime


def _sent_stamp(sock: socket.socket) -> int:
    """The kernel's send stamp from the socket's error queue, or 0."""
    deadline = time.monotonic() + _TX_WAIT_S
    while True:
        try:
            _data, ancillary, _flags, _addr = sock.recvmsg(
                _BUFFER, _ANCILLARY, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
            )
        except (BlockingIOError, InterruptedError):
            if time.monotonic() >= deadline:
                return 0
            continue
        except OSError:
            return 0
        return _stamp(ancillary)


def send(sock: socket.socket, data: bytes, clock_ns: Callable[[], int]) -> int:
    """Send ``data``; return when it left, on ``clock_ns`` (the kernel's stamp if enabled)."""
    try:
        stamped = sock.getsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING) & _SOF_TX_SOFTWARE
    except OSError:
        stamped = 0
    local = clock_ns()
    sock.send(data)
    if stamped:
        left = _sent_stamp(sock)
        if left:
            mapped = left + _offset(clock_ns)
            if local <= mapped <= local + _PLAUSIBLE_NS:
                return mapped
    return local


def receive(
    sock: socket.socket, clock_ns: Callable[[], int], timeout: float, not_before: int = 0
) -> tuple[bytes, Any, int]:
    """One datagram, its sender and its arrival time on ``clock_ns``, waiting at most
    ``timeout`` seconds (``TimeoutError`` after).  ``not_before``: when the request
    this answers was sent (a kernel stamp earlier than that is on another clock).

    The socket should be blocking without a timeout: CPython polls a socket
    that has a timeout before every send, one more delay between reading t1
    and the datagram leaving.  This function does the waiting instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            raise TimeoutError(f"no datagram within {timeout} s")
        try:
            data, ancillary, _flags, sender = sock.recvmsg(_BUFFER, _ANCILLARY, socket.MSG_DONTWAIT)
        except BlockingIOError:
            # Readable for a late send stamp on the error queue (or a datagram
            # dropped for its checksum): clear it and wait again.
            _sent_stamp(sock)
            continue
        break
    now = clock_ns()
    arrived = _stamp(ancillary)
    if arrived:
        mapped = arrived + _offset(clock_ns)
        if not_before <= mapped <= now:
            return data, sender, mapped
    return data, sender, now
