"""Processes with a wall clock of their own, on one machine: libfaketime, set up right.

To test what crosses hosts with skewed clocks (a task published on one and
started on another), run each process under Debian's libfaketime with its own
offset.  ``FAKETIME_DONT_FAKE_MONOTONIC=1`` leaves ``CLOCK_MONOTONIC`` real,
so it stays the one clock every process shares: the ground truth.  Two traps
are handled here: libfaketime 0.9.10 breaks ``time.sleep()`` on Python 3.11
under that setting (a start-up hook sleeps through ``select()`` instead), and
kernel socket timestamps are not shifted (schedobs' probers keep to the
process's own clock when they disagree).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["LIBFAKETIME_PATHS", "faketime_env", "find_libfaketime"]

#: Where distributions install the library (Debian's package first).
LIBFAKETIME_PATHS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
_HOOK_DIR = Path(__file__).resolve().parent / "_sitehook"
_OFFSET = re.compile(r"[+-]\d+(\.\d+)?")


def find_libfaketime() -> str | None:
    """The path of libfaketime, or ``None`` where it is not installed."""
    return next((p for p in LIBFAKETIME_PATHS if os.path.exists(p)), None)


def faketime_env(
    offset: str, base: Mapping[str, str] | None = None, *, step_file: str | None = None
) -> dict[str, str]:
    """The environment of a process whose wall clock is ``offset`` seconds off.

    >>> env = faketime_env("+0.12")            # doctest: +SKIP
    >>> subprocess.run(["python", "worker.py"], env=env)        # doctest: +SKIP

    ``offset`` is libfaketime's relative form: a sign and seconds (``"+0.12"``,
    ``"-80e-3"`` is not accepted; ``"-0.08"`` is).  ``base`` defaults to this
    process's environment.  ``step_file``: the offset is written to this file and
    read from it again at every clock read, so that a test steps the process's wall
    clock while it runs by writing another offset there.  ``RuntimeError`` if
    libfaketime is not installed (Debian: ``apt-get install libfaketime``).
    """
    if not isinstance(offset, str) or not _OFFSET.fullmatch(offset):
        raise ValueError(f"offset must look like '+0.12' or '-0.08' (seconds), got {offset!r}")
    library = find_libfaketime()
    if library is None:
        raise RuntimeError("libfaketime is not installed (Debian: apt-get install libfaketime)")
    env = dict(os.environ if base is None else base)
    path = env.get("PYTHONPATH")
    env.update(
        LD_PRELOAD=library,
        FAKETIME=offset,
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        PYTHONPATH=str(_HOOK_DIR) if not path else os.pathsep.join([str(_HOOK_DIR), path]),
    )
    if step_file is not None:
        Path(step_file).write_text(offset + "\n")
        # libfaketime reads the file only when FAKETIME is not set.
        del env["FAKETIME"]
        env.update(FAKETIME_TIMESTAMP_FILE=step_file, FAKETIME_NO_CACHE="1")
    return env
