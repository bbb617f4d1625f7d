"""The optional compiled build: the hot modules load as built, and stay open to subclasses.

``make test`` runs the suite interpreted, then ``make test-compiled`` runs this
file and the adapters' tests again with the compiled build first on the path
(``SCHEDOBS_EXPECT_COMPILED=1``).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import Future
from typing import Any

from schedobs._compiled import HOT_MODULES, build, compiled_modules
from schedobs.adapters import AsyncioInstrumentation, InstrumentedThreadPoolExecutor
from schedobs.contract import Registry
from schedobs.runtime import _latency


def test_the_hot_modules_load_as_built() -> None:
    expected = os.environ.get("SCHEDOBS_EXPECT_COMPILED") == "1"
    assert compiled_modules() == dict.fromkeys(HOT_MODULES, expected)
    assert build() == ("compiled" if expected else "interpreted")
    # The M loop bins latency on the spot only where that is the cheap way.
    assert _latency.NATIVE is expected


def test_the_public_classes_of_compiled_modules_take_python_subclasses() -> None:
    calls: list[str] = []

    class Pool(InstrumentedThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            calls.append("submit")
            return super().submit(fn, *args, **kwargs)

    class Loop(AsyncioInstrumentation):
        def install(self) -> AsyncioInstrumentation:
            calls.append("install")
            return super().install()

    registry = Registry()
    with Pool(2, name="sub", registry=registry) as pool:
        assert pool.submit(abs, -3).result() == 3

    async def main() -> None:
        Loop(name="sub.loop", registry=registry, task_timing=True).install().uninstall()

    asyncio.run(main())
    assert calls == ["submit", "install"]
