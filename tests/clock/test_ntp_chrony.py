"""NTPv4 against a real server: Debian's chrony on loopback (see tests/_chrony_server.py)."""

from __future__ import annotations

import socket
import time

import pytest

from schedobs.clock import NtpKey
from schedobs.clock._ntp import query

from .._chrony_server import ChronyServer

pytestmark = pytest.mark.integration


def _connected(server: ChronyServer) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", server.port))
    return sock


def test_offset_and_delay_of_a_skewed_local_clock(chrony_server: ChronyServer) -> None:
    # chrony serves this host's own clock; ours is skewed in-process by +37 ms
    # and 40 ppm, so the measured offset (reference − local) must be −(skew).
    t0 = time.time_ns()

    def skewed() -> int:
        now = time.time_ns()
        return now + 37_000_000 + (now - t0) * 40 // 1_000_000

    with _connected(chrony_server) as sock:
        for _ in range(5):
            t1, t2, t3, t4, reply = query(sock, clock_ns=skewed)
            true_skew = skewed() - time.time_ns()
            offset = ((t2 - t1) + (t3 - t4)) / 2
            delay = (t4 - t1) - (t3 - t2)
            assert 0 <= delay < 50_000_000
            # A two-way exchange is exact to within half its delay (plus the
            # microseconds between reading the skew and the exchange).
            assert abs(offset + true_skew) <= delay / 2 + 100_000, (offset, true_skew, delay)
            assert reply.stratum == 8 and reply.version == 4


@pytest.mark.parametrize("hash_name", ["MD5", "SHA1", "SHA256"])
def test_an_authenticated_exchange_with_the_right_key(
    chrony_server: ChronyServer, hash_name: str
) -> None:
    with _connected(chrony_server) as sock:
        _, t2, t3, _, reply = query(sock, key=chrony_server.keys[hash_name])
    assert t3 >= t2 and reply.stratum == 8


def test_a_wrong_key_gets_no_time(chrony_server: ChronyServer) -> None:
    wrong = NtpKey(3, "SHA256", b"not the secret chrony was given!")
    with _connected(chrony_server) as sock, pytest.raises(TimeoutError):
        query(sock, key=wrong, timeout=0.5)  # chrony drops it; nothing unsigned is believed
