"""A real NTP server for the tests: Debian's chrony on a free loopback port.

``chronyd -x`` never touches the system clock; it serves its own (local
stratum 8) from a configuration, key file and pid file in a temporary
directory, in the foreground so that the fixture owns the process and stops it
by pid.  Three symmetric keys (MD5, SHA1, SHA256) with random secrets are
configured; the tests hold the same keys.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from pathlib import Path

from schedobs.clock import NtpKey
from schedobs.clock._ntp import query  # tests may use internals

from ._prometheus_server import poll


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChronyServer:
    """``chronyd`` serving NTP on ``127.0.0.1:port``; ``keys`` are configured on it."""

    def __init__(self, workdir: Path, extra_config: str = "") -> None:
        binary = shutil.which("chronyd") or (
            "/usr/sbin/chronyd" if os.path.exists("/usr/sbin/chronyd") else None
        )
        if binary is None:
            raise RuntimeError("chrony is not installed; `make test` installs it")
        self.port = free_udp_port()
        self.address = f"127.0.0.1:{self.port}"
        self.keys = {
            name: NtpKey(key_id, name, os.urandom(32 if name == "SHA256" else 20))
            for key_id, name in ((1, "MD5"), (2, "SHA1"), (3, "SHA256"))
        }
        keyfile = workdir / "chrony.keys"
        keyfile.write_text(
            "".join(f"{k.key_id} {k.hash_name} HEX:{k.secret.hex()}\n" for k in self.keys.values())
        )
        keyfile.chmod(0o600)
        #: The key file chronyd reads (three keys: ids 1, 2, 3).
        self.keyfile = keyfile
        config = workdir / "chrony.conf"
        config.write_text(
            f"port {self.port}\n"
            "bindaddress 127.0.0.1\n"
            "allow 127.0.0.1\n"
            "local stratum 8\n"
            "cmdport 0\n"
            f"pidfile {workdir / 'chronyd.pid'}\n"
            f"keyfile {keyfile}\n" + extra_config
        )
        self._log = open(workdir / "chronyd.log", "wb")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [binary, "-x", "-d", "-f", str(config), "-u", getpass.getuser()],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            poll(self._answers, 20.0, "chronyd answering NTP")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool | None:
        if self._proc.poll() is not None:
            raise RuntimeError(f"chronyd exited with {self._proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("127.0.0.1", self.port))
            try:
                query(sock, timeout=0.2)
            except TimeoutError:
                return None
        return True

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._log.close()
