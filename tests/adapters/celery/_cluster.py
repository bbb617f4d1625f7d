"""Celery workers and producers as real processes, each with its own wall clock.

Every process runs under Debian's libfaketime with its own offset
(``FAKETIME="+0.12"``), and ``FAKETIME_DONT_FAKE_MONOTONIC=1`` leaves
``CLOCK_MONOTONIC`` real: the clock all of them share, which is the ground
truth the tests compare against.  Workers are ``celery worker`` processes
(prefork pools by default) in their own process group, so that a kill takes
the pool children too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from schedobs.testing import faketime_env

from ..._prometheus_server import free_port, poll

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.adapters.celery._app"


def process_env(broker: str, role: str, skew: str | None, **extra: str) -> dict[str, str]:
    """The environment of a test process: its role, its broker and its clock."""
    env = dict(os.environ)
    env.update(
        SCHEDOBS_TEST_BROKER=broker,
        SCHEDOBS_TEST_ROLE=role,
        PYTHONPATH=str(ROOT),
        PYTHONWARNINGS="ignore",
    )
    env.pop("OTEL_SDK_DISABLED", None)
    if skew is not None:
        env = faketime_env(skew, env)
    env.update(extra)
    return env


class Worker:
    """``celery worker`` under its own clock, with a scrape endpoint and a timings file."""

    def __init__(
        self,
        workdir: Path,
        broker: str,
        name: str,
        *,
        skew: str | None = None,
        queues: str = "work",
        concurrency: int = 2,
        pool: str = "prefork",
        **extra: str,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.timings_path = workdir / f"{name}.timings.jsonl"
        self.log_path = workdir / f"{name}.log"
        env = process_env(
            broker, "worker", skew,
            SCHEDOBS_TEST_PROMETHEUS=f"127.0.0.1:{self.port}",
            SCHEDOBS_TEST_TIMINGS=str(self.timings_path),
            **extra,
        )  # fmt: skip
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", APP, "worker", "-n", f"{name}@%h",
             "-Q", queues, "-c", str(concurrency), "-P", pool, "--loglevel=INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            poll(self._ready, 60.0, f"worker {name} ready with a clock estimate")
        except BaseException:
            self.kill()
            raise

    def _ready(self) -> bool | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker {self.name} exited: {self.log_path.read_text()[-3000:]}")
        if b" ready." not in self.log_path.read_bytes():
            return None
        samples = self.value("clock_probes_total", {"clock_probe_outcome": "sample"})
        return True if samples >= 5 else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def scrape(self, openmetrics: bool = False) -> str:
        import urllib.request

        request = urllib.request.Request(self.url)
        if openmetrics:
            request.add_header("Accept", "application/openmetrics-text; version=1.0.0")
        with urllib.request.urlopen(request, timeout=5) as response:
            return str(response.read().decode())

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sample_value(self.scrape(), name, labels)

    def timings(self) -> list[dict[str, Any]]:
        if not self.timings_path.exists():
            return []
        return [json.loads(line) for line in self.timings_path.read_text().splitlines()]

    def stop(self) -> None:
        """A warm shutdown (SIGTERM), as an operator stops a worker."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL to the main process and its pool children at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        if not self._log.closed:
            self._log.close()


def sample_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """What a series is worth in an exposition: the sum over the samples called ``name``
    whose labels include ``labels``."""
    total = 0.0
    wanted = (labels or {}).items()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and wanted <= sample.labels.items():
                total += sample.value
    return total


def publish(
    broker: str, spec: list[dict[str, Any]], skew: str | None, **extra: str
) -> list[dict[str, Any]]:
    """Run a producer process under its own clock; the tasks it published, with their truth."""
    env = process_env(broker, "producer", skew, **extra)
    out = subprocess.run(
        [sys.executable, "-m", "tests.adapters.celery._producer", json.dumps(spec)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"producer failed ({out.returncode}): {out.stderr[-3000:]}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
