"""A real Redis server for the tests: Debian's ``redis-server`` on a free loopback port.

In the foreground, owned by the fixture and stopped by pid; no persistence,
its working files in a temporary directory.  An optional password makes it
refuse unauthenticated clients.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from ._prometheus_server import free_port, poll


class RedisServer:
    """``redis-server`` on ``127.0.0.1:port``; ``url`` is what clients are given."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; `make test` installs it")
        self.port = free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        if password:
            args += ["--requirepass", password]
        self._log = open(workdir / "redis.log", "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            poll(self._answers, 20.0, "redis-server answering PING")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool | None:
        if self._proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self._proc.returncode}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
        # +PONG, or -NOAUTH when a password is required: either way it is serving.
        return True if reply.startswith((b"+PONG", b"-NOAUTH")) else None

    def command(self, *words: str) -> bytes:
        """Run one command with redis-cli (the tests' independent view of the server)."""
        args = ["redis-cli", "-p", str(self.port), "--raw"]
        if self.password:
            args += ["--no-auth-warning", "-a", self.password]
        return subprocess.run(args + list(words), check=True, capture_output=True).stdout

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
