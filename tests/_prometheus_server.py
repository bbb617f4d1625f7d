"""A real Prometheus server (the Debian package) for end-to-end tests.

Started on a free loopback port with a scrape interval of 250 ms; tests point
it at their app's endpoint with :meth:`PrometheusServer.scrape` (a config
reload through the lifecycle API) and read results over the HTTP query API.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(fn: Callable[[], _T | None], timeout: float, what: str, interval: float = 0.05) -> _T:
    """Call ``fn`` until it returns non-None.

    Polling is the only way to wait on an external process's state (there is
    no event to block on); the interval is short and the deadline explicit.
    """
    deadline = time.monotonic() + timeout
    last = ""

    while True:
        try:
            value = fn()
        except (OSError, ValueError, KeyError) as exc:
            # Keep only the text: holding the exception would keep its frames'
            # sockets alive past this call.
            value, last = None, repr(exc)
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s (last error: {last})")
        time.sleep(interval)


class PrometheusServer:
    def __init__(self, workdir: Path, features: tuple[str, ...] = ()) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("the prometheus server is not installed; `make test` installs it")
        self._workdir = workdir
        self._config = workdir / "prometheus.yml"
        self._write_config([])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self._config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={workdir / 'data'}",
                "--web.enable-lifecycle",
                "--log.level=warn",
                *(f"--enable-feature={feature}" for feature in features),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            poll(self._ready, 30.0, "prometheus ready")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool | None:
        if self._proc.poll() is not None:
            raise RuntimeError(f"prometheus exited: {self.log()}")
        with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
            return True if resp.status == 200 else None

    def log(self) -> str:
        return (self._workdir / "prometheus.log").read_text(errors="replace")[-2000:]

    def _write_config(self, targets: list[str]) -> None:
        lines = [
            "global:",
            "  scrape_interval: 250ms",
            "  scrape_timeout: 200ms",
            "scrape_configs:",
            "  - job_name: app",
            "    static_configs:",
            f"      - targets: {json.dumps(targets)}",
        ]
        self._config.write_text("\n".join(lines) + "\n")

    def scrape(self, target: str, *more: str) -> None:
        """Scrape ``host:port`` (whose ``/metrics`` is the app's endpoint) — and any
        further targets — from now on."""
        self._write_config([target, *more])
        request = urllib.request.Request(self.url + "/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200

    def query_exemplars(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        """``/api/v1/query_exemplars`` (needs ``features=("exemplar-storage",)``)."""
        args = urllib.parse.urlencode({"query": promql, "start": start, "end": end})
        with urllib.request.urlopen(f"{self.url}/api/v1/query_exemplars?{args}", timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]
        return result

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the vector result."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, or None if there is no sample."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_scrape_after(self, target: str, moment: float, timeout: float = 20.0) -> None:
        """Wait until a scrape of ``target`` (``host:port``) that began after ``moment``
        (``time.time()``) has landed: everything the target held at ``moment`` is stored."""

        def landed() -> bool | None:
            last = self.value(f'timestamp(up{{instance="{target}"}})')
            return True if last is not None and last > moment else None

        poll(landed, timeout, f"a scrape of {target} after {moment:.3f}")

    def wait_value(self, promql: str, expected: float, timeout: float = 20.0) -> float:
        return poll(
            lambda: v if (v := self.value(promql)) == expected else None,
            timeout,
            f"{promql} == {expected} (prometheus log: {self.log()[-300:]!r})",
        )

    def metadata(self, metric: str) -> list[dict[str, str]]:
        url = self.url + "/api/v1/metadata?" + urllib.parse.urlencode({"metric": metric})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        data: list[dict[str, str]] = body["data"].get(metric, [])
        return data

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._log.close()
