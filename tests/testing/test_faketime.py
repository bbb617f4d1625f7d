"""faketime_env: a process with its own wall clock, CLOCK_MONOTONIC shared, sleep() working."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from schedobs.testing import faketime_env, find_libfaketime

needs_libfaketime = pytest.mark.skipif(
    not find_libfaketime(), reason="libfaketime is installed by `make test`"
)

_SCRIPT = (
    "import time\n"
    "time.sleep(0.01)\n"  # fails with EINVAL under libfaketime 0.9.10 without the hook
    "print(time.time_ns(), time.monotonic_ns())\n"
)


@needs_libfaketime
@pytest.mark.parametrize(("offset", "expected_ms"), [("+0.12", 120.0), ("-0.08", -80.0)])
def test_the_wall_clock_moves_and_the_monotonic_clock_stays(
    offset: str, expected_ms: float
) -> None:
    before_wall, before_mono = time.time_ns(), time.monotonic_ns()
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=faketime_env(offset), capture_output=True,
        text=True, timeout=60, check=True,
    )  # fmt: skip
    wall, mono = map(int, out.stdout.split())
    # Same monotonic clock: the child's reading is after ours; its wall clock is shifted.
    skew_ms = ((wall - mono) - (before_wall - before_mono)) / 1e6
    assert before_mono < mono
    assert skew_ms == pytest.approx(expected_ms, abs=1.0)


@pytest.mark.parametrize("offset", ["0.12", "+1e-3", "+", "", "+0.1s"])
def test_offsets_take_libfaketimes_relative_form(offset: str) -> None:
    with pytest.raises(ValueError, match="offset must look like"):
        faketime_env(offset)
