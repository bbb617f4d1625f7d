"""Exemplars: which trace a latency observation belongs to.

A latency observed while a *sampled* span is current keeps ``(value, time,
trace id, span id)`` as the exemplar of its histogram bucket (the latest one
per bucket), so a p99 bucket leads to a trace.  The contract layer imports no
OpenTelemetry: :func:`schedobs.configure` hands this module the context
variable the OpenTelemetry API keeps its current context in and the API's
``get_current_span`` (``enable``); until then, and after ``disable``, an
observation pays one attribute check, and with no OpenTelemetry context set
(an empty one), one more context-variable read.

Spans are read by duck typing (``get_span_context()`` with ``trace_id``,
``span_id`` and ``trace_flags``), which every OpenTelemetry API span has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["Exemplar", "disable", "enable", "sampled_ids"]

#: The context variable holding the OpenTelemetry context, or ``None``: exemplars off.
context_var: ContextVar[Any] | None = None
_span_of: Callable[[Any], Any] = lambda context: None  # noqa: E731

_SAMPLED = 0x01  # W3C trace-flags bit


@dataclass(frozen=True)
class Exemplar:
    """One observation with the trace it happened in."""

    value: float
    time_ns: int
    trace_id: int
    span_id: int


def enable(var: ContextVar[Any], span_of: Callable[[Any], Any]) -> None:
    """Start keeping exemplars (called by :func:`schedobs.configure`).

    ``var`` holds the current OpenTelemetry context; ``span_of(context)`` returns
    the span current in it (``opentelemetry.trace.get_current_span``).
    """
    global context_var, _span_of
    _span_of = span_of
    context_var = var


def disable() -> None:
    """Stop keeping exemplars (existing ones stay until their bucket gets a newer one)."""
    global context_var
    context_var = None


def sampled_ids(context: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """``(trace_id, span_id)`` of the sampled span current in ``context``, else ``None``."""
    if not context:
        return None
    span = _span_of(context)
    if span is None:
        return None
    ctx = span.get_span_context()
    if not ctx.trace_flags & _SAMPLED or not ctx.trace_id:
        return None
    return ctx.trace_id, ctx.span_id
