"""CPython's own ``test_concurrent_futures`` run against ``Runtime`` and ``RuntimeFuture``.

The suite is not copied here: it is loaded at run time from Debian's
``libpython3.11-testsuite`` (``make test`` installs it), twice:

- as CPython wrote it, with ``ThreadPoolExecutor`` and ``Future`` — the proof
  that this harness runs the tests for real (same selection, same exclusions;
  the tests that mostly wait out a timeout run only on the two below);
- with ``Runtime`` as ``executor_type`` and ``RuntimeFuture`` as ``Future``;
- with the thread-pool adapter, ``InstrumentedThreadPoolExecutor``.

Selected: every generic executor, wait, as_completed, shutdown and future test
(the ``ThreadPool*`` classes that CPython builds from the generic mixins, and
``FutureTests``).  Process pools, initializers and the deadlock tests are
process-pool machinery and are not selected.  Child-interpreter tests
(``assert_python_ok``) run their scripts with the executor under test: a short
prelude makes ``concurrent.futures.<executor name>`` and
``test.test_concurrent_futures`` importable in the child.

A test that leaves threads behind counts as failed (CPython's regrtest reports
it as "environment changed"; here it is an assertion).  Under pytest the root
logger has a handler, so the standard library's stderr fallback
(``logging.lastResort``), which the callback tests read, is attached to the
``concurrent.futures`` logger for each test instead.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import logging
import sys
import types
import unittest
from pathlib import Path
from typing import Any

import pytest

from schedobs.adapters import InstrumentedThreadPoolExecutor
from schedobs.runtime import Runtime
from schedobs.runtime._future import RuntimeFuture

SUITE = Path(f"/usr/lib/python3.{sys.version_info.minor}/test/test_concurrent_futures.py")

#: The one place where tests are left out, and why.  Each is about another
#: executor's internals; the same names are skipped for ThreadPoolExecutor.
EXCLUDED: dict[str, str] = {
    "test_threads_terminate": "reads ThreadPoolExecutor._threads (its worker list)",
    "test_context_manager_shutdown": "builds a ThreadPoolExecutor itself and joins its _threads",
    "test_del_shutdown": "builds a ThreadPoolExecutor itself and joins its _threads",
    "test_shutdown_no_wait": "builds a ThreadPoolExecutor itself and joins its _threads",
    "test_thread_names_assigned": "ThreadPoolExecutor's thread_name_prefix and thread names",
    "test_thread_names_default": "ThreadPoolExecutor's default thread names",
    "test_default_workers": "ThreadPoolExecutor._max_workers default (min(32, cpus + 4))",
    "test_saturation": "counts ThreadPoolExecutor._threads against _max_workers",
    "test_idle_thread_reuse": "counts ThreadPoolExecutor._threads",
    "test_hang_global_shutdown_lock": (
        "ThreadPoolExecutor's _global_shutdown_lock after forking a ProcessPoolExecutor"
    ),
    "test_repr": "matches the class name 'Future' (a subclass prints its own name, same format)",
    "test_multiple_set_result": "matches the class name 'Future' in the InvalidStateError message",
    "test_multiple_set_exception": "matches the class name 'Future' in the InvalidStateError message",
}

#: CPython's tests that mostly wait out a timeout or a sleep (1 to 6 s each, 33 s in all).
#: The control run (the standard library's own executor, which needs no proof) leaves
#: them to the two executors under test; it still runs every quick test, which is
#: what shows that the harness runs CPython's tests for real.
CONTROL_SKIPS = frozenset({
    "test_map_timeout", "test_timeout", "test_first_exception", "test_zero_timeout",
    "test_first_exception_one_already_failed", "test_duplicate_futures", "test_20369",
    "test_first_completed", "test_first_completed_some_already_completed",
    "test_first_exception_some_already_complete", "test_interpreter_shutdown",
    "test_hang_gh83386", "test_hang_issue12364", "test_exception_with_success",
    "test_result_with_cancel", "test_result_with_success", "test_free_reference",
    "test_free_reference_yielded_future",
})  # fmt: skip

#: CPython's classes built from the generic mixins for threads, plus FutureTests.
SELECTED = (
    "ThreadPoolShutdownTest",
    "ThreadPoolWaitTests",
    "ThreadPoolAsCompletedTest",
    "ThreadPoolExecutorTest",
    "FutureTests",
)

# The futures the suite builds at import (PENDING_FUTURE, ...), by state.
_CONSTANTS = {
    "PENDING_FUTURE": "PENDING",
    "RUNNING_FUTURE": "RUNNING",
    "CANCELLED_FUTURE": "CANCELLED",
    "CANCELLED_AND_NOTIFIED_FUTURE": "CANCELLED_AND_NOTIFIED",
    "EXCEPTION_FUTURE": "FINISHED",
    "SUCCESSFUL_FUTURE": "FINISHED",
}

if sys.version_info[:2] != (3, 11):
    pytest.skip(
        "the harness targets the 3.11 layout of test_concurrent_futures (one module)",
        allow_module_level=True,
    )
if not SUITE.exists():  # a failure, not a skip: make test installs it
    raise RuntimeError(
        f"{SUITE} is missing: install Debian's libpython3.11-testsuite (make system-deps)"
    )


def _load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, SUITE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prelude(executor: type[cf.Executor]) -> str:
    """Lines run first in a child interpreter: the suite and the executor importable."""
    lines = [
        "import importlib.util as _u, sys as _s",
        f"_spec = _u.spec_from_file_location('test.test_concurrent_futures', {str(SUITE)!r})",
        "_m = _u.module_from_spec(_spec); _s.modules[_spec.name] = _m",
        "_spec.loader.exec_module(_m)",
    ]
    if executor is Runtime:
        # The drop-in claim taken literally: scripts that import the standard
        # executor by name get the runtime.
        lines += [
            "import concurrent.futures as _cf",
            "from schedobs.runtime import Runtime as _R",
            "_cf.Runtime = _cf.ThreadPoolExecutor = _R",
        ]
    elif executor is InstrumentedThreadPoolExecutor:
        lines += [
            "import concurrent.futures as _cf",
            "from schedobs.adapters import InstrumentedThreadPoolExecutor as _I",
            "_cf.InstrumentedThreadPoolExecutor = _cf.ThreadPoolExecutor = _I",
        ]
    return "\n".join(lines) + "\n"


def _build(executor: type[cf.Executor], future: type[cf.Future[Any]], tag: str) -> None:
    module = _load(f"_cpython_test_concurrent_futures_{tag}")
    if future is not cf.Future:
        module.Future = future  # type: ignore[attr-defined]
        for const, state in _CONSTANTS.items():
            original = getattr(module, const)
            setattr(
                module,
                const,
                module.create_future(
                    state=getattr(module, state),
                    exception=original._exception,
                    result=original._result,
                ),
            )
    run_child = module.assert_python_ok
    prelude = _prelude(executor)

    def assert_python_ok(*args: str, **env: Any) -> Any:
        if len(args) == 2 and args[0] == "-c":
            args = ("-c", prelude + args[1])
        return run_child(*args, **env)

    module.assert_python_ok = assert_python_ok  # type: ignore[attr-defined]
    support = module.support

    futures_logger = logging.getLogger("concurrent.futures")

    def setUp(self: unittest.TestCase) -> None:
        futures_logger.addHandler(logging.lastResort)  # type: ignore[arg-type]
        self.addCleanup(futures_logger.removeHandler, logging.lastResort)  # type: ignore[arg-type]
        super(cls_for[type(self)], self).setUp()  # type: ignore[misc]

    def tearDown(self: unittest.TestCase) -> None:
        support.environment_altered = False
        super(cls_for[type(self)], self).tearDown()  # type: ignore[misc]
        if support.environment_altered:
            support.environment_altered = False
            self.fail("the test left threads running after the executor shut down")

    cls_for: dict[type, type] = {}
    for base_name in SELECTED:
        base = getattr(module, base_name)
        attrs: dict[str, Any] = {"setUp": setUp, "tearDown": tearDown, "__module__": __name__}
        if base_name != "FutureTests":
            attrs["executor_type"] = executor
        for test, reason in EXCLUDED.items():
            if hasattr(base, test):
                attrs[test] = unittest.skip(reason)(getattr(base, test))
        if executor is cf.ThreadPoolExecutor:
            for test in CONTROL_SKIPS & set(dir(base)):
                attrs[test] = unittest.skip("control: runs on the executors under test")(
                    getattr(base, test)
                )
        name = f"Test{tag}_{base_name}"
        cls = type(name, (base,), attrs)
        cls_for[cls] = cls
        globals()[name] = cls


_build(cf.ThreadPoolExecutor, cf.Future, "ThreadPoolExecutor")
_build(Runtime, RuntimeFuture, "Runtime")
# The adapter is a drop-in too: its own submit path must keep every promise of the
# standard library's (it queues a work item of its own in the workers' queue).
_build(InstrumentedThreadPoolExecutor, cf.Future, "InstrumentedThreadPoolExecutor")
