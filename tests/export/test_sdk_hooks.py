"""A release without a private SDK hook schedobs needs fails at configure(), named."""

from __future__ import annotations

import threading
from importlib import metadata

import pytest
from opentelemetry.sdk.metrics.export import MetricReader

import schedobs
from schedobs.contract import Registry
from schedobs.export import _sdk


def test_the_installed_release_has_every_hook() -> None:
    _sdk.check_sdk()


def test_a_missing_collect_hook_fails_configure_naming_release_and_hook(
    monkeypatch: pytest.MonkeyPatch, registry: Registry
) -> None:
    monkeypatch.delattr(MetricReader, "_set_collect_callback")
    threads = set(threading.enumerate())
    with pytest.raises(_sdk.UnsupportedSdkError) as caught:
        schedobs.configure(registry=registry, set_global=False, prometheus="127.0.0.1:0")
    message = str(caught.value)
    assert "MetricReader._set_collect_callback" in message
    assert metadata.version("opentelemetry-sdk") in message and ">=1.30,<2" in message
    assert set(threading.enumerate()) - threads == set()  # nothing started


def test_a_missing_span_queue_fails_configure_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch, registry: Registry
) -> None:
    monkeypatch.setattr(_sdk, "span_queue", lambda processor: None)
    threads = {t.name for t in threading.enumerate()}
    with pytest.raises(_sdk.UnsupportedSdkError, match="BatchSpanProcessor queue"):
        schedobs.configure(
            registry=registry, set_global=False, prometheus="127.0.0.1:0",
            otlp_endpoint="http://127.0.0.1:1",
        )  # fmt: skip
    assert {t.name for t in threading.enumerate()} - threads == set()


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({"_batch_processor": ("_queue", "_max_queue_size")}, True),  # 1.34 and later
        ({"": ("queue", "max_queue_size")}, True),  # 1.30-1.33
        ({"": ("something_else", "max_queue_size")}, False),
    ],
)
def test_the_span_queue_is_found_in_either_layout(
    layout: dict[str, tuple[str, str]], expected: bool
) -> None:
    class Holder:
        pass

    processor = Holder()
    for attr, (queue, bound) in layout.items():
        holder = processor
        if attr:
            holder = Holder()
            setattr(processor, attr, holder)
        setattr(holder, queue, [1, 2])
        setattr(holder, bound, 2048)
    found = _sdk.span_queue(processor)  # type: ignore[arg-type]
    assert (found is not None) == expected
    if found is not None:
        assert len(found[0]) == 2 and found[1] == 2048
