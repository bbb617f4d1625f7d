"""The prober against NTP servers that kiss or are not synchronised (a fault-injecting
responder: Debian's chrony 4.3 drops rate-limited requests and never sends a kiss)."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from schedobs.clock import ClockProber, NtpKey, OffsetEstimator
from schedobs.clock._ntp import to_ntp

_PACKET = struct.Struct(">BBbbII4sQQQQ")
KEY = NtpKey(1, "SHA256", b"the secret both ends were given")


class FaultyNtpServer:
    """Answers every request with a kiss-o'-death ``code`` or, with ``leap=3``, unsynchronised;
    ``mac``: what follows the reply: ``None``, ``"wrong"`` (key 1, a digest of another
    secret: a forgery or a wrong key) or ``"right"`` (signed with :data:`KEY`)."""

    def __init__(self, *, code: str | None = None, leap: int = 0, mac: str | None = None) -> None:
        self.code = code
        self.leap = leap
        self.mac = mac
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.reference = f"ntp://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import time

        while True:
            try:
                data, peer = self.sock.recvfrom(1024)
            except OSError:
                return
            self.requests += 1
            nonce = _PACKET.unpack_from(data)[-1]
            stratum, refid = (0, self.code.encode()) if self.code else (2, b"GPS\0")
            now = to_ntp(time.time_ns())
            reply = _PACKET.pack((self.leap << 6) | (4 << 3) | 4, stratum, 6, -20, 0, 0, refid, 0,
                                 nonce, now, now)  # fmt: skip
            if self.mac is not None:
                signer = KEY if self.mac == "right" else NtpKey(1, "SHA256", b"another secret!!")
                reply += struct.pack(">I", 1) + signer.digest(reply)
            self.sock.sendto(reply, peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[FaultyNtpServer]:
    srv = FaultyNtpServer(**request.param)
    yield srv
    srv.close()


def _probe(prober: ClockProber, times: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(prober.reference)
        for _ in range(times):
            prober.probe_once(sock)


@pytest.mark.parametrize("server", [{"code": "RATE"}], indirect=True)
def test_rate_doubles_the_interval_and_says_so(server: FaultyNtpServer, caplog) -> None:  # type: ignore[no-untyped-def]
    prober = ClockProber(server.reference, OffsetEstimator(), interval=4.0, timeout=1.0)
    with caplog.at_level(logging.WARNING, logger="schedobs"):
        _probe(prober, 3)
    assert prober.kisses == {"RATE": 3}
    assert prober.interval == 32.0
    assert prober.samples == 0 and prober.refused is None
    assert sum("asked us to slow down (RATE)" in r.getMessage() for r in caplog.records) == 3


@pytest.mark.parametrize("server", [{"code": "DENY"}, {"code": "RSTR"}], indirect=True)
def test_deny_and_rstr_stop_the_prober_and_say_so(server: FaultyNtpServer, caplog) -> None:  # type: ignore[no-untyped-def]
    prober = ClockProber(server.reference, OffsetEstimator(), interval=0.01, timeout=1.0)
    with caplog.at_level(logging.ERROR, logger="schedobs"):
        prober.start()
        prober._thread.join(timeout=5)  # it stops by itself
    assert not prober._thread.is_alive()
    assert prober.refused == server.code
    assert server.requests == 1  # not one request more after the refusal
    assert any(
        f"refused us (kiss-o'-death {server.code})" in r.getMessage() for r in caplog.records
    )
    prober.close()


@pytest.mark.parametrize("server", [{"leap": 3}], indirect=True)
def test_an_unsynchronised_server_gives_no_estimate(server: FaultyNtpServer, caplog) -> None:  # type: ignore[no-untyped-def]
    estimator = OffsetEstimator()
    prober = ClockProber(server.reference, estimator, timeout=1.0)
    with caplog.at_level(logging.WARNING, logger="schedobs"):
        _probe(prober, 4)
    assert prober.unsynchronised == 4
    assert estimator.estimate() is None
    assert sum("not synchronised" in r.getMessage() for r in caplog.records) == 1  # said once


def test_keys_must_match_the_protocol() -> None:
    with pytest.raises(ValueError, match="takes an NtpKey or a key line"):
        ClockProber("ntp://127.0.0.1:123", OffsetEstimator(), key=b"0123456789abcdef")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        ClockProber("127.0.0.1:7123", OffsetEstimator(), key=NtpKey(1, "SHA1", b"x" * 20))
    prober = ClockProber("ntp://127.0.0.1", OffsetEstimator(), key="5 SHA256 HEX:00ff")
    assert prober.reference == ("127.0.0.1", 123)
    assert prober._burst == 1  # one request per interval to an NTP server


@pytest.mark.parametrize("server", [{"mac": "wrong"}, {}], indirect=True)
def test_replies_that_fail_authentication_are_invalid_not_lost(
    server: FaultyNtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A reply signed with another key (or not signed at all) came back: the probe's
    outcome is ``invalid``, and one warning says why; ``lost`` is for silence."""
    estimator = OffsetEstimator()
    prober = ClockProber(server.reference, estimator, key=KEY, timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="schedobs"):
        _probe(prober, 3)
    outcomes = prober.outcomes()
    assert (outcomes["invalid"], outcomes["lost"], outcomes["sample"]) == (3, 0, 0)
    assert estimator.estimate() is None
    warned = [r.getMessage() for r in caplog.records if "could not be used" in r.getMessage()]
    assert len(warned) == 1
    assert "MAC" in warned[0] or "unauthenticated" in warned[0], warned


@pytest.mark.parametrize("server", [{"mac": "right"}], indirect=True)
def test_a_reply_signed_with_the_shared_key_is_a_sample(server: FaultyNtpServer) -> None:
    prober = ClockProber(server.reference, OffsetEstimator(), key=KEY, timeout=1.0)
    _probe(prober, 2)
    assert prober.outcomes()["sample"] == 2 and prober.outcomes()["invalid"] == 0


def test_silence_is_lost() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        prober = ClockProber(f"ntp://127.0.0.1:{silent.getsockname()[1]}", OffsetEstimator(),
                             key=KEY, timeout=0.2)  # fmt: skip
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(prober.reference)
            prober.probe_once(sock)
        assert prober.outcomes()["lost"] == 1 and prober.outcomes()["invalid"] == 0
    finally:
        silent.close()


def test_a_key_file_gives_the_key_asked_for_by_id(tmp_path: Path) -> None:
    keys = tmp_path / "chrony.keys"
    keys.write_text(
        "# chrony keys\n1 MD5 HEX:00112233445566778899aabbccddeeff\n"
        "7 SHA256 HEX:" + "ab" * 32 + "  # the one the server uses\n\n"
    )
    assert NtpKey.from_file(keys, 7) == NtpKey(7, "SHA256", bytes.fromhex("ab" * 32))
    assert NtpKey.from_file(keys, 1).hash_name == "MD5"
    with pytest.raises(ValueError, match=r"holds 2 keys \(ids: 1, 7\): say which one"):
        NtpKey.from_file(keys)
    with pytest.raises(ValueError, match=r"holds no key 3 \(its key ids: 1, 7\)"):
        NtpKey.from_file(keys, 3)
    one = tmp_path / "one.keys"
    one.write_text("5 SHA1 HEX:" + "01" * 20 + "\n")
    assert NtpKey.from_file(one).key_id == 5
    broken = tmp_path / "broken.keys"
    broken.write_text("1 SHA256 HEX:zz\n")
    with pytest.raises(ValueError, match=r"broken\.keys:1: the NTP key's HEX"):
        NtpKey.from_file(broken)
