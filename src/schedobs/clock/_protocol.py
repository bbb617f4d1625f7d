"""The probe protocol: fixed-size UDP datagrams carrying NTP's four timestamps.

::

    request  (24 B, +16 B MAC):  magic "SOBS" | ver 1 | type 1 | flags | 0 | seq u64 | t1 i64
    response (40 B, +16 B MAC):  magic "SOBS" | ver 1 | type 2 | flags | 0 | seq u64 | t1 i64
                                 | t2 i64 | t3 i64

All integers big-endian; times are ns since the epoch on the sender's clock
(t1 client, t2/t3 server).  With a shared key, flag bit 0 is set and a
truncated HMAC-SHA256 over everything before it follows; the server drops
unauthenticated requests and the client drops replies whose MAC, sequence
number or echoed t1 do not match its outstanding request — a spoofed reply
cannot move the clock.  The parser accepts exactly these layouts and nothing
else: every other datagram raises :class:`ProtocolError`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

__all__ = ["ProtocolError", "Request", "Response", "decode", "encode_request", "encode_response"]

MAGIC = b"SOBS"
VERSION = 1
_REQUEST = 1
_RESPONSE = 2
_FLAG_MAC = 0x01
_HEADER = struct.Struct(">4sBBBB")  # magic, version, type, flags, reserved
_REQ_BODY = struct.Struct(">Qq")  # seq, t1
_RESP_BODY = struct.Struct(">Qqqq")  # seq, t1, t2, t3
MAC_SIZE = 16
REQUEST_SIZE = _HEADER.size + _REQ_BODY.size
RESPONSE_SIZE = _HEADER.size + _RESP_BODY.size
MAX_DATAGRAM = RESPONSE_SIZE + MAC_SIZE


class ProtocolError(ValueError):
    """A datagram that is not a valid probe message (or fails authentication)."""


@dataclass(frozen=True)
class Request:
    seq: int
    t1: int


@dataclass(frozen=True)
class Response:
    seq: int
    t1: int
    t2: int
    t3: int


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:MAC_SIZE]


def _seal(payload: bytes, key: bytes | None) -> bytes:
    return payload + _mac(key, payload) if key else payload


def encode_request(seq: int, t1: int, key: bytes | None = None) -> bytes:
    """A request datagram."""
    flags = _FLAG_MAC if key else 0
    payload = _HEADER.pack(MAGIC, VERSION, _REQUEST, flags, 0) + _REQ_BODY.pack(seq, t1)
    return _seal(payload, key)


def encode_response(request: Request, t2: int, t3: int, key: bytes | None = None) -> bytes:
    """A response datagram answering ``request``."""
    flags = _FLAG_MAC if key else 0
    payload = _HEADER.pack(MAGIC, VERSION, _RESPONSE, flags, 0) + _RESP_BODY.pack(
        request.seq, request.t1, t2, t3
    )
    return _seal(payload, key)


def decode(datagram: bytes, key: bytes | None = None) -> Request | Response:
    """Parse one datagram; raises :class:`ProtocolError` for anything else.

    With ``key``, the MAC is required and checked (in constant time).
    """
    if len(datagram) < _HEADER.size:
        raise ProtocolError(f"datagram of {len(datagram)} bytes is shorter than a header")
    magic, version, kind, flags, reserved = _HEADER.unpack_from(datagram)
    if magic != MAGIC:
        raise ProtocolError("bad magic")
    if version != VERSION:
        raise ProtocolError(f"unsupported version {version}")
    if reserved != 0 or flags & ~_FLAG_MAC:
        raise ProtocolError("reserved bits set")
    if kind == _REQUEST:
        size = REQUEST_SIZE
    elif kind == _RESPONSE:
        size = RESPONSE_SIZE
    else:
        raise ProtocolError(f"unknown message type {kind}")
    authenticated = bool(flags & _FLAG_MAC)
    expected = size + (MAC_SIZE if authenticated else 0)
    if len(datagram) != expected:
        raise ProtocolError(f"message of type {kind} must be {expected} bytes, got {len(datagram)}")
    if key:
        if not authenticated:
            raise ProtocolError("unauthenticated message while a key is configured")
        if not hmac.compare_digest(datagram[size:], _mac(key, datagram[:size])):
            raise ProtocolError("bad MAC")
    elif authenticated:
        raise ProtocolError("authenticated message but no key is configured")
    if kind == _REQUEST:
        seq, t1 = _REQ_BODY.unpack_from(datagram, _HEADER.size)
        return Request(seq, t1)
    seq, t1, t2, t3 = _RESP_BODY.unpack_from(datagram, _HEADER.size)
    return Response(seq, t1, t2, t3)
