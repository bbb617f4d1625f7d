"""The background prober: measures this host's clock against a reference server.

Every ``interval`` seconds it sends a small burst of probes (one at a time,
each waiting at most ``timeout``) and feeds every valid exchange to the
estimator; the estimator's delay weighting picks the good ones.  It runs on its
own daemon thread and never blocks the application: readers only ever see the
estimator's latest fit.

A local wall-clock step (an NTP daemon or an operator setting the clock) is
detected directly: ``time.time_ns() − time.monotonic_ns()`` jumps by more than
the step threshold between bursts.  The estimator is then reset and
re-converges from the next burst.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from ._estimator import OffsetEstimator
from ._protocol import MAX_DATAGRAM, ProtocolError, Response, decode, encode_request

__all__ = ["ClockProber"]

_log = logging.getLogger("schedobs")


def parse_address(value: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:123"`` for IPv6) → ``(host, port)``; ``ValueError`` otherwise."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"clock reference must look like '127.0.0.1:7123', got {value!r}")
    return host, int(port)


class ClockProber:
    """Probes ``reference`` (``"host:port"``) and keeps ``estimator`` current."""

    def __init__(
        self,
        reference: str,
        estimator: OffsetEstimator,
        *,
        interval: float = 5.0,
        burst: int = 3,
        timeout: float = 1.0,
        key: bytes | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        step_threshold_ns: int = 1_000_000,
    ) -> None:
        self.reference = parse_address(reference)
        if not interval > 0 or not timeout > 0 or burst < 1:
            raise ValueError("interval and timeout must be > 0 and burst >= 1")
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            raise ValueError("key must be bytes of at least 16 bytes")
        self.estimator = estimator
        self._interval = interval
        self._burst = burst
        self._timeout = timeout
        self._key = key
        self._clock = clock_ns
        self._step = step_threshold_ns
        self._stop = threading.Event()
        self._seq = int.from_bytes(os.urandom(4), "big")
        self._thread = threading.Thread(target=self._run, name="schedobs-clock-prober", daemon=True)
        #: Exchanges that produced a sample.
        self.samples = 0
        #: Probes with no valid reply in time.
        self.lost = 0
        #: Replies dropped: malformed, bad MAC, wrong sequence or echo (spoofing).
        self.spoofed = 0
        #: Local wall-clock steps seen.
        self.local_steps = 0
        #: Round-trip time of the last exchange, ns (0 before any).
        self.last_rtt_ns = 0

    def start(self) -> ClockProber:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._timeout + 1)

    def probe_once(self, sock: socket.socket) -> bool:
        """One exchange on ``sock``; ``True`` if it produced a sample."""
        self._seq = (self._seq + 1) & 0xFFFFFFFFFFFFFFFF
        seq = self._seq
        t1 = self._clock()
        try:
            sock.send(encode_request(seq, t1, self._key))
        except OSError:
            self.lost += 1
            return False
        deadline = time.monotonic() + self._timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.lost += 1
                return False
            sock.settimeout(left)
            try:
                datagram = sock.recv(MAX_DATAGRAM + 1)
            except (TimeoutError, OSError):
                self.lost += 1
                return False
            t4 = self._clock()
            try:
                message = decode(datagram, self._key)
            except ProtocolError:
                self.spoofed += 1
                continue
            if not isinstance(message, Response) or message.seq != seq or message.t1 != t1:
                self.spoofed += 1  # a stale or forged reply: keep waiting for ours
                continue
            try:
                self.estimator.add_sample(t1, message.t2, message.t3, t4)
            except (TypeError, ValueError):
                return False  # counted by the estimator
            self.samples += 1
            self.last_rtt_ns = t4 - t1
            return True

    def _run(self) -> None:
        family = socket.AF_INET6 if ":" in self.reference[0] else socket.AF_INET
        last_gap: int | None = None
        while not self._stop.is_set():
            gap = time.time_ns() - time.monotonic_ns()
            if last_gap is not None and abs(gap - last_gap) > self._step:
                self.local_steps += 1
                self.estimator.reset()
                _log.warning("local wall clock stepped by %.3f ms; clock estimate reset",
                             (gap - last_gap) / 1e6)  # fmt: skip
            last_gap = gap
            try:
                with socket.socket(family, socket.SOCK_DGRAM) as sock:
                    sock.connect(self.reference)
                    for _ in range(self._burst):
                        if self._stop.is_set():
                            break
                        self.probe_once(sock)
            except OSError as exc:
                self.lost += 1
                _log.debug("clock probe failed: %s", exc)
            self._stop.wait(self._interval)
