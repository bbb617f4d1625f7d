"""A controller that calls ``step()`` every ``interval`` seconds on its own daemon thread."""

from __future__ import annotations

import threading
from typing import TypeVar

__all__ = ["Periodic"]

_P = TypeVar("_P", bound="Periodic")


class Periodic:
    """Base of the runtime's background controllers (autoscaler, GC tuner).

    Subclasses set ``interval`` and implement :meth:`step`; tests call
    :meth:`step` directly for deterministic decisions.
    """

    interval: float
    _thread_name = "schedobs-periodic"

    def _init_thread(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)

    def start(self: _P) -> _P:
        """Run :meth:`step` every ``interval`` seconds until :meth:`close`."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread (idempotent)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def step(self) -> int:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()
