"""Children that a test interrupts with SIGINT, as a user's Ctrl-C would.

A process started with SIGINT ignored keeps ignoring it (Python then installs no
KeyboardInterrupt handler), and a CI runner may start the whole suite that way,
as a shell does for a background job. So these children set Python's own
handler before they run what the test asked for.
"""

from __future__ import annotations

import sys

_PRELUDE = (
    "import runpy, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    "target = sys.argv.pop(1)\n"
    "sys.argv[0] = target\n"
    "if target.endswith('.py'):\n"
    "    runpy.run_path(target, run_name='__main__')\n"
    "else:\n"
    "    runpy.run_module(target, run_name='__main__', alter_sys=True)\n"
)


def interruptible(target: str, *args: str) -> list[str]:
    """The command that runs ``target`` (a script path or a module name) with ``args``
    and a default SIGINT handler, whatever this process's SIGINT disposition."""
    return [sys.executable, "-c", _PRELUDE, target, *args]
