"""The optional compiled build: which modules it compiles and whether they were.

Modules that run once per task are written so that mypyc can compile them
as they are: typed throughout, native classes for what runs per task, module
constants ``Final`` (compiled, a static instead of a dictionary lookup).  Only
those it makes faster are listed:

- the GMP runtime's scheduler, M loop, tasks, processors, run queues and
  latency recorder (compiled: go+join about 1.5x, switches 2-2.6x the
  interpreted rates; see ``docs/runtime.md``, "Performance").  What cannot be
  compiled stays in interpreted modules beside them: the driver of generator
  and coroutine tasks (``types.coroutine`` needs a code object) and
  ``RejectedError`` (an ordinary exception class);
- the thread pool's submit and work item (compiled: 0.97-1.02 of the standard
  library's time, interpreted 1.00-1.10).

The asyncio adapter's per-task paths are called back from asyncio's C code,
where compiled methods were slower than interpreted closures.

``SCHEDOBS_COMPILE=1`` at install time builds the listed modules as C
extensions (``setup.py``; see ``docs/runtime.md``); without it, or where no
compiler is at hand, the very same modules run interpreted.  Behaviour is the
same either way: the suite runs against both.
"""

from __future__ import annotations

import importlib
import importlib.machinery
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["HOT_MODULES", "build", "compiled_modules", "i64", "mypyc_attr"]

_C = TypeVar("_C")

#: The modules the compiled build compiles (``setup.py`` reads this list).
HOT_MODULES = (
    "schedobs.adapters._thread_pool",
    "schedobs.runtime._latency",
    "schedobs.runtime._machine",
    "schedobs.runtime._processor",
    "schedobs.runtime._runqueue",
    "schedobs.runtime._sched",
    "schedobs.runtime._task",
)

try:
    # The compiler's class options and its native 64-bit integer; compile-time
    # hints, so interpreted code without mypy's extensions installed gets the
    # stand-ins below (an ``i64`` is an ``int`` to the interpreter).
    from mypy_extensions import i64, mypyc_attr
except ImportError:  # pragma: no cover - depends on what is installed
    i64 = int  # type: ignore[misc]

    def mypyc_attr(*attrs: str, **kwattrs: Any) -> Callable[[_C], _C]:  # type: ignore[misc]
        """No-op stand-in: the option only means something to the compiler."""
        return lambda cls: cls


def compiled_modules() -> dict[str, bool]:
    """Each hot module's name → whether this interpreter loaded it compiled."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    result: dict[str, bool] = {}
    for name in HOT_MODULES:
        origin = getattr(importlib.import_module(name), "__file__", None) or ""
        result[name] = origin.endswith(suffixes)
    return result


def build() -> str:
    """``"compiled"``, ``"interpreted"``, or which hot modules are compiled when only some are."""
    compiled = [name for name, done in compiled_modules().items() if done]
    if not compiled:
        return "interpreted"
    if len(compiled) == len(HOT_MODULES):
        return "compiled"
    return "compiled: " + ", ".join(compiled)
