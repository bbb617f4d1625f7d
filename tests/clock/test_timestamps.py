"""Kernel timestamps date a datagram by when it left and arrived, not when Python ran."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator

import pytest

from schedobs.clock._timestamps import enable_timestamps, receive, send

MS = 1_000_000
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_TIMESTAMPING")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.1", 0))
    a.connect(b.getsockname())
    yield a, b
    a.close()
    b.close()


def _skewed(offset_ns: int):  # type: ignore[no-untyped-def]
    return lambda: time.time_ns() + offset_ns


@linux_only
def test_a_datagram_read_late_is_dated_at_its_arrival(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    assert enable_timestamps(b)
    clock = _skewed(3_000 * MS)  # the caller's clock need not be the kernel's
    before = clock()
    a.send(b"x")
    after = clock()  # the datagram arrived between the two readings, however late this is
    time.sleep(0.05)  # the reader is 50 ms late
    read_at = clock()
    data, sender, t = receive(b, clock, 1.0)
    assert data == b"x" and sender == a.getsockname()
    # Bracketed by the send (the kernel's stamp mapped onto the caller's clock; 1 ms for
    # the mapping's own readings), and nowhere near the late read.
    assert before - MS <= t <= after + MS
    assert t < read_at - 40 * MS


def test_without_timestamps_the_read_time_is_used(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.send(b"x")
    time.sleep(0.05)
    before = time.time_ns()
    _, _, t = receive(b, time.time_ns, 1.0)
    assert before <= t <= time.time_ns()


@linux_only
def test_send_returns_when_the_datagram_left(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    assert enable_timestamps(a)
    clock = _skewed(-7_000 * MS)
    for _ in range(3):
        time.sleep(0.01)
        before = clock()
        left = send(a, b"y", clock)
        after = clock()
        assert before <= left <= after
        assert receive(b, clock, 1.0)[0] == b"y"  # the send stamp did not eat the datagram


def test_receive_waits_no_longer_than_asked(pair: tuple[socket.socket, socket.socket]) -> None:
    _, b = pair
    enable_timestamps(b)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        receive(b, time.time_ns, 0.1)
    assert time.monotonic() - start < 1.0
