"""The real OpenTelemetry Collector, built from its Go modules by ``make`` (collector/).

:class:`Collector` runs one of the repository's configuration files as it is,
with only its addresses moved to free loopback ports through the Collector's own
``--set`` overrides, so the file under test is the file users copy.  It waits
for the ``health_check`` extension before returning, and can be stopped and
started again on the same ports (an outage).
"""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from ._prometheus_server import free_port, poll

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / ".cache" / "otelcol"


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    """``otelcol validate --config config``: the Collector's own check of a file."""
    if not BINARY.exists():
        raise RuntimeError(f"{BINARY} is missing; `make test` builds it (make collector)")
    return subprocess.run(
        [str(BINARY), "validate", f"--config={config}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Collector:
    """``otelcol --config CONFIG --set key=value...`` with its health on a free port.

    ``overrides`` maps configuration paths (``exporters::prometheus::endpoint``)
    to values; the health check and the Collector's own telemetry always move to
    free ports (the latter is turned off: two Collectors on one machine would
    both want :8888).
    """

    def __init__(
        self, workdir: Path, config: Path, overrides: Mapping[str, str], name: str = "otelcol"
    ) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing; `make test` builds it (make collector)")
        self.health_port = free_port()
        self._args = [
            str(BINARY),
            f"--config={config}",
            f"--set=extensions::health_check::endpoint=127.0.0.1:{self.health_port}",
            "--set=service::telemetry::metrics::level=none",
            *(f"--set={key}={value}" for key, value in overrides.items()),
        ]
        self._log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self._log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            poll(self._healthy, 30.0, "collector health_check")
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool | None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"otelcol exited {self._proc.returncode}: {self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=1) as r:
                return r.status == 200 or None
        except (urllib.error.URLError, OSError):
            return None

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops it: the Collector drains, then exits."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


def otlp_ports() -> dict[str, str]:
    """Overrides that move a configuration's OTLP receiver to two free ports."""
    return {
        "receivers::otlp::protocols::grpc::endpoint": f"127.0.0.1:{free_port()}",
        "receivers::otlp::protocols::http::endpoint": f"127.0.0.1:{free_port()}",
    }
