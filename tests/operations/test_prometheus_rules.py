"""The operations kit's Prometheus rules pass the real Prometheus tooling.

``promtool check rules`` (syntax, PromQL) and ``promtool test rules`` (the unit
tests in operations/prometheus/tests.yml: every alert made to fire on series
written for it, and to stay quiet on its neighbour), both from Debian's
prometheus package.  A copy with a threshold moved must fail the unit tests,
or they prove nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "operations" / "prometheus"
RULES = ("recording-rules.yml", "alerting-rules.yml")


def _promtool(*args: str, cwd: Path = KIT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        raise RuntimeError("promtool is missing; `make test` installs Debian's prometheus")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rules() -> None:
    result = _promtool("check", "rules", *RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout
    assert "SUCCESS: 9 rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests() -> None:
    result = _promtool("test", "rules", "tests.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tests = (KIT / "tests.yml").read_text()
    alerts = (KIT / "alerting-rules.yml").read_text()
    for line in alerts.splitlines():
        if line.strip().startswith("- alert:"):
            name = line.split(":", 1)[1].strip()
            assert f"alertname: {name}" in tests, f"{name} has no unit test"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("scheduler:schedule_latency_ms:p99_5m > 250", "scheduler:schedule_latency_ms:p99_5m > 600"),
        ("unless on (job, instance) clock_probe_last_sample_seconds", "and on (job, instance) clock_probe_last_sample_seconds"),
        ("clock_offset_uncertainty_nanoseconds > 1e6", "clock_offset_uncertainty_nanoseconds > 1e7"),
    ],
    ids=["latency SLO", "never answered", "uncertainty"],
)  # fmt: skip
def test_a_rule_moved_fails_its_unit_test(tmp_path: Path, old: str, new: str) -> None:
    for name in (*RULES, "tests.yml"):
        shutil.copy(KIT / name, tmp_path / name)
    alerts = tmp_path / "alerting-rules.yml"
    text = alerts.read_text()
    assert old in text
    alerts.write_text(text.replace(old, new))
    result = _promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode != 0, result.stdout
