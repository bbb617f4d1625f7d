"""From prefork pool children to the worker's main process: one datagram per event.

Celery's prefork pool runs each task in a child process, but the main process
is the one that receives messages, holds the Prometheus endpoint and the clock
prober, and lives as long as the worker: its metrics are the worker's.  A child
only knows when a task started (``task_prerun`` runs there) and in which trace.
So the child sends those facts, and the main process records them::

    main process                                   pool child
    ─ socketpair() at worker_init ─── fork ──────► inherits the sending end
    ─ reader thread: recv → record ◄── datagram ── task_prerun: send(start facts)

``AF_UNIX`` datagrams are reliable and atomic: many children can send at once
without a lock, and a child killed mid-send cannot corrupt another's message.
A child's send waits at most ``SEND_TIMEOUT_S`` when the main process lags; a
datagram that could not be sent then is counted in the child and logged once
(a stuck main process must not stall the tasks).

Records are tuples of ints, strings and ``None``, encoded with ``marshal``:
only this process tree holds the socket, and both ends are the same
interpreter.
"""

from __future__ import annotations

import contextlib
import logging
import marshal
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Relay"]

_log = logging.getLogger("schedobs")

SEND_TIMEOUT_S = 1.0
_MAX_DATAGRAM = 4096
# Room for bursts while the main process is busy: prefork children start tasks
# in bursts of the prefetch window.
_BUFFER_BYTES = 1 << 20

Record = tuple[Any, ...]


class Relay:
    """Carries records from forked children to the process that opened it."""

    def __init__(self, handle: Callable[[Record], None]) -> None:
        self._handle = handle
        self._receiving: socket.socket | None = None
        self._sending: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._complained = False
        #: The process that opened the relay and records what arrives.
        self.owner_pid = 0
        #: Records a child could not send in time (counted in that child).
        self.unsent = 0

    @property
    def is_open(self) -> bool:
        return self._sending is not None

    def open(self) -> None:
        """In the main process, before the pool forks: the pair and the reader thread."""
        if self._sending is not None:
            return
        receiving, sending = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for sock in (receiving, sending):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER_BYTES)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER_BYTES)
            except OSError:  # the system's limits stand; a smaller buffer only waits sooner
                continue
        sending.settimeout(SEND_TIMEOUT_S)
        self._receiving, self._sending = receiving, sending
        self.owner_pid = os.getpid()
        self._thread = threading.Thread(
            target=self._read, name="schedobs-celery-relay", daemon=True
        )
        self._thread.start()

    def in_child(self) -> bool:
        """Whether this process is a forked child that should send rather than record."""
        return self._sending is not None and os.getpid() != self.owner_pid

    def after_fork_in_child(self) -> None:
        """A child never reads: close its copy of the receiving end."""
        if self._receiving is not None and os.getpid() != self.owner_pid:
            self._receiving.close()
            self._receiving = None

    def send(self, record: Record) -> bool:
        """In a child: send one record; ``False`` (counted) if it could not go in time."""
        sock = self._sending
        if sock is None:
            return False
        try:
            sock.send(marshal.dumps(record))
        except OSError as exc:  # a timeout (the main process lags) or a closed relay
            self.unsent += 1
            if not self._complained:
                self._complained = True
                _log.error(
                    "schedobs could not pass a task's start to the worker's main process (%s); "
                    "it is missing from the metrics (logged once per child)",
                    exc,
                )
            return False
        return True

    def _read(self) -> None:
        sock = self._receiving
        assert sock is not None
        while True:
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except OSError:
                return  # closed
            if not data:  # the close() wake-up
                if self._closed.is_set():
                    return
                continue
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        try:
            record = marshal.loads(data)
            self._handle(record)
        except Exception:
            # A bad record must not end the reader: every later task would be lost.
            _log.exception("schedobs could not record a task event from a pool child")

    def close(self) -> None:
        """Stop reading after what has arrived; idempotent.  In the opening process only."""
        if self._sending is None or os.getpid() != self.owner_pid:
            return
        self._closed.set()
        with contextlib.suppress(OSError):  # wakes the reader after everything queued before it
            self._sending.send(b"")
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for sock in (self._receiving, self._sending):
            if sock is not None:
                sock.close()
        self._receiving = self._sending = None
