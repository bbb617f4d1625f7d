"""The error a refused task raises.

Kept apart from the scheduler: the compiled build (:mod:`schedobs._compiled`)
compiles the scheduler, and an exception class is best left an ordinary Python
class (subclassable, picklable, the same in either build).
"""

from __future__ import annotations

__all__ = ["RejectedError"]


class RejectedError(RuntimeError):
    """A task was refused.  ``reason`` is the contract's ``error.type`` value.

    A subclass of ``RuntimeError``, which is what ``concurrent.futures``
    executors raise after shutdown.
    """

    def __init__(self, reason: str, message: str, tenant: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.tenant = tenant
