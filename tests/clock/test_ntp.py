"""The NTPv4 client codec: timestamps across eras, and every check a reply must pass."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedobs.clock import KissOfDeathError, NtpError, NtpKey, UnsynchronisedError
from schedobs.clock._ntp import (
    NTP_UNIX_OFFSET_S,
    PACKET_SIZE,
    decode_reply,
    encode_request,
    from_ntp,
    to_ntp,
)

NOW_NS = 1_796_000_000_123_456_789  # late 2026
_PACKET = struct.Struct(">BBbbII4sQQQQ")


def _reply(
    nonce: int,
    *,
    mode: int = 4,
    version: int = 4,
    leap: int = 0,
    stratum: int = 2,
    refid: bytes = b"GPS\0",
    t2: int = NOW_NS + 1_000,
    t3: int = NOW_NS + 2_000,
    key: NtpKey | None = None,
) -> bytes:
    packet = _PACKET.pack(
        (leap << 6) | (version << 3) | mode, stratum, 6, -20, 0, 0, refid, 0, nonce,
        to_ntp(t2) if t2 else 0, to_ntp(t3) if t3 else 0,
    )  # fmt: skip
    if key is None:
        return packet
    return packet + struct.pack(">I", key.key_id) + key.digest(packet)


@given(st.integers(min_value=0, max_value=(2**32 * 3) * 10**9))
def test_timestamps_round_trip_within_a_nanosecond_in_any_era(unix_ns: int) -> None:
    back = from_ntp(to_ntp(unix_ns), near_unix_ns=unix_ns + 3_600 * 10**9)
    assert abs(back - unix_ns) <= 1


def test_the_2036_era_rollover_is_read_in_the_nearest_era() -> None:
    rollover_ns = (2**32 - NTP_UNIX_OFFSET_S) * 10**9  # 2036-02-07T06:28:16Z
    just_after = rollover_ns + 5 * 10**9
    raw = to_ntp(just_after)
    assert raw >> 32 == 5  # the seconds wrapped
    assert from_ntp(raw, near_unix_ns=rollover_ns - 10**9) == just_after
    assert from_ntp(to_ntp(rollover_ns - 10**9), near_unix_ns=just_after) == rollover_ns - 10**9


def test_a_request_is_48_bytes_of_client_mode_carrying_only_the_nonce() -> None:
    request = encode_request(0x1122334455667788)
    assert len(request) == PACKET_SIZE
    fields = _PACKET.unpack(request)
    assert fields[0] == (4 << 3) | 3  # LI 0, version 4, mode 3
    assert fields[-1] == 0x1122334455667788
    assert fields[-4:-1] == (0, 0, 0)  # no local time leaves the host
    key = NtpKey(7, "SHA256", b"k" * 32)
    signed = encode_request(1, key)
    assert len(signed) == PACKET_SIZE + 4 + 20  # SHA256 truncated to 20 bytes
    assert signed[PACKET_SIZE : PACKET_SIZE + 4] == struct.pack(">I", 7)


def test_a_good_reply_gives_the_server_timestamps() -> None:
    reply = decode_reply(_reply(42), nonce=42, near_unix_ns=NOW_NS)
    assert (reply.receive_ns, reply.transmit_ns) == (NOW_NS + 1_000, NOW_NS + 2_000)
    assert reply.stratum == 2 and reply.leap == 0


@pytest.mark.parametrize(
    ("datagram", "error"),
    [
        (b"\x24" * 47, "shorter than 48"),
        (_reply(42, mode=3), "not a server reply"),
        (_reply(42, version=2), "unsupported NTP version 2"),
        (_reply(43), "origin mismatch"),  # stale, duplicated or forged
        (_reply(42, t2=0), "zero timestamp"),
        (_reply(42) + b"\0" * 20, "unexpected 20 bytes"),
    ],
)
def test_replies_that_are_not_ours_or_not_genuine_are_refused(datagram: bytes, error: str) -> None:
    with pytest.raises(NtpError, match=error):
        decode_reply(datagram, nonce=42, near_unix_ns=NOW_NS)


@pytest.mark.parametrize(("code", "stop"), [("RATE", False), ("DENY", True), ("RSTR", True)])
def test_kiss_of_death_codes(code: str, stop: bool) -> None:
    with pytest.raises(KissOfDeathError) as info:
        decode_reply(_reply(42, stratum=0, refid=code.encode()), nonce=42, near_unix_ns=NOW_NS)
    assert info.value.code == code
    assert info.value.stop is stop


@pytest.mark.parametrize(("leap", "stratum"), [(3, 2), (0, 16)])
def test_an_unsynchronised_server_gives_no_time(leap: int, stratum: int) -> None:
    with pytest.raises(UnsynchronisedError):
        decode_reply(_reply(42, leap=leap, stratum=stratum), nonce=42, near_unix_ns=NOW_NS)


def test_with_a_key_only_replies_signed_by_it_count() -> None:
    key = NtpKey(3, "SHA1", b"s" * 20)
    assert decode_reply(_reply(42, key=key), nonce=42, near_unix_ns=NOW_NS, key=key).stratum == 2
    with pytest.raises(NtpError, match="unauthenticated"):
        decode_reply(_reply(42), nonce=42, near_unix_ns=NOW_NS, key=key)
    with pytest.raises(NtpError, match="bad MAC"):
        decode_reply(
            _reply(42, key=NtpKey(3, "SHA1", b"x" * 20)), nonce=42, near_unix_ns=NOW_NS, key=key
        )
    with pytest.raises(NtpError, match="key 4, expected 3"):
        decode_reply(
            _reply(42, key=NtpKey(4, "SHA1", b"s" * 20)), nonce=42, near_unix_ns=NOW_NS, key=key
        )
    # An unsigned kiss-o'-death is not believed either.
    with pytest.raises(NtpError, match="unauthenticated"):
        decode_reply(_reply(42, stratum=0, refid=b"DENY"), nonce=42, near_unix_ns=NOW_NS, key=key)


def test_key_lines_as_chrony_and_ntpd_write_them() -> None:
    assert NtpKey.parse("1 SHA256 HEX:00ff") == NtpKey(1, "SHA256", b"\x00\xff")
    assert NtpKey.parse("2 MD5 secret-words") == NtpKey(2, "MD5", b"secret-words")
    assert NtpKey.parse("3 ASCII:hello") == NtpKey(3, "MD5", b"hello")  # chrony's default hash
    for bad, error in (
        ("x SHA1 HEX:00", "looks like"),
        ("1 SHA3 HEX:00", "hash must be one of"),
        ("1 SHA1 HEX:zz", "not hexadecimal"),
        ("0 SHA1 HEX:00", "key id"),
    ):
        with pytest.raises(ValueError, match=error):
            NtpKey.parse(bad)


@pytest.mark.parametrize(
    ("reference", "parsed"),
    [
        ("ntp://time.example", ("ntp", "time.example", 123)),
        ("ntp://169.254.169.123", ("ntp", "169.254.169.123", 123)),
        ("ntp://127.0.0.1:11123", ("ntp", "127.0.0.1", 11123)),
        ("ntp://[::1]", ("ntp", "::1", 123)),
        ("ntp://[fd00::1]:1234/", ("ntp", "fd00::1", 1234)),
        ("127.0.0.1:7123", ("schedobs", "127.0.0.1", 7123)),
        ("[::1]:7123", ("schedobs", "::1", 7123)),
    ],
)
def test_references_name_an_ntp_server_or_a_schedobs_server(
    reference: str, parsed: tuple[str, str, int]
) -> None:
    from schedobs.clock._prober import parse_reference

    assert parse_reference(reference) == parsed


@pytest.mark.parametrize(
    "reference",
    [
        "ntp://",
        "ntp://:123",
        "ntp://host:0",
        "ntp://[::1",
        "http://host:80",
        "host",
        "host:99999",
        ":7123",
    ],
)
def test_malformed_references_are_refused_with_the_expected_forms(reference: str) -> None:
    from schedobs.clock._prober import parse_reference

    with pytest.raises(ValueError, match="look"):
        parse_reference(reference)
