"""From prefork pool children to the worker's main process: one record per event.

Celery's prefork pool runs each task in a child process, but the main process
is the one that receives messages, holds the Prometheus endpoint and the clock
prober, and lives as long as the worker: its metrics are the worker's.  A child
only knows when a task started (``task_prerun`` runs there) and in which trace.
So the child sends those facts, and the main process records them::

    main process                                    pool child
    ─ pipe() at worker_init ─────── fork ─────────► inherits the writing end
    ─ event loop timer: read a batch, record ◄───── task_prerun: write(record)

A pipe, because a write of at most ``PIPE_BUF`` bytes is atomic: many
children write at once without a lock, and a child killed mid-write leaves no
half record.  (A Unix datagram socket is atomic too, but Linux lets only
``net.unix.max_dgram_qlen`` — 10 by default — wait in it: the children then
stalled, measured at 13 % of a worker's throughput.)  The pipe holds up to
1 MiB (``F_SETPIPE_SZ``, within the unprivileged limit).

The main process drains it on a timer of its own event loop (kombu's hub,
which the prefork pool always runs), every ``DRAIN_S``, taking whatever has
arrived in one read: a reader thread of its own would compete with the loop
for the GIL on every task (it did, costing 7-8 % of an empty-task worker's
throughput), and a reader in the loop would wake it for every task.  Without
a hub (a worker without an event loop) a reader thread does the job.  A child's write waits at most
``SEND_TIMEOUT_S`` when the main process lags; a record that could not go
then is counted in the child and logged once (a stuck main process must not
stall the tasks).

Records are tuples of ints, strings, lists and ``None``, encoded with
``marshal`` behind a 2-byte length: only this process tree holds the pipe,
and both ends are the same interpreter.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import marshal
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Relay", "current_pid"]

_log = logging.getLogger("schedobs")

SEND_TIMEOUT_S = 1.0
#: How often the main process takes what the children sent (a pipe holds ~10,000).
DRAIN_S = 0.02
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux; Python >= 3.10 names it
_LENGTH = 2  # bytes of the big-endian record length before each record
_MAX_RECORD = select.PIPE_BUF - _LENGTH  # so that one write is one atomic record
_READ_BYTES = 1 << 16
_STOP = b"\0\0"  # a zero-length record: the reader ends after what came before it

Record = tuple[Any, ...]

# This process's pid, kept current across forks: os.getpid() is a system call,
# and a pool child would make it on every task.
_pid = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def current_pid() -> int:
    """``os.getpid()``, without the system call."""
    return _pid[0]


class Relay:
    """Carries records from forked children to the process that opened it."""

    def __init__(self, handle: Callable[[Record], None]) -> None:
        self._handle = handle
        self._read_fd = -1
        self._write_fd = -1
        self._thread: threading.Thread | None = None
        self._hub: Any = None
        self._timer: Any = None
        self._buffer = b""
        self._complained = False
        #: The process that opened the relay and records what arrives.
        self.owner_pid = 0
        #: Records a child could not send in time (counted in that child).
        self.unsent = 0

    @property
    def is_open(self) -> bool:
        return self._write_fd >= 0

    def open(self) -> None:
        """In the main process, before the pool forks: the pipe (read by :meth:`attach`
        or :meth:`start_thread` once the worker's loop runs)."""
        if self._write_fd >= 0:
            return
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # a smaller pipe only makes a lagging reader felt sooner
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, _PIPE_BYTES)
        os.set_blocking(write_fd, False)  # children wait with select(), bounded
        self._read_fd, self._write_fd = read_fd, write_fd
        self.owner_pid = current_pid()

    def attach(self, hub: Any) -> None:
        """Drain every ``DRAIN_S`` in ``hub``'s loop (kombu's ``Hub``: ``call_repeatedly``).

        A timer, not a reader of the pipe: a reader would wake the loop for every task;
        a timer takes whatever arrived in one read.
        """
        if self._read_fd < 0 or self._hub is not None or self._thread is not None:
            return
        os.set_blocking(self._read_fd, False)
        self._timer = hub.call_repeatedly(DRAIN_S, self.drain)
        self._hub = hub

    def start_thread(self, tick: Callable[[], None] | None = None, every: float = 0.1) -> None:
        """Read on a thread of our own (a worker without an event loop); call ``tick``
        at least every ``every`` seconds there, as a loop's timer would."""
        if self._read_fd < 0 or self._hub is not None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._read, args=(tick, every), name="schedobs-celery-relay", daemon=True
        )
        self._thread.start()

    def drain(self) -> None:
        """Record every whole record that has arrived (the loop's callback)."""
        while True:
            try:
                chunk = os.read(self._read_fd, _READ_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # closed
            if not chunk or self._feed(chunk):
                return

    def in_child(self) -> bool:
        """Whether this process is a forked child that should send rather than record."""
        return self._write_fd >= 0 and _pid[0] != self.owner_pid

    def after_fork_in_child(self) -> None:
        """A child never reads: close its copy of the reading end."""
        if self._read_fd >= 0 and current_pid() != self.owner_pid:
            os.close(self._read_fd)
            self._read_fd = -1

    def send(self, record: Record) -> bool:
        """In a child: send one record; ``False`` (counted) if it could not go in time."""
        data = marshal.dumps(record)
        if len(data) > _MAX_RECORD:
            return self._unsent(f"a record of {len(data)} bytes is too long")
        problem = self._write(len(data).to_bytes(_LENGTH, "big") + data)
        return True if problem is None else self._unsent(problem)

    def _write(self, frame: bytes) -> str | None:
        """Write one frame, waiting at most ``SEND_TIMEOUT_S``; what went wrong, or ``None``."""
        deadline = 0.0  # only read the clock if the pipe is full
        while True:
            try:
                os.write(self._write_fd, frame)  # all or nothing: len(frame) <= PIPE_BUF
                return None
            except BlockingIOError:
                now = time.monotonic()
                deadline = deadline or now + SEND_TIMEOUT_S
                if now >= deadline:
                    return "the worker's main process is not reading"
                select.select([], [self._write_fd], [], deadline - now)
            except OSError as exc:  # the relay was closed
                return str(exc)

    def _unsent(self, why: str) -> bool:
        self.unsent += 1
        if not self._complained:
            self._complained = True
            _log.error(
                "schedobs could not pass a task's start to the worker's main process (%s); "
                "it is missing from the metrics (logged once per child)",
                why,
            )
        return False

    def _read(self, tick: Callable[[], None] | None, every: float) -> None:
        while True:
            try:
                if tick is not None and not select.select([self._read_fd], [], [], every)[0]:
                    self._tick(tick)
                    continue
                chunk = os.read(self._read_fd, _READ_BYTES)
            except (OSError, ValueError):
                return  # closed
            if not chunk or self._feed(chunk):
                return  # every writer is gone, or close() said stop

    @staticmethod
    def _tick(tick: Callable[[], None]) -> None:
        try:
            tick()
        except Exception:  # the reader must outlive a failing timer
            _log.exception("schedobs' Celery relay timer failed")

    def _feed(self, chunk: bytes) -> bool:
        """Record the whole records in ``chunk`` (after what was left over); ``True`` at
        the stop record."""
        buffer = self._buffer + chunk
        offset = 0
        stopped = False
        while len(buffer) - offset >= _LENGTH:
            size = int.from_bytes(buffer[offset : offset + _LENGTH], "big")
            if size == 0:
                stopped = True  # close(): everything written before it has been handled
                offset += _LENGTH
                break
            end = offset + _LENGTH + size
            if end > len(buffer):
                break  # the rest of this record is in the next read
            self._dispatch(buffer[offset + _LENGTH : end])
            offset = end
        self._buffer = buffer[offset:]
        return stopped

    def _dispatch(self, data: bytes) -> None:
        try:
            record = marshal.loads(data)
            self._handle(record)
        except Exception:
            # A bad record must not end the reader: every later task would be lost.
            _log.exception("schedobs could not record a task event from a pool child")

    def close(self) -> None:
        """Record what has arrived, then stop; idempotent.  In the opening process only."""
        if self._write_fd < 0 or current_pid() != self.owner_pid:
            return
        if self._thread is not None:
            if self._write(_STOP) is not None:
                _log.warning("schedobs could not stop the Celery relay cleanly; records still "
                             "in the pipe are not recorded")  # fmt: skip
            self._thread.join(timeout=5.0)
        elif self._read_fd >= 0:
            if self._timer is not None:
                with contextlib.suppress(Exception):
                    self._timer.cancel()
            os.set_blocking(self._read_fd, False)
            self.drain()
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self._write_fd = -1
        self._hub = None
