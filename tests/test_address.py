"""One host:port parser for the whole package (clock references, the scrape endpoint)."""

from __future__ import annotations

import pytest

from schedobs._address import split_host_port


@pytest.mark.parametrize(
    ("value", "default", "allow_zero", "expected"),
    [
        ("127.0.0.1:9464", None, False, ("127.0.0.1", 9464)),
        ("[::1]:123", None, False, ("::1", 123)),
        ("[::1]", 123, False, ("::1", 123)),
        ("time.example", 123, False, ("time.example", 123)),
        ("time.example", None, False, None),  # a port is required
        ("host:0", None, False, None),
        ("host:0", None, True, ("host", 0)),
        ("host:65535", None, False, ("host", 65535)),
        ("host:65536", None, True, None),
        ("host:", None, False, None),
        (":9464", None, False, None),
        ("host:x", None, False, None),
        ("[::1", 123, False, None),
        ("[::1]x", 123, False, None),
        ("[]:123", None, False, None),
        ("", 123, False, None),
    ],
)
def test_the_rules(
    value: str, default: int | None, allow_zero: bool, expected: tuple[str, int] | None
) -> None:
    assert split_host_port(value, default, allow_zero=allow_zero) == expected


def test_clock_references_and_the_scrape_endpoint_read_addresses_alike() -> None:
    from schedobs.clock._prober import parse_reference
    from schedobs.export._settings import parse_host_port

    for value in ("127.0.0.1:7123", "[::1]:7123", "clock.internal:7123"):
        assert parse_reference(value)[1:] == parse_host_port("prometheus", value)
    for bad in ("127.0.0.1:", "[::1", "host:x"):
        with pytest.raises(ValueError, match="clock reference must look like"):
            parse_reference(bad)
        with pytest.raises(ValueError, match="must look like"):
            parse_host_port("prometheus", bad)
