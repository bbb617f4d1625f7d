"""A Redis server as the reference clock: its ``TIME`` command, timed from here.

Where no NTP service is reachable, the broker of a distributed task queue
still is, from every producer and every worker: ``redis://host[:port]`` makes
the Redis server's clock the common reference.  One exchange is::

    t1 = local clock            ──── TIME ────►
                                               server reads its clock: s (µs)
    t4 = local clock            ◄── [sec, µs] ──

``TIME`` reports one instant, so t2 = t3 = s.  It truncates to whole
microseconds: the true instant lies in [s, s + 1 µs), and the middle of that
interval is used (a 0.5 µs bias removed, ±0.29 µs of noise left, far below
any network path's).  The round trip (t4 − t1) bounds the error as for NTP:
|θ − truth| ≤ δ/2, and the estimator weights each sample by how close its
delay is to the path's minimum.

A probe makes two exchanges back to back and keeps the shorter round trip
(``_exchange.RedisExchange``): the first one's request waits for an idle
server to wake, a one-sided delay that its reply does not have.

Timestamps are read with the process's own clock before the request is
written and after the whole reply is read, never from the kernel: TCP has
no per-segment timestamps for user space, and a process whose clock is
shifted in user space (libfaketime) must be measured on the clock it reads.

The client speaks just enough RESP (the Redis serialisation protocol) for
``AUTH`` and ``TIME``; it needs no Redis library.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = [
    "HOST_ASYMMETRY_NS",
    "RedisError",
    "RedisReference",
    "connect",
    "parse_redis_url",
    "query_time",
]

_DEFAULT_PORT = 6379
#: One sigma of the host-side asymmetry of an exchange timed in user space: the
#: request leaves a syscall after t1, the reply waits for the thread to wake
#: from select(), read and parse before t4 — 5-20 µs each way on an idle
#: host, and they need not match.  The kernel-stamped NTP path leaves ~2 µs.
HOST_ASYMMETRY_NS = 10_000
_TIME = b"*1\r\n$4\r\nTIME\r\n"
_MAX_REPLY = 4096  # a TIME reply is ~40 bytes; anything longer is not one
_HALF_MICROSECOND_NS = 500


class RedisError(Exception):
    """The Redis server answered with an error (``-ERR …``) or with something that is not
    a reply to our command."""


@dataclass(frozen=True)
class RedisReference:
    """Where the reference Redis server is, and how to log in (``AUTH``)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.port}"


def parse_redis_url(value: str) -> RedisReference:
    """``redis://[[user]:password@]host[:port][/db]`` → :class:`RedisReference`.

    The database number is accepted and ignored (``TIME`` has none), so a
    Celery ``broker_url`` can be given as it is.  ``ValueError`` otherwise.
    """
    if not isinstance(value, str):
        raise TypeError(f"a Redis reference must be a str, got {type(value).__name__}")
    if value.startswith("rediss://"):
        raise ValueError(
            f"TLS Redis (rediss://) is not supported as a clock reference: a TLS handshake "
            f"per probe adds an asymmetric delay; give a plain redis:// address, got {value!r}"
        )
    parts = urlsplit(value)
    try:
        port = parts.port or _DEFAULT_PORT
    except ValueError:
        port = 0
    path = parts.path.strip("/")
    if (
        parts.scheme != "redis"
        or not parts.hostname
        or not 0 < port < 65536
        or (path and not path.isdigit())
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"a Redis reference looks like 'redis://host:6379' or "
            f"'redis://:password@host:6379/0', got {value!r}"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return RedisReference(parts.hostname, port, username, password)


class _Reader:
    """RESP replies from a blocking socket, read with a deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buffer = b""

    def _fill(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0 or not select.select([self._sock], [], [], left)[0]:
            raise TimeoutError("the Redis server did not answer in time")
        chunk = self._sock.recv(_MAX_REPLY)
        if not chunk:
            raise ConnectionError("the Redis server closed the connection")
        self._buffer += chunk
        if len(self._buffer) > _MAX_REPLY:
            raise RedisError("reply too long for a TIME or AUTH reply")

    def line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def bulk(self) -> bytes:
        """One bulk string (``$n``), as ``TIME`` answers with."""
        header = self.line()
        if not header.startswith(b"$") or not header[1:].isdigit():
            raise RedisError(f"expected a bulk string, got {header[:40]!r}")
        size = int(header[1:])
        while len(self._buffer) < size + 2:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
        return data

    def simple(self) -> bytes:
        """A simple reply line (``+OK``); an error reply raises :class:`RedisError`."""
        line = self.line()
        if line.startswith(b"-"):
            raise RedisError(line[1:].decode("utf-8", "replace"))
        return line


def _command(*words: str) -> bytes:
    encoded = [w.encode() for w in words]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded)


def connect(reference: RedisReference, timeout: float) -> socket.socket:
    """A TCP connection to ``reference``, logged in if it has a password (blocking mode).

    ``OSError`` if it cannot connect; :class:`RedisError` if the login is refused.
    """
    sock = socket.create_connection((reference.host, reference.port), timeout=timeout)
    try:
        # Small requests must leave at once, not wait for Nagle's algorithm.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reference.password is not None:
            words = ["AUTH", reference.password]
            if reference.username:
                words.insert(1, reference.username)
            sock.sendall(_command(*words))
            _Reader(sock, time.monotonic() + timeout).simple()
        # Blocking, without a timeout: CPython polls a socket that has one before
        # every send, a delay between reading t1 and the request leaving.
        # Replies are awaited with select() instead.
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return sock


def query_time(
    sock: socket.socket, clock_ns: Callable[[], int] = time.time_ns, timeout: float = 1.0
) -> tuple[int, int, int, int]:
    """One ``TIME`` exchange on ``sock``: ``(t1, t2, t3, t4)`` in ns, t1/t4 on ``clock_ns``.

    ``TimeoutError``/``OSError`` if no reply came; :class:`RedisError` for an
    error reply or one that is not a ``TIME`` reply (the connection is then
    out of step and must be closed).
    """
    reader = _Reader(sock, time.monotonic() + timeout)
    t1 = clock_ns()
    sock.sendall(_TIME)
    header = reader.line()
    if header.startswith(b"-"):
        raise RedisError(header[1:].decode("utf-8", "replace"))
    if header != b"*2":
        raise RedisError(f"expected a two-element TIME reply, got {header[:40]!r}")
    seconds, micros = reader.bulk(), reader.bulk()
    t4 = clock_ns()
    if not (seconds.isdigit() and micros.isdigit() and int(micros) < 1_000_000):
        raise RedisError(f"not a TIME reply: {seconds[:20]!r} {micros[:20]!r}")
    server = int(seconds) * 1_000_000_000 + int(micros) * 1_000 + _HALF_MICROSECOND_NS
    return t1, server, server, t4
