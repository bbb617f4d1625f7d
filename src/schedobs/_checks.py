"""Type checks the public API's validation shares.

``bool`` is a subclass of ``int`` in Python, so ``isinstance(True, int)`` holds;
no count, size, port or duration of ours is ever a bool, and accepting one hides
a caller's mistake (``workers=True``).  These two say it once.
"""

from __future__ import annotations

from typing import TypeGuard

__all__ = ["is_int", "is_number"]


def is_int(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` or ``float`` that is not a ``bool`` (NaN and infinities included)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
