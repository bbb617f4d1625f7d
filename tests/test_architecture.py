"""The layering rules of docs/architecture.md and the curated public surface, enforced."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import schedobs

SRC = Path(schedobs.__file__).parent
ROOT = SRC.parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
    return found


@pytest.mark.parametrize("layer", ["contract", "runtime"])
def test_contract_and_runtime_never_import_the_sdk_or_upper_layers(layer: str) -> None:
    folder = SRC / layer
    if not folder.exists():
        pytest.skip(f"schedobs.{layer} does not exist yet")
    for path in folder.rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith("opentelemetry.sdk"), (path, module)
            assert not module.startswith(
                ("schedobs.export", "schedobs.check", "schedobs.testing")
            ), (
                path,
                module,
            )
            if layer == "runtime":
                assert not module.startswith("opentelemetry"), (path, module)


def test_clock_depends_on_nothing_above_it() -> None:
    for path in (SRC / "clock").rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(
                ("schedobs.export", "schedobs.check", "schedobs.runtime", "schedobs.testing")
            ), (path, module)


PUBLIC = {
    "schedobs": {
        "CONTRACT", "CONTRACT_VERSION", "REGISTRY", "ClockCompensation", "LatencyHistogram",
        "QueueLengthGauge",
        "Registry", "RejectionCounter", "SchedulerMetrics", "Telemetry", "TimestampRewriter",
        "__version__", "configure",
    },
    "schedobs.adapters": {
        "AsyncioInstrumentation", "CeleryInstrumentation", "InstrumentedThreadPoolExecutor",
        "TaskTiming",
    },
    "schedobs.check": {
        "Finding", "Report", "check_otlp_metrics", "check_prometheus_endpoint",
        "check_prometheus_text",
    },
    "schedobs.clock": {
        "AsymmetryFit", "ClockCorrector", "ClockEstimate", "ClockProber", "ClockServer", "Edge",
        "KissOfDeathError", "NetworkSolution", "NtpError", "NtpKey", "OffsetEstimator", "ProtocolError", "RedisError",
        "Sample", "SpanPairAdjuster", "UnsynchronisedError", "estimator_for", "host_of_span",
        "learn_path_asymmetry", "parse_reference", "shift_span", "solve_network",
    },
    "schedobs.export": {
        "DEFAULT_PROMETHEUS", "SCOPE", "ClockCompensation", "ExportSettings",
        "RewritingMetricExporter", "RewritingSpanExporter", "Telemetry", "TimestampRewriter",
        "attach", "attach_clock", "attach_to_provider", "configure", "to_sdk_metrics",
    },
    "schedobs.runtime": {
        "Autoscaler", "Chan", "GCTuner", "ChannelClosedError", "LatencyCounts", "RejectedError",
        "Runtime", "RuntimeFuture", "RuntimeHooks", "RuntimeStats", "SyscallState", "Task",
        "TaskState", "WaitGroup", "blocking", "blocking_wait", "checkpoint",
        "current_runtime", "go", "gosched", "sleep", "syscall",
    },
    "schedobs.tenancy": {
        "SLA_WEIGHTS", "ConstraintError", "Limits", "RejectedError", "Tenant",
        "TenantScheduler", "TenantStats",
    },
    "schedobs.testing": {
        "Clock", "Fault", "Fleet", "FleetModel", "GrpcOtlpReceiver", "HttpOtlpReceiver",
        "OtlpPoint", "OtlpReceiver", "faketime_env", "find_libfaketime", "latest_points",
        "wait_all_tasks_blocked", "wait_until",
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_surface_is_pinned(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == PUBLIC[name]
    for attr in module.__all__:
        assert getattr(module, attr) is not None
        obj = getattr(module, attr)
        if callable(obj) and not attr.startswith("_"):
            assert obj.__doc__, f"{name}.{attr} has no docstring"


def test_contract_package_exports_what_it_declares() -> None:
    import schedobs.contract as contract

    for attr in contract.__all__:
        assert hasattr(contract, attr), attr


def test_implementation_modules_are_private() -> None:
    for path in SRC.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py", "py.typed"):
            continue
        if any(part.startswith("_") for part in path.relative_to(SRC).parts[:-1]):
            continue  # inside a private folder (a start-up hook must be called sitecustomize)
        assert path.name.startswith("_"), f"{path} should be a private _module"


def test_versions_agree() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version = "([^"]+)"', pyproject, re.M)
    assert match and match.group(1) == schedobs.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{schedobs.__version__}]" in changelog or "## [Unreleased]" in changelog


def test_typed_package() -> None:
    assert (SRC / "py.typed").exists()


# Private names of the standard library that we use on purpose, and why.
_ALLOWED_FOREIGN_PRIVATE = {
    "_register_atexit": "threading's exit hook, the one concurrent.futures uses (runtime/_process)",
    "_base": "concurrent.futures._base: the Future states RuntimeFuture extends",
    "_invoke_callbacks": "the standard Future's own method, called from the RuntimeFuture subclass",
    "_getframe": "sys._getframe",
    "_set_collect_callback": (
        "the OTel SDK has no public MetricProducer (open-telemetry/opentelemetry-python#4768): "
        "the bridge's one workaround, feature-detected under issue #12"
    ),
    "_preferred_temporality": "an SDK MetricExporter's preference: no public getter (issue #12)",
    "_preferred_aggregation": "an SDK MetricExporter's preference: no public getter (issue #12)",
    "_replace": "a namedtuple's public API (prometheus_client's Sample), underscored by design",
    "_args": (
        "asyncio's Handle: a new task's first-step handle has none; checked before it is "
        "timed (adapters/_asyncio, task_timing; the loop's _ready/_callback likewise)"
    ),
    "_callback": (
        "asyncio's Handle: which step a new task's first handle runs, checked before it is "
        "timed, and run by the timed handle as Handle._run runs it (adapters/_asyncio)"
    ),
    **dict.fromkeys(
        ("_task_factory", "_debug", "_closed"),
        "BaseEventLoop's own state, read as its create_task reads it, by the stand-in that "
        "times tasks on 3.11 (adapters/_asyncio; only on asyncio's own loop class, checked)",
    ),
}


def _own_private_names(tree: ast.Module) -> set[str]:
    """Underscore names a module defines itself: functions, classes, attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries, dict keys
    return names


_PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").exists())


def test_every_package_is_covered_by_the_layer_tests() -> None:
    assert _PACKAGES == [
        "adapters", "check", "clock", "contract", "export", "runtime", "tenancy", "testing",
    ]  # fmt: skip


@pytest.mark.parametrize("package", [*_PACKAGES, "(top-level modules)"])
def test_no_module_reaches_another_modules_private_members(package: str) -> None:
    """A ``x._name`` access (x not self/cls) must name something the same module defines."""
    found: list[str] = []
    paths = SRC.glob("*.py") if package.startswith("(") else (SRC / package).rglob("*.py")
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        own = _own_private_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__"):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if attr not in own and attr not in _ALLOWED_FOREIGN_PRIVATE:
                found.append(f"{path.relative_to(SRC)}:{node.lineno} reaches {attr!r}")
    assert not found, "private members of another module:\n" + "\n".join(found)


def test_no_package_imports_another_packages_private_module() -> None:
    for path in SRC.rglob("*.py"):
        package = path.relative_to(SRC).parts[0]
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] != "schedobs" or len(parts) < 3:
                continue
            if parts[1] != package and parts[2].startswith("_"):
                raise AssertionError(f"{path.relative_to(SRC)} imports private {module}")
