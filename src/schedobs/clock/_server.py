"""The reference time server (``schedobs clock serve``): answers probe requests over UDP.

It binds to 127.0.0.1 unless told otherwise.  Each datagram is handled on its
own: a malformed, hostile or unauthenticated one is counted and dropped, and
the loop goes on — nothing a sender does can crash or stall it (the parser
reads fixed-size fields only, and the socket has a bounded buffer).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from ._protocol import ProtocolError, Request, decode, encode_response
from ._timestamps import enable_timestamps, receive

__all__ = ["ClockServer"]

_log = logging.getLogger("schedobs")


class ClockServer:
    """A UDP reference clock.  ``start()`` serves in a daemon thread; ``close()`` stops.

    >>> server = ClockServer(port=0).start()      # doctest: +SKIP
    >>> server.address                             # doctest: +SKIP
    ('127.0.0.1', 40123)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        key: bytes | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if key is not None and (not isinstance(key, bytes) or len(key) < 16):
            raise ValueError("key must be bytes of at least 16 bytes")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        enable_timestamps(self._sock)  # t2 is the arrival, not our wake-up
        self._key = key
        self._clock = clock_ns
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name="schedobs-clock-server", daemon=True
        )
        #: Requests answered.
        self.answered = 0
        #: Datagrams dropped (malformed, unauthenticated, not a request).
        self.dropped = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> ClockServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until :meth:`close` (the CLI uses this)."""
        self._serve()

    def _serve(self) -> None:
        sock = self._sock
        while not self._stop.is_set():
            try:
                # A 0.2 s wait lets close() end the loop promptly.
                datagram, peer, t2 = receive(sock, self._clock, 0.2)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            try:
                message = decode(datagram, self._key)
                if not isinstance(message, Request):
                    raise ProtocolError("not a request")
                reply = encode_response(message, t2, self._clock(), self._key)
                sock.sendto(reply, peer)
                self.answered += 1
            except (ProtocolError, OSError):
                self.dropped += 1
            except Exception:  # never let one datagram take the server down
                self.dropped += 1
                _log.exception("clock server: unexpected error on one datagram (dropped)")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> ClockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
