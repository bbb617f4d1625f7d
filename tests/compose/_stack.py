"""The compose stack, brought up by the tests with the local Docker engine.

Images come from ``make compose-images`` (built here, no registry).  The stack
runs under a project name of its own with every published port moved to a free
loopback port (the compose file's ``SCHEDOBS_*_PORT`` variables), and is torn
down, volumes included, when the tests end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .._prometheus_server import free_port, poll

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "examples" / "docker-compose"
PORTS = (
    "SCHEDOBS_OTLP_GRPC_PORT",
    "SCHEDOBS_OTLP_HTTP_PORT",
    "SCHEDOBS_COLLECTOR_METRICS_PORT",
    "SCHEDOBS_PROMETHEUS_PORT",
    "SCHEDOBS_VICTORIA_METRICS_PORT",
    "SCHEDOBS_PHOENIX_PORT",
)


def compose_command() -> list[str]:
    """``docker-compose`` (v1, Debian's) if installed, else the ``docker compose`` plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


class Stack:
    def __init__(self, project: str) -> None:
        self.project = project
        self.ports = {name: free_port() for name in PORTS}
        self.env = dict(os.environ, **{k: str(v) for k, v in self.ports.items()})
        self.prometheus = f"http://127.0.0.1:{self.ports['SCHEDOBS_PROMETHEUS_PORT']}"
        self.phoenix = f"http://127.0.0.1:{self.ports['SCHEDOBS_PHOENIX_PORT']}"
        self.victoria_metrics = f"http://127.0.0.1:{self.ports['SCHEDOBS_VICTORIA_METRICS_PORT']}"
        self.collector_metrics = (
            f"http://127.0.0.1:{self.ports['SCHEDOBS_COLLECTOR_METRICS_PORT']}/metrics"
        )

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*compose_command(), "-p", self.project, "-f", str(COMPOSE_DIR / "docker-compose.yml"),
             *args],
            env=self.env, cwd=COMPOSE_DIR, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def up(self) -> None:
        result = self.compose("up", "-d")
        if result.returncode != 0:
            raise RuntimeError(f"compose up failed:\n{result.stdout}\n{result.stderr}")

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "10")

    def logs(self) -> str:
        result = self.compose("logs", "--no-color", "--tail", "40")
        return result.stdout[-20_000:]

    def state(self) -> dict[str, str]:
        """``{service: state}`` (running, exited…) from the engine."""
        out = subprocess.run(
            ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
             "--format", '{{.Label "com.docker.compose.service"}} {{.State}} {{.Status}}'],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        return {line.split()[0]: line.split(" ", 1)[1] for line in out.splitlines() if line}

    # --- reading the backends from the host ------------------------------------------

    def query(self, promql: str, base: str | None = None) -> list[dict[str, Any]]:
        url = (
            (base or self.prometheus) + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        )
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def get(self, url: str) -> Any:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.load(resp)

    def spans(self) -> list[dict[str, Any]]:
        """Every span Phoenix holds in its default project (OTLP JSON form)."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            page = self.get(
                f"{self.phoenix}/v1/projects/default/spans/otlpv1?" + urllib.parse.urlencode(query)
            )
            found.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return found

    def wait(self, fn: Any, timeout: float, what: str) -> Any:
        return poll(fn, timeout, what, interval=1.0)
