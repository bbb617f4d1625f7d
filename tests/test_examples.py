"""The examples run as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_instrument_existing_scheduler_runs_and_counts_every_task() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "instrument_existing_scheduler.py"),
         "--prometheus", "127.0.0.1:0", "--tasks", "5000"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    match = re.search(r"(\d+) ran, (\d+) refused", out.stdout)
    assert match, out.stdout + out.stderr
    assert int(match.group(1)) + int(match.group(2)) == 5000


def test_the_instrumentation_is_at_most_20_lines() -> None:
    source = (EXAMPLES / "instrument_existing_scheduler.py").read_text()
    assert 0 < source.count("# schedobs") <= 20


def test_multi_tenant_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "multi_tenant_runtime.py"), "--seconds", "1",
         "--prometheus", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert re.search(r"gold\s+completed\s+\d+", out.stdout), out.stdout + out.stderr
    assert "refused" in out.stdout
