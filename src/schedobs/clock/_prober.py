"""The background prober: measures this host's clock against a reference server.

The reference is any NTP server, ``"ntp://host[:port]"`` (chrony, ntpd, a
cloud's time service; NTPv4 client mode, see :mod:`._ntp`), a Redis server,
``"redis://[:password@]host[:port]"`` (its ``TIME``: the broker every
producer and worker of a task queue reaches, see :mod:`._redis`), or a
schedobs probe server, ``"host:port"`` (``schedobs clock serve``, for
networks without one).  Every ``interval`` seconds it probes — one request to
an NTP server (servers rate-limit clients; more only if ``burst`` says so), a
small burst to a Redis or schedobs server — each waiting at most ``timeout``,
and feeds every valid exchange to the estimator.  It runs on its own daemon thread and never blocks
the application: readers only ever see the estimator's latest fit.

An NTP server's kiss-o'-death is honoured and logged: ``RATE`` doubles the
interval (up to 17 minutes); ``DENY`` and ``RSTR`` stop the prober.  Replies
from an unsynchronised server (leap alarm, stratum 16) are never used.

A reference that stops answering is loud: when no probe has produced a
sample for ``silence_after`` intervals (and at least 2 s) since the start or
since the last sample, one warning says so, names the reference and what was
seen (lost, kiss-o'-death, unsynchronised, refused samples) and that
timestamps go out uncorrected or on an aging estimate; one more line says when
it answers again.  The counters behind it are exported as clock metrics.

A local wall-clock step (an NTP daemon or an operator setting the clock) is
detected directly: ``time.time_ns() − time.monotonic_ns()`` jumps by more than
the step threshold between bursts.  The step is measured, so the estimator's
window is shifted by it (:meth:`OffsetEstimator.shift`) rather than discarded.
The two clocks are read bracketed (monotonic, wall, monotonic) and the pair
retried when the brackets are far apart: a thread that loses the GIL between
two readings would otherwise see a "step" of the other thread's time slice
(seen: ±8 ms in a busy Celery worker, resetting a good estimate twice).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable

from schedobs._address import split_host_port
from schedobs._pairing import read_pair

from ._estimator import DEFAULT_HOST_ASYMMETRY_NS, OffsetEstimator
from ._exchange import Exchange, NtpExchange, Outcome, RedisExchange, SchedobsExchange
from ._ntp import STOP_CODES, NtpKey
from ._redis import HOST_ASYMMETRY_NS as REDIS_HOST_ASYMMETRY_NS
from ._redis import RedisError, parse_redis_url

__all__ = ["ClockProber", "estimator_for", "parse_reference"]

_log = logging.getLogger("schedobs")
_NTP_PORT = 123
#: One sigma of the timestamping asymmetry an NTP exchange hides, ns.  A server in
#: basic mode reads its transmit timestamp before it sends (chrony does; only servers
#: with kernel or hardware transmit stamps avoid it), so every reply's t3 is early by
#: the server's send path: about 5 µs against chrony on this project's test machines,
#: 7–8 µs in some runs, while the estimate's own sigma there settles near 2 µs.  No
#: two-way exchange can see it, so it is a prior, added to the uncertainty only.
NTP_SERVER_ASYMMETRY_NS = 5_000
_MAX_INTERVAL_S = 1024.0  # NTP's largest poll (2**10 s): where RATE back-off stops


_FORMS = "'ntp://time.example', 'redis://broker:6379' or '127.0.0.1:7123'"


def parse_reference(value: str) -> tuple[str, str, int]:
    """``"ntp://host[:port]"`` → ``("ntp", host, port)`` (port 123 by default);
    ``"redis://[…@]host[:port][/db]"`` → ``("redis", host, port)`` (6379 by default);
    ``"host:port"`` → ``("schedobs", host, port)``; ``ValueError`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"clock reference must be a str, got {type(value).__name__}")
    if value.startswith(("redis://", "rediss://")):
        redis = parse_redis_url(value)
        return ("redis", redis.host, redis.port)
    if value.startswith("ntp://"):
        address = split_host_port(value[len("ntp://") :].rstrip("/"), _NTP_PORT)
        if address is None:
            raise ValueError(f"an NTP reference looks like 'ntp://time.example:123', got {value!r}")
        return ("ntp", *address)
    if "://" in value:
        scheme = value.partition("://")[0]
        raise ValueError(
            f"clock reference scheme {scheme!r} is not supported: it must look like "
            f"{_FORMS}, got {value!r}"
        )
    address = split_host_port(value, None)
    if address is None:
        raise ValueError(f"clock reference must look like {_FORMS}, got {value!r}")
    return ("schedobs", *address)


def wall_minus_monotonic(
    wall_ns: Callable[[], int] = time.time_ns, monotonic_ns: Callable[[], int] = time.monotonic_ns
) -> tuple[int, int]:
    """``(wall − monotonic, spread)``, from the most tightly bracketed of a few readings.

    ``spread`` is how far apart the monotonic readings around the wall one were:
    the uncertainty of the difference.
    """
    wall, monotonic, spread = read_pair(wall_ns, monotonic_ns)
    return wall - monotonic, spread


def estimator_for(reference: str) -> OffsetEstimator:
    """An estimator whose priors suit how ``reference`` is measured.

    A Redis reference is timed in user space (TCP gives us no kernel stamps):
    its samples carry more host-side asymmetry, and the uncertainty says so.
    An NTP server's own timestamps carry some too (:data:`NTP_SERVER_ASYMMETRY_NS`).
    """
    kind = parse_reference(reference)[0]
    if kind == "redis":
        return OffsetEstimator(host_asymmetry_ns=REDIS_HOST_ASYMMETRY_NS)
    if kind == "ntp":
        # The server's send path on top of the hosts' stacks (independent: in quadrature).
        return OffsetEstimator(
            host_asymmetry_ns=round(math.hypot(DEFAULT_HOST_ASYMMETRY_NS, NTP_SERVER_ASYMMETRY_NS))
        )
    return OffsetEstimator()


class ClockProber:
    """Probes ``reference`` and keeps ``estimator`` current.

    ``reference``: ``"ntp://host[:port]"`` for an NTP server,
    ``"redis://[:password@]host[:port]"`` for a Redis server's ``TIME``, or
    ``"host:port"`` for a schedobs probe server.  ``key``: for NTP, an
    :class:`NtpKey` or a chrony/ntpd key line (``"1 SHA256 HEX:…"``); for a
    schedobs server, the shared secret (bytes, >= 16); none for Redis (its
    password goes in the URL).  ``burst``: probes per interval (NTP: 1, Redis
    and schedobs: 3 by default).
    """

    def __init__(
        self,
        reference: str,
        estimator: OffsetEstimator,
        *,
        interval: float = 5.0,
        burst: int | None = None,
        timeout: float = 1.0,
        key: bytes | NtpKey | str | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        step_threshold_ns: int = 1_000_000,
        silence_after: float = 3.0,
    ) -> None:
        self.protocol, host, port = parse_reference(reference)
        self.reference = (host, port)
        if burst is None:
            burst = 1 if self.protocol == "ntp" else 3
        if not interval > 0 or not timeout > 0 or burst < 1 or not silence_after > 0:
            raise ValueError("interval, timeout and silence_after must be > 0 and burst >= 1")
        self._exchange = _exchange_for(self.protocol, reference, (host, port), key, clock_ns)
        self.estimator = estimator
        self._interval = interval
        self._burst = burst
        self._timeout = timeout
        self._clock = clock_ns
        self._step = step_threshold_ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedobs-clock-prober", daemon=True)
        #: Exchanges that produced a sample.
        self.samples = 0
        #: Probes that got no reply at all in time.
        self.lost = 0
        #: Probes whose only replies were unusable: malformed, a bad or missing MAC,
        #: a wrong sequence, nonce or echo (forged or stale).  One outcome per probe:
        #: unusable datagrams beside a genuine reply do not make its sample invalid.
        self.spoofed = 0
        #: Local wall-clock steps seen.
        self.local_steps = 0
        #: Round-trip time of the last exchange, ns (0 before any).
        self.last_rtt_ns = 0
        #: NTP kiss-o'-death codes received, by code.
        self.kisses: dict[str, int] = {}
        #: Replies from a server that is not synchronised itself (not used).
        self.unsynchronised = 0
        #: The code with which an NTP server refused us (DENY, RSTR): probing stopped.
        self.refused: str | None = None
        #: Exchanges whose sample the estimator refused (invalid times).
        self.invalid = 0
        #: Unix time (s) of the last exchange that produced a sample, or ``None``.
        self.last_sample_at: float | None = None
        #: Whether the reference is currently silent (warned, not yet recovered).
        self.silent = False
        self._silence_after = silence_after
        self._since = time.monotonic()  # start, or the last sample
        self._warned: set[str] = set()

    @property
    def interval(self) -> float:
        """Seconds between probes (grows when an NTP server answers RATE)."""
        return self._interval

    def start(self) -> ClockProber:
        self._since = time.monotonic()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._timeout + 1)

    def probe_once(self, sock: socket.socket) -> bool:
        """One exchange on ``sock``; ``True`` if it produced a sample."""
        outcome = self._exchange.exchange(sock, self._timeout)
        if outcome.reopen:
            sock.close()
        return self._count(outcome)

    def _count(self, outcome: Outcome) -> bool:
        """Every probe's outcome is counted here, and nowhere else."""
        if outcome.problem is not None and outcome.kind in ("sample", "invalid"):
            # Said once, whether or not the genuine reply also came: either way someone
            # answers with a wrong key, or answers in the reference's place.
            self._warn_once(
                "unusable", "clock reference %s:%d: a reply could not be used (%s): check the "
                "key and that nothing else answers in its place", *self.reference, outcome.problem,
            )  # fmt: skip
        if outcome.kind == "sample":
            assert outcome.times is not None
            return self._add(*outcome.times)
        if outcome.kind == "lost":
            self.lost += 1
        elif outcome.kind == "invalid":
            self.spoofed += 1
        elif outcome.kind == "unsynchronised":
            self.unsynchronised += 1
            self._warn_once("unsynchronised", "NTP server %s:%d is not synchronised itself: "
                            "its replies are not used", *self.reference)  # fmt: skip
        else:
            self._kissed(outcome.code or "")
        return False

    def _kissed(self, code: str) -> None:
        """An NTP kiss-o'-death: RATE slows down, DENY and RSTR stop the prober."""
        self.kisses[code] = self.kisses.get(code, 0) + 1
        if code in STOP_CODES:
            self.refused = code
            self._stop.set()
            _log.error(
                "NTP server %s:%d refused us (kiss-o'-death %s): clock probing stopped",
                *self.reference, code,
            )  # fmt: skip
        elif code == "RATE":
            self._interval = min(self._interval * 2, _MAX_INTERVAL_S)
            _log.warning(
                "NTP server %s:%d asked us to slow down (RATE): probing every %.0f s",
                *self.reference, self._interval,
            )  # fmt: skip
        else:
            self._warn_once(code, "NTP server %s:%d sent kiss-o'-death %s",
                            *self.reference, code)  # fmt: skip

    def _add(self, t1: int, t2: int, t3: int, t4: int) -> bool:
        try:
            self.estimator.add_sample(t1, t2, t3, t4)
        except (TypeError, ValueError):
            self.invalid += 1  # also counted by the estimator
            return False
        self.samples += 1
        self.last_rtt_ns = t4 - t1
        self.last_sample_at = time.time()
        now = time.monotonic()
        if self.silent:
            self.silent = False
            _log.warning(
                "clock reference %s:%d answers again after %.0f s: clock correction resumes",
                *self.reference, now - self._since,
            )  # fmt: skip
        self._since = now
        return True

    def outcomes(self) -> dict[str, int]:
        """Probes so far by outcome (the ``clock.probes`` metric)."""
        return {
            "sample": self.samples,
            "lost": self.lost,
            "kiss": sum(self.kisses.values()),
            "unsynchronised": self.unsynchronised,
            "invalid": self.spoofed + self.invalid,
        }

    def check_silence(self) -> bool:
        """Warn once if no sample came for too long; ``True`` while silent."""
        if self.silent or self.refused:
            return self.silent
        quiet = time.monotonic() - self._since
        if quiet < max(self._silence_after * self._interval, 2.0):
            return False
        self.silent = True
        seen = [f"{self.lost} lost"]
        seen += [f"{n} kiss-o'-death {code}" for code, n in sorted(self.kisses.items())]
        if self.unsynchronised:
            seen.append(f"{self.unsynchronised} from an unsynchronised server")
        if self.spoofed or self.invalid:
            seen.append(f"{self.spoofed + self.invalid} invalid")
        after = (
            "timestamps go out uncorrected"
            if self.estimator.estimate() is None
            else "timestamps are corrected by an aging estimate whose uncertainty grows"
        )
        failed = sum(n for outcome, n in self.outcomes().items() if outcome != "sample")
        _log.warning(
            "clock reference %s:%d (%s) gave no usable sample in %.0f s (%d probes failed "
            "since start: %s); %s",
            *self.reference, self.protocol, quiet, failed, ", ".join(seen), after,
        )  # fmt: skip
        return True

    def _warn_once(self, what: str, message: str, *args: object) -> None:
        if what not in self._warned:
            self._warned.add(what)
            _log.warning(message, *args)

    def open_socket(self) -> socket.socket:
        """A UDP socket connected to the reference, with kernel timestamps where available;
        for Redis, a logged-in TCP connection."""
        try:
            return self._exchange.open(self._timeout)
        except OSError as exc:
            if isinstance(exc.__cause__, RedisError):  # no sample, said once
                self._warn_once("redis-auth", "Redis server %s:%d refused the login: %s",
                                *self.reference, exc)  # fmt: skip
            raise

    def _run(self) -> None:
        last_gap: int | None = None
        while not self._stop.is_set():
            gap, spread = wall_minus_monotonic()
            if spread * 2 > self._step:
                pass  # every reading was split by a preemption: judge at the next burst
            else:
                if last_gap is not None and abs(gap - last_gap) > self._step:
                    # The wall clock moved against the monotonic one by this much: the
                    # samples so far are moved with it, not thrown away.
                    self.local_steps += 1
                    self.estimator.shift(gap - last_gap)
                    _log.warning("local wall clock stepped by %.3f ms; clock estimate shifted "
                                 "with it", (gap - last_gap) / 1e6)  # fmt: skip
                last_gap = gap
            try:
                with self.open_socket() as sock:
                    for _ in range(self._burst):
                        if self._stop.is_set():
                            break
                        self.probe_once(sock)
            except OSError as exc:
                self.lost += 1
                _log.debug("clock probe failed: %s", exc)
            self.check_silence()
            self._stop.wait(self._interval)  # grows on RATE; a refusal sets _stop


def _exchange_for(
    protocol: str,
    reference: str,
    address: tuple[str, int],
    key: bytes | NtpKey | str | None,
    clock_ns: Callable[[], int],
) -> Exchange:
    """The exchange for a reference of kind ``protocol``, its key checked."""
    if protocol == "redis":
        if key is not None:
            raise ValueError(
                "a redis:// reference takes no key: put the password in the URL, "
                "as in 'redis://:password@host:6379'"
            )
        return RedisExchange(parse_redis_url(reference), clock_ns)
    if protocol == "ntp":
        if isinstance(key, str):
            key = NtpKey.parse(key)
        if key is not None and not isinstance(key, NtpKey):
            raise ValueError(
                "an ntp:// reference takes an NtpKey or a key line such as "
                "'1 SHA256 HEX:…' (as in chrony's keyfile), not raw bytes"
            )
        return NtpExchange(address, key, clock_ns)
    if key is not None and (not isinstance(key, bytes) or len(key) < 16):
        raise ValueError("a host:port reference takes a key of at least 16 bytes")
    return SchedobsExchange(address, key, clock_ns, int.from_bytes(os.urandom(4), "big"))
