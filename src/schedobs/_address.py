"""``host:port`` as every part of schedobs reads it: one parser, one set of rules.

An IPv6 host goes in brackets (``[::1]:123``); without brackets the last colon
splits host from port.  Callers give the error message, since they know what
the address was for (a clock reference, the scrape endpoint).
"""

from __future__ import annotations

__all__ = ["split_host_port"]


def split_host_port(
    value: str, default_port: int | None = None, *, allow_zero: bool = False
) -> tuple[str, int] | None:
    """``host[:port]`` → ``(host, port)``; ``None`` when malformed.

    ``default_port``: used when the value has none (``None``: a port is required).
    ``allow_zero``: port 0 is accepted (a listener's "any free port").
    """
    port: int | None = default_port
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        if rest:
            port = int(rest[1:])
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
        if not port_text.isdigit():
            return None
        port = int(port_text)
    else:
        host = value
    if not host or port is None or not (0 if allow_zero else 1) <= port <= 65535:
        return None
    return host, port
