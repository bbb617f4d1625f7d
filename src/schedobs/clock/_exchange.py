"""One probe of a reference, by kind: what it sends, what it accepts, and its outcome.

Each kind of reference (NTP, Redis ``TIME``, a schedobs probe server) is an
:class:`Exchange`: it opens its connection and makes one exchange on it, and
says what came of it as an :class:`Outcome`.  The prober (``_prober``) counts
the outcomes, in one place, and decides what they mean for its schedule.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ._ntp import KissOfDeathError, NtpError, NtpKey, UnsynchronisedError, query
from ._protocol import ProtocolError, Response, decode, encode_request
from ._redis import RedisError, RedisReference
from ._redis import connect as connect_redis
from ._redis import query_time as redis_time
from ._timestamps import enable_timestamps, receive, send

__all__ = ["Exchange", "NtpExchange", "Outcome", "RedisExchange", "SchedobsExchange"]

#: What one probe came to (the ``outcome`` attribute of the ``clock.probes`` metric, but
#: ``kiss`` and ``unsynchronised`` apart from ``invalid``, as there).
Kind = Literal["sample", "lost", "invalid", "kiss", "unsynchronised"]


@dataclass(frozen=True)
class Outcome:
    """One probe's result: its kind, the four timestamps of a sample, and why not."""

    kind: Kind
    times: tuple[int, int, int, int] | None = None
    #: What was wrong with an unusable reply (a sample may come with one: a forged
    #: datagram beside the genuine reply), or the refusal's text.
    problem: str | None = None
    #: The kiss-o'-death code (``kind == "kiss"``).
    code: str | None = None
    #: Whether the connection is out of step and must be opened again.
    reopen: bool = False


def _sample(t1: int, t2: int, t3: int, t4: int, problem: str | None = None) -> Outcome:
    return Outcome("sample", (t1, t2, t3, t4), problem)


class Exchange(Protocol):
    """One kind of reference."""

    def open(self, timeout: float) -> socket.socket:
        """A connection to the reference (``OSError`` when it cannot be made)."""
        ...

    def exchange(self, sock: socket.socket, timeout: float) -> Outcome:
        """One probe on ``sock``, waiting at most ``timeout`` seconds for its reply."""
        ...


class _UdpExchange:
    """A reference over UDP (NTP, a schedobs server): the connected socket both use."""

    def __init__(self, address: tuple[str, int], clock_ns: Callable[[], int]) -> None:
        self.address = address
        self.clock_ns = clock_ns

    def open(self, timeout: float) -> socket.socket:
        """A UDP socket connected to the reference, with kernel timestamps where available."""
        family = socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        enable_timestamps(sock)
        return sock


class NtpExchange(_UdpExchange):
    """An NTP server in client mode (RFC 5905), optionally with a symmetric key."""

    def __init__(
        self, address: tuple[str, int], key: NtpKey | None, clock_ns: Callable[[], int]
    ) -> None:
        super().__init__(address, clock_ns)
        self.key = key

    def exchange(self, sock: socket.socket, timeout: float) -> Outcome:
        unusable: list[NtpError] = []
        try:
            t1, t2, t3, t4, _reply = query(
                sock, key=self.key, clock_ns=self.clock_ns, timeout=timeout,
                rejected=unusable.append,
            )  # fmt: skip
        except (TimeoutError, OSError):
            # Forged or wrongly signed replies and no genuine one: invalid, not lost.
            if unusable:
                return Outcome("invalid", problem=str(unusable[0]))
            return Outcome("lost")
        except KissOfDeathError as kiss:
            return Outcome("kiss", code=kiss.code, problem=str(kiss))
        except UnsynchronisedError as error:
            return Outcome("unsynchronised", problem=str(error))
        return _sample(t1, t2, t3, t4, str(unusable[0]) if unusable else None)


class RedisExchange:
    """A Redis server's ``TIME`` over a logged-in TCP connection (timed in user space)."""

    def __init__(self, reference: RedisReference, clock_ns: Callable[[], int]) -> None:
        self.reference = reference
        self.clock_ns = clock_ns

    def open(self, timeout: float) -> socket.socket:
        try:
            return connect_redis(self.reference, timeout)
        except RedisError as exc:  # a refused login: an OSError caused by it
            raise OSError(str(exc)) from exc

    def exchange(self, sock: socket.socket, timeout: float) -> Outcome:
        # Two TIME exchanges back to back, the shorter round trip kept. After a pause
        # the first one's request waits for the idle server (and its CPU) to wake, its
        # reply does not: measured on a VM, a lone exchange read the server ~110 µs
        # late at round trips of 0.1-1 ms, a one-sided delay the round trip only
        # bounds. The second finds both ends awake (median error -1.5 µs there).
        deadline = time.monotonic() + timeout
        try:
            first = redis_time(sock, self.clock_ns, timeout)
            left = deadline - time.monotonic()
            second = redis_time(sock, self.clock_ns, left) if left > 0 else first
        except (TimeoutError, OSError):
            # Out of step: the rest of the burst fails fast, the next one reconnects.
            return Outcome("lost", reopen=True)
        except RedisError as exc:
            return Outcome("invalid", problem=f"no usable TIME reply ({exc})", reopen=True)
        return _sample(*min(first, second, key=lambda times: times[3] - times[0]))


class SchedobsExchange(_UdpExchange):
    """A schedobs probe server (``schedobs clock serve``), optionally keyed."""

    def __init__(
        self, address: tuple[str, int], key: bytes | None, clock_ns: Callable[[], int], seq: int
    ) -> None:
        super().__init__(address, clock_ns)
        self.key = key
        self._seq = seq

    def exchange(self, sock: socket.socket, timeout: float) -> Outcome:
        self._seq = seq = (self._seq + 1) & 0xFFFFFFFFFFFFFFFF
        t1 = self.clock_ns()  # echoed by the server: it identifies the reply
        try:
            sent = send(sock, encode_request(seq, t1, self.key), self.clock_ns)
        except OSError:
            return Outcome("lost")
        deadline = time.monotonic() + timeout
        unusable: str | None = None
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                datagram, _, t4 = receive(sock, self.clock_ns, left, sent)
            except (TimeoutError, OSError):
                return Outcome("lost") if unusable is None else Outcome("invalid", problem=unusable)
            try:
                message = decode(datagram, self.key)
            except ProtocolError as error:
                unusable = str(error)
                continue
            if not isinstance(message, Response) or message.seq != seq or message.t1 != t1:
                unusable = "a reply to another request (stale or forged)"  # keep waiting
                continue
            return _sample(sent, message.t2, message.t3, t4, unusable)
