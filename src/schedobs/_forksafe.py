"""Locks that a forked child can take: held across ``os.fork()``, fresh in the child.

A lock held by another thread at the moment a process forks is held forever
in the child, where that thread does not exist.  Prefork servers (Celery's
pool, gunicorn) fork while schedobs' background threads run: the clock prober
updating its estimator, an exporter collecting the registry.  A child that
then asks for a clock estimate would wait forever (seen: a Celery pool child
stuck publishing a retry).

Objects register themselves with :func:`register`; their ``_lock`` attribute
is the guarded lock.  Before a fork every registered lock is acquired, so the
state it guards is whole; after it the parent releases them and the child
gets new, free locks.  Acquiring them all is safe because none of these locks
is ever taken while holding another.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["register"]

_owners: weakref.WeakSet[Any] = weakref.WeakSet()
_held: list[Any] = []


def register(owner: Any) -> None:
    """Guard ``owner._lock`` across forks."""
    _owners.add(owner)


def _before() -> None:
    owners = list(_owners)
    for owner in owners:
        owner._lock.acquire()
    _held[:] = owners


def _after_in_parent() -> None:
    for owner in _held:
        owner._lock.release()
    _held.clear()


def _after_in_child() -> None:
    for owner in _held:
        owner._lock = threading.Lock()
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child
    )
