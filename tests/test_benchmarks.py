"""The benchmarks run (quick mode) and print their ratios; their numbers are not judged here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("bench_recording.py", ["ratio SDK(1 reader) / schedobs handle", "goal: SDK call"]),
        (
            "bench_runtime.py",
            ["go+join vs asyncio gather", "idle runtime CPU", "ideal", "floor of"],
        ),
        (
            "bench_clock.py",
            [
                "estimator + network",
                "calibration of σ",
                "σ by path to reference",
                "steps of 2 ms",
                "goals",
            ],
        ),
        ("bench_tenancy.py", ["fairness error", "gold p99 ratio", "cost of a refusal"]),
        (
            "bench_celery.py",
            ["ratio plain/instrumented", "CPU per task", "publish stamp: +", "goal"],
        ),
    ],
)
def test_benchmark_runs_and_prints_ratios(script: str, expected: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    for line in expected:
        assert line in out.stdout, out.stdout
