"""A real OTLP metrics backend for the tests: VictoriaMetrics on a free loopback port.

The binary is Debian trixie's package, unpacked into ``.cache/`` by ``make test``
(see the Makefile).  It ingests OTLP/HTTP at ``/opentelemetry/v1/metrics`` and,
with ``-opentelemetry.usePrometheusNaming``, stores the series under the names
of the Prometheus path; it answers PromQL at ``/api/v1/query``.
``-search.latencyOffset=0s`` makes just-written samples queryable at once
(the default hides the last 30 s) and ``-search.disableCache`` keeps a query
from answering with a result computed before the newest samples arrived.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from ._prometheus_server import free_port, poll

BINARY = (
    Path(__file__).resolve().parent.parent / ".cache/victoria-metrics/root/usr/bin/victoria-metrics"
)


class VictoriaMetrics:
    """``victoria-metrics`` serving on ``127.0.0.1:port`` with its own data directory."""

    def __init__(self, workdir: Path) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing; `make test` fetches it")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.otlp_metrics_endpoint = f"{self.url}/opentelemetry/v1/metrics"
        self._log_path = workdir / "victoria-metrics.log"
        self._log = open(self._log_path, "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                str(BINARY),
                f"-storageDataPath={workdir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-opentelemetry.usePrometheusNaming",
                "-search.latencyOffset=0s",
                "-search.disableCache",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            poll(self._healthy, 30.0, "VictoriaMetrics /health")
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool | None:
        if self._proc.poll() is not None:
            raise RuntimeError(f"victoria-metrics exited: {self.log()[-500:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                return resp.status == 200 or None
        except (urllib.error.URLError, OSError):
            return None

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
