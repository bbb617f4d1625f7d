from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ._stack import Stack


@pytest.fixture(scope="package")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The example stack, up; torn down (volumes too) after the package's tests, with
    the services' logs printed if any of them failed."""
    failed_before = request.session.testsfailed
    running = Stack(f"schedobs-test-{os.getpid()}")
    try:
        running.up()
        yield running
    finally:
        if request.session.testsfailed != failed_before:
            print(running.logs())
        running.down()
