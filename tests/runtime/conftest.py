from __future__ import annotations

from collections.abc import Iterator

import pytest

from schedobs.runtime import Runtime


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime(procs=2, name="test")
    try:
        yield runtime
    finally:
        runtime.shutdown(wait=True)


@pytest.fixture
def rt1() -> Iterator[Runtime]:
    """One processor: makes ordering and hand-off observable."""
    runtime = Runtime(procs=1, name="test1")
    try:
        yield runtime
    finally:
        runtime.shutdown(wait=True)
