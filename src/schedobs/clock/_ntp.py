"""NTPv4 client mode (RFC 5905): the request, every check on the reply, kiss-o'-death, keys.

Any NTP server can be the clock reference — chrony, ntpd, the clouds' time
services (Amazon Time Sync at 169.254.169.123, Google's metadata server,
Azure's host time) — so schedobs speaks the protocol they already speak::

    request (48 B):  LI 0 | VN 4 | mode 3 (client), all zero but the transmit
                     timestamp, which carries a random 64-bit nonce (the server
                     echoes it as "origin"; our own send time never leaves the
                     host — RFC 9109's data minimisation)
    reply   (48 B):  LI | VN | mode 4 (server) | stratum | poll | precision |
                     root delay | root dispersion | refid | reference ts |
                     origin ts | receive ts (t2) | transmit ts (t3)
    + MAC (keyed):   key id (4 B) | digest of key ‖ packet (≤ 20 B)

A reply is used only if it is a server reply to *our* outstanding request
(origin = our nonce; a stale, duplicated or forged reply fails this), from a
synchronised server (leap indicator ≠ 3, stratum 1–15), with non-zero
timestamps, and — when a key is configured — with a valid MAC under that key.
Stratum 0 is a kiss-o'-death: its reference id is an ASCII code (``RATE``:
slow down; ``DENY``/``RSTR``: stop) that the caller must honour.

Symmetric keys are configured as chrony and ntpd configure them (a key id, a
hash name, the secret: ``1 SHA256 HEX:…``); the MAC is the key id and the
hash of the key followed by the packet, truncated to 20 bytes for hashes
longer than SHA-1 (NTPv4's largest MAC is 24 bytes).

Timestamps are 64-bit fixed point (32 bits of seconds since 1900, 32 bits of
fraction).  The seconds wrap every 2**32 s (the next era starts in 2036), so
they are read in the era that puts them nearest the local clock.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from ._timestamps import receive, send

__all__ = [
    "KissOfDeathError",
    "NtpError",
    "NtpKey",
    "NtpReply",
    "UnsynchronisedError",
    "decode_reply",
    "encode_request",
    "from_ntp",
    "new_nonce",
    "query",
    "to_ntp",
]

#: Seconds from 1900-01-01 (NTP's epoch) to 1970-01-01 (Unix's).
NTP_UNIX_OFFSET_S = 2_208_988_800
_ERA_S = 1 << 32
_PACKET = struct.Struct(">BBbbII4sQQQQ")  # 48 bytes
PACKET_SIZE = _PACKET.size
_MAX_DIGEST = 20  # NTPv4's largest MAC: 4 B key id + 20 B digest
MAX_DATAGRAM = PACKET_SIZE + 4 + _MAX_DIGEST
_CLIENT = 3
_SERVER = 4
_LEAP_ALARM = 3  # "clock unsynchronised"
_UNSYNCHRONISED_STRATUM = 16
_HASHES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}


class NtpError(ValueError):
    """A datagram that is not a usable reply to our request (malformed, forged, stale)."""


class UnsynchronisedError(NtpError):
    """The server says its own clock is not synchronised (leap alarm or stratum 16)."""


#: Kiss-o'-death codes that ask a client to stop querying the server.
STOP_CODES = frozenset({"DENY", "RSTR"})


class KissOfDeathError(NtpError):
    """A kiss-o'-death reply (stratum 0).  ``code``: ``RATE``, ``DENY``, ``RSTR``, ...

    ``RATE`` asks the client to poll less often; ``DENY`` and ``RSTR`` to stop.
    """

    def __init__(self, code: str) -> None:
        super().__init__(f"kiss-o'-death {code!r} from the NTP server")
        self.code = code

    @property
    def stop(self) -> bool:
        """Whether the server asks us to stop querying it (DENY, RSTR)."""
        return self.code in STOP_CODES


@dataclass(frozen=True)
class NtpKey:
    """A symmetric key as chrony and ntpd configure it: id, hash name, secret."""

    key_id: int
    hash_name: str
    secret: bytes

    def __post_init__(self) -> None:
        if not 0 < self.key_id < (1 << 32):
            raise ValueError(f"NTP key id must be in 1..2**32-1, got {self.key_id}")
        if self.hash_name.upper() not in _HASHES:
            raise ValueError(
                f"NTP key hash must be one of {sorted(_HASHES)}, got {self.hash_name!r}"
            )
        if not self.secret:
            raise ValueError("NTP key secret must not be empty")

    @classmethod
    def parse(cls, line: str) -> NtpKey:
        """A chrony/ntpd key line: ``"1 SHA256 HEX:0123…"`` or ``"1 MD5 ASCII-secret"``."""
        fields = line.split()
        if len(fields) == 2:  # chrony's default hash is MD5
            fields = [fields[0], "MD5", fields[1]]
        if len(fields) != 3 or not fields[0].isdigit():
            raise ValueError(f"an NTP key line looks like '1 SHA256 HEX:…', got {line!r}")
        key_id, hash_name, value = int(fields[0]), fields[1].upper(), fields[2]
        if value.upper().startswith("HEX:"):
            try:
                secret = bytes.fromhex(value[4:])
            except ValueError:
                raise ValueError("the NTP key's HEX: value is not hexadecimal") from None
        else:
            secret = value.removeprefix("ASCII:").encode()
        return cls(key_id, hash_name, secret)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], key_id: int | None = None) -> NtpKey:
        """The key ``key_id`` of a chrony/ntpd key file (``#`` comments, one key per line).

        Without ``key_id`` the file must hold exactly one key: with several, which
        one the server expects cannot be guessed, and a wrong guess only shows as
        replies that never verify.  ``ValueError`` names the ids the file holds.
        """
        keys: dict[int, NtpKey] = {}
        with open(path, encoding="utf-8") as fh:
            for number, raw in enumerate(fh, 1):
                line = raw.split("#", 1)[0].strip()
                if not line:
                    continue
                try:
                    key = cls.parse(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{number}: {exc}") from None
                keys[key.key_id] = key
        ids = ", ".join(map(str, sorted(keys))) or "none"
        if key_id is not None:
            if key_id not in keys:
                raise ValueError(f"{path} holds no key {key_id} (its key ids: {ids})")
            return keys[key_id]
        if len(keys) != 1:
            raise ValueError(
                f"{path} holds {len(keys)} keys (ids: {ids}): say which one the server uses"
            )
        return next(iter(keys.values()))

    def digest(self, packet: bytes) -> bytes:
        """The MAC digest of ``packet``: hash(secret ‖ packet), at most 20 bytes."""
        h = hashlib.new(_HASHES[self.hash_name.upper()])
        h.update(self.secret)
        h.update(packet)
        return h.digest()[:_MAX_DIGEST]


@dataclass(frozen=True)
class NtpReply:
    """A checked server reply.  Times in ns since the Unix epoch on the server's clock."""

    leap: int
    version: int
    stratum: int
    poll: int
    precision: int
    root_delay_s: float
    root_dispersion_s: float
    refid: bytes
    receive_ns: int  # t2
    transmit_ns: int  # t3


def to_ntp(unix_ns: int) -> int:
    """A Unix time in ns as a 64-bit NTP timestamp (seconds wrap at the era boundary)."""
    seconds, ns = divmod(unix_ns, 1_000_000_000)
    fraction = (ns << 32) // 1_000_000_000
    return (((seconds + NTP_UNIX_OFFSET_S) % _ERA_S) << 32) | fraction


def from_ntp(timestamp: int, near_unix_ns: int) -> int:
    """A 64-bit NTP timestamp as Unix ns, in the era that puts it nearest ``near_unix_ns``."""
    seconds_in_era = timestamp >> 32
    fraction = timestamp & 0xFFFFFFFF
    near_s = near_unix_ns // 1_000_000_000 + NTP_UNIX_OFFSET_S
    era = (near_s - seconds_in_era + _ERA_S // 2) // _ERA_S
    seconds = era * _ERA_S + seconds_in_era - NTP_UNIX_OFFSET_S
    return seconds * 1_000_000_000 + ((fraction * 1_000_000_000 + (1 << 31)) >> 32)


def new_nonce() -> int:
    """A random 64-bit transmit value for a request (never zero: zero means "none")."""
    while True:
        nonce = int.from_bytes(os.urandom(8), "big")
        if nonce:
            return nonce


def encode_request(nonce: int, key: NtpKey | None = None, *, poll: int = 6) -> bytes:
    """A client request whose transmit timestamp is ``nonce``, with a MAC under ``key``."""
    packet = _PACKET.pack(
        (0 << 6) | (4 << 3) | _CLIENT, 0, poll, 0, 0, 0, b"\0" * 4, 0, 0, 0, nonce
    )
    if key is None:
        return packet
    return packet + struct.pack(">I", key.key_id) + key.digest(packet)


def decode_reply(
    datagram: bytes, *, nonce: int, near_unix_ns: int, key: NtpKey | None = None
) -> NtpReply:
    """Check a datagram as the reply to the request carrying ``nonce``.

    Raises :class:`KissOfDeathError` (stratum 0), :class:`UnsynchronisedError`, or
    :class:`NtpError` for anything else that is not a usable reply.
    """
    if len(datagram) < PACKET_SIZE:
        raise NtpError(f"NTP reply of {len(datagram)} bytes is shorter than 48")
    packet = datagram[:PACKET_SIZE]
    trailer = datagram[PACKET_SIZE:]
    if key is not None:
        if len(trailer) < 4 + 16:
            raise NtpError("unauthenticated NTP reply while a key is configured")
        (key_id,) = struct.unpack_from(">I", trailer)
        if key_id != key.key_id:
            raise NtpError(f"NTP reply signed with key {key_id}, expected {key.key_id}")
        if not hmac.compare_digest(trailer[4:], key.digest(packet)):
            raise NtpError("bad MAC on the NTP reply")
    elif trailer:
        raise NtpError(f"unexpected {len(trailer)} bytes after the NTP packet (no key configured)")
    (
        li_vn_mode,
        stratum,
        poll,
        precision,
        root_delay,
        root_dispersion,
        refid,
        _reference,
        origin,
        receive,
        transmit,
    ) = _PACKET.unpack(packet)
    leap, version, mode = li_vn_mode >> 6, (li_vn_mode >> 3) & 7, li_vn_mode & 7
    if mode != _SERVER:
        raise NtpError(f"not a server reply (mode {mode})")
    if version not in (3, 4):
        raise NtpError(f"unsupported NTP version {version}")
    if origin != nonce:
        raise NtpError("the reply does not answer our request (origin mismatch)")
    if stratum == 0:
        code = refid.rstrip(b"\0").decode("ascii", "replace")
        raise KissOfDeathError(code)
    if leap == _LEAP_ALARM or stratum >= _UNSYNCHRONISED_STRATUM:
        raise UnsynchronisedError(
            f"the NTP server is not synchronised (leap {leap}, stratum {stratum})"
        )
    if not receive or not transmit:
        raise NtpError("the NTP reply carries a zero timestamp")
    return NtpReply(
        leap=leap,
        version=version,
        stratum=stratum,
        poll=poll,
        precision=precision,
        root_delay_s=root_delay / 65536,
        root_dispersion_s=root_dispersion / 65536,
        refid=refid,
        receive_ns=from_ntp(receive, near_unix_ns),
        transmit_ns=from_ntp(transmit, near_unix_ns),
    )


def query(
    sock: socket.socket,
    *,
    key: NtpKey | None = None,
    clock_ns: Callable[[], int] = time.time_ns,
    timeout: float = 1.0,
    rejected: Callable[[NtpError], None] | None = None,
) -> tuple[int, int, int, int, NtpReply]:
    """One exchange with the server ``sock`` is connected to: ``(t1, t2, t3, t4, reply)``.

    ``t1``/``t4`` are read from ``clock_ns`` (the local clock); datagrams that
    are not the reply to this request (stale, forged, unsigned, a bad MAC) are
    skipped until ``timeout`` — a forged datagram must not keep the genuine
    reply out — and each is handed to ``rejected``.  Raises ``TimeoutError``
    with no usable reply in time, :class:`KissOfDeathError` or
    :class:`UnsynchronisedError` as the server says so.
    """
    nonce = new_nonce()
    request = encode_request(nonce, key)  # before t1: its MAC must not count as path delay
    t1 = send(sock, request, clock_ns)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no usable NTP reply within {timeout} s")
        datagram, _, t4 = receive(sock, clock_ns, left, t1)  # TimeoutError propagates
        try:
            reply = decode_reply(datagram, nonce=nonce, near_unix_ns=t4, key=key)
        except (KissOfDeathError, UnsynchronisedError):
            raise
        except NtpError as error:
            if rejected is not None:
                rejected(error)
            continue  # not ours or not genuine: keep waiting for the real reply
        return t1, reply.receive_ns, reply.transmit_ns, t4, reply
