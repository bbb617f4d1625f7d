"""How many tasks wait in the broker, per queue, read at collection time.

Through kombu's own passive ``queue_declare``, which every kombu transport
answers with the queue's message count: on RabbitMQ it is the broker's count
(``queue.declare`` with ``passive``); on Redis kombu adds up ``LLEN`` of the
queue's list *and* of its priority sub-queues (``celery\\x06\\x163``, …, as
its ``priority_steps`` and ``sep`` say), which is what a priority-enabled
queue holds — reading ``LLEN celery`` alone counts priority 0 only.  A queue
that does not exist (an empty Redis queue has no key at all) waits with 0.

One connection and one channel of its own, opened at the first read and
reopened after an error, behind a lock: collection can come from the
periodic reader and a Prometheus scrape at once, and kombu connections are not
thread-safe.  A read is one or two broker round trips per queue, bounded by
``timeout``; a failed read is logged once and its points are left out of that
collection (a stale or invented length would be worse than none).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["BrokerQueues"]

_log = logging.getLogger("schedobs")


class BrokerQueues:
    """Message counts of ``queues`` on the broker of ``app``."""

    def __init__(self, app: Any, queues: Sequence[str], *, timeout: float = 2.0) -> None:
        self._app = app
        self.queues = tuple(queues)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None
        self._complained = False

    def read(self) -> dict[str, int] | None:
        """``{queue: waiting messages}``, or ``None`` if the broker could not be read."""
        with self._lock:
            try:
                return {queue: self._count(queue) for queue in self.queues}
            except Exception as exc:
                self._reset()
                if not self._complained:
                    self._complained = True
                    _log.warning(
                        "schedobs could not read the broker's queue lengths (%s); they are "
                        "left out until it answers (logged once)",
                        exc,
                    )
                return None

    def _count(self, queue: str) -> int:
        from kombu.exceptions import ChannelError

        channel = self._open()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except ChannelError:
            # No such queue (an empty Redis queue has no key): nothing waits.  AMQP
            # closes the channel on a failed passive declare; open a new one next.
            self._close_channel()
            return 0

    def _open(self) -> Any:
        if self._connection is None:
            connection = self._app.connection_for_read()
            if connection.transport.driver_type == "redis":
                # kombu's Redis transport waits forever on a silent server by default.
                connection = self._app.connection_for_read(
                    transport_options={
                        "socket_timeout": self._timeout,
                        "socket_connect_timeout": self._timeout,
                    }
                )
            connection.ensure_connection(max_retries=1, timeout=self._timeout)
            self._connection = connection
        if self._channel is None:
            self._channel = self._connection.channel()
        return self._channel

    def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            try:
                channel.close()
            except Exception:  # already closed by the broker
                _log.debug("closing a broker channel failed", exc_info=True)

    def _reset(self) -> None:
        self._close_channel()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.release()
            except Exception:
                _log.debug("releasing a broker connection failed", exc_info=True)

    def close(self) -> None:
        with self._lock:
            self._reset()
